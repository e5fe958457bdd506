// Matrix multiply: C[M,N] = op(A)·op(B) (+ bias[N]) (+ C), float32, row-major.
// Layout: A stored [M,K], or [K,M] when transA; B stored [K,N], or [N,K] when transB; C [M,N].
// Cost: 2·M·N·K flops; 4·(MK + KN + MN) bytes (each operand read once, C written once).
//
// Variants (the MATMUL registry below; the WGSL is in kernels.ts):
//   v1  naive: one invocation per C element, a scalar loop over K. The simplest-correct fallback.
//   v2  register-tiled, barrier-free: each invocation computes a TM x TN tile of C in registers, reading A and B
//       as vec4 wherever the contiguous dimension is a multiple of 4 (scalar loads otherwise). No workgroup
//       memory: on llvmpipe a workgroup runs on one CPU thread and every barrier stops its SIMD loop
//       (README, "Machines"). For software adapters without subgroups.
//   v3  workgroup-memory tiled, for GPUs: a 16x16 workgroup computes a 64x64 block of C, each invocation a 4x4
//       register tile strided by 16; 64x16 slabs of A and B are staged through workgroup memory with coalesced
//       loads (the transposes are undone while staging).
//   v4  v2's register tiles with one subgroup per workgroup sharing its B loads: each lane loads a slice of B's
//       row and subgroupBroadcast gives every lane all of it. On llvmpipe every per-lane load is a gather, the
//       real cost of v2, and sharing the loads makes v4 the faster one there. Needs fixed-size subgroups. Its
//       AS tiles share A instead (lanes over columns, op(A) broadcast): fewer shuffles where a lane's tile is
//       one row wide (the seed's fc1 backward products); the same sums in the same order either way.
// Preferred: v4 on software adapters with fixed-size subgroups, else v2; v3 on GPUs. Every variant fuses the
// epilogue: + bias[j] and + C (accumulate, a uniform flag, for gradient accumulation). v2 and v4 clamp loads
// to the last row/column and mask the stores, so any M, N, K works; they hand out blocks in bands of 8 block
// rows so that large products keep their operands in cache.
//
// The linear layer, the bias kernels and their backward rules are in linear.ts.
import { ShapeError } from '../../errors.js';
import { fixedSubgroupSize } from '../../gpu/capabilities.js';
import { type DeclaredKernel, launch } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { type Cost, defineOp, type TuneConfig } from '../op.js';
import {
  type MatmulLayout,
  matmulV1Kernel,
  matmulV2Kernel,
  matmulV3Kernel,
  matmulV4aKernel,
  matmulV4Kernel,
  type RegisterTile,
  type SubgroupTile,
  V1_WG,
  V3_BM,
} from './kernels.js';

export type { RegisterTile, SubgroupTile } from './kernels.js';

export interface MatmulSizes {
  M: number;
  N: number;
  K: number;
  /** A is stored [K,M] (C = Aᵀ·B). */
  transA?: boolean;
  /** B is stored [N,K] (C = A·Bᵀ). */
  transB?: boolean;
  /** C += op(A)·op(B) instead of C = op(A)·op(B) (and rowSums += instead of =). */
  accumulate?: boolean;
  /** C = max(…, 0) after the bias (and accumulation): a linear layer's ReLU in the epilogue. */
  relu?: boolean;
  /** Set by matmulBias from the buffers it is given (the tuner keys its choices on them). */
  withBias?: boolean;
  withMaskA?: boolean;
  withRowSums?: boolean;
  /** Force a variant (tests, benchmarks); by default the registry chooses. */
  variant?: MatmulVariant;
  /** Benchmarks only: the v2 register tile (default {@link DEFAULT_TILE}). */
  registerTile?: RegisterTile;
  /** Benchmarks only: the v4 tile (by default 4x32 when M and N are at least 128, 4x16 for other products of 4M+ MACs, else 2x8). */
  subgroupTile?: V4Tile;
}

export interface MatmulBuffers {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  bias: GPUBuffer | null;
  /** op(A) is zero where maskA (stored like A) is ≤ 0: the backward of a ReLU whose output maskA is. */
  maskA?: GPUBuffer | null;
  /** rowSums[i] (+)= Σ_k op(A)[i,k] (after the mask), in the same dispatch: a linear layer's bias gradient. */
  rowSums?: GPUBuffer | null;
}

/** The kernel a variant dispatches for these sizes, and its grid. */
interface Plan {
  kernel: DeclaredKernel;
  workgroups: [number, number];
}

// The v2 tile is the fallback for software adapters without subgroups, so it takes the tile that compiles
// quickly; v4 takes the wide tile only for large matrices, where it pays, and narrow outputs (N = 10, 50)
// waste less with 16 columns. Measured with `npm run bench:kernels -- --filter tile`.
//
// Small products (under 4M multiply-adds, such as the seed's linear layers) take tiles of at most 32 sums a
// lane: llvmpipe compiled the 4x16 one for 4–20 s per layout (its 16 vec4 accumulators spill), the 2x8 one in
// under 1.2 s, and at these sizes they ran within 0.1–0.3 ms of each other (compile-matmul script, cold Mesa
// cache, EPYC). Wide outputs (N ≥ 64) take 2x16: the A loads of a lane (two per k and row with maskA, four
// scalar ones where K is not a multiple of 4) then feed twice the multiply-adds. The seed's fc1 backward
// products (N = 320, K = 50 and 64, maskA) ran in 0.24–0.32 ms with it against 0.36–0.58 ms with 2x8, and a
// kernel compiled about 0.5 s slower (mmproto script, llvmpipe, EPYC, 2026-11-30).
// Every tile sums each output over k in the same order, so the choice changes no result.
export const DEFAULT_TILE: RegisterTile = { tm: 4, tn: 8, wgx: 8, wgy: 8 };
const SMALL_PRODUCT = 1 << 22;
const subgroupTileFor = (M: number, N: number, K: number): Omit<SubgroupTile, 'sg'> =>
  M >= 128 && N >= 128
    ? { tm: 4, tn: 32 }
    : M * N * K >= SMALL_PRODUCT
      ? { tm: 4, tn: 16 }
      : N >= 64
        ? { tm: 2, tn: 16 }
        : { tm: 2, tn: 8 };

/** The kernel layout for these sizes and the optional buffers that are given (any truthy value). */
function layoutOf(s: MatmulSizes, b: { bias?: unknown; maskA?: unknown; rowSums?: unknown }): MatmulLayout {
  const transA = !!s.transA;
  const transB = !!s.transB;
  return {
    transA,
    transB,
    vecA: (transA ? s.M : s.K) % 4 === 0,
    vecB: (transB ? s.K : s.N) % 4 === 0,
    bias: !!b.bias,
    relu: !!s.relu,
    maskA: !!b.maskA,
    sumA: !!b.rowSums,
  };
}

// Tiles a tuner may time, the defaults first. Small products stay with small tiles: llvmpipe takes seconds to
// compile a 4x16 v4 kernel (up to 20 s on a busy 2-core machine) for a product that runs in a fraction of a ms.
const V2_TILES: RegisterTile[] = [DEFAULT_TILE, { tm: 4, tn: 4, wgx: 8, wgy: 8 }, { tm: 2, tn: 8, wgx: 8, wgy: 8 }];
/**
 * A v4 tile: tm rows a lane of tn columns sharing B (SubgroupTile), or with AS the sg rows of a workgroup sharing
 * A, tn columns (a multiple of 4·sg; matmulV4aKernel; tm is then 1 and unused).
 */
export type V4Tile = Omit<SubgroupTile, 'sg'> & { AS?: number };

function subgroupTiles(M: number, N: number, K: number, sg: number): V4Tile[] {
  const d = subgroupTileFor(M, N, K);
  const all: V4Tile[] = [d, { tm: 4, tn: 16 }, { tm: 2, tn: 8 }, { tm: 4, tn: 8 }, { tm: 2, tn: 16 }, { tm: 1, tn: 32 }];
  // Small products are offered tiles of at most 32 sums a lane: what a larger one can save at run time, it
  // costs in compiling.
  const offered = M * N * K >= SMALL_PRODUCT ? all : all.filter((t) => t.tm * t.tn <= 32);
  // Tiles sharing A (lanes over columns), one or two vec4s of columns a lane, where the output is wide (N ≥ 32·sg):
  // on fc1's backward products (N = 320) they ran 1.08–1.24× as fast as the B-shared tiles, and on its forward
  // (N = 50) 0.98–1.02×. Offered to every product, they made `webgpu-nn tune` from empty caches about 15 s longer
  // (56.7 and 58.8 s against 43.1 and 41.7; llvmpipe, EPYC: 0.6–1.7 s to compile each).
  const wide = N >= 32 * sg;
  const sharedA: V4Tile[] = wide ? [4 * sg, 8 * sg].map((tn) => ({ tm: 1, tn, AS: 1 })) : [];
  return [...offered.filter((t, i) => offered.findIndex((u) => u.tm === t.tm && u.tn === t.tn) === i), ...sharedA];
}

const PLANS = {
  v1: (_gpu: Gpu, s: MatmulSizes, l: MatmulLayout): Plan => ({
    kernel: matmulV1Kernel(l),
    workgroups: [Math.ceil(s.N / V1_WG), Math.ceil(s.M / V1_WG)],
  }),
  v2: (_gpu: Gpu, s: MatmulSizes, l: MatmulLayout, config?: TuneConfig): Plan => {
    const t = s.registerTile ?? (config as RegisterTile | undefined) ?? DEFAULT_TILE;
    return { kernel: matmulV2Kernel(l, t), workgroups: [Math.ceil(s.N / (t.tn * t.wgx)), Math.ceil(s.M / (t.tm * t.wgy))] };
  },
  v3: (_gpu: Gpu, s: MatmulSizes, l: MatmulLayout): Plan => ({
    kernel: matmulV3Kernel(l),
    workgroups: [Math.ceil(s.N / V3_BM), Math.ceil(s.M / V3_BM)],
  }),
  v4: (gpu: Gpu, s: MatmulSizes, l: MatmulLayout, config?: TuneConfig): Plan => {
    const sg = fixedSubgroupSize(gpu)!; // the registry checked the requirement
    const t: V4Tile & { sg: number } = { ...(s.subgroupTile ?? (config as V4Tile | undefined) ?? subgroupTileFor(s.M, s.N, s.K)), sg };
    if (t.AS) return { kernel: matmulV4aKernel(l, { tn: t.tn, sg }), workgroups: [Math.ceil(s.N / t.tn), Math.ceil(s.M / sg)] };
    return { kernel: matmulV4Kernel(l, t), workgroups: [Math.ceil(s.N / t.tn), Math.ceil(s.M / (t.tm * sg))] };
  },
};

function runPlan(plan: Plan, gpu: Gpu, { a, b, c, bias, maskA, rowSums }: MatmulBuffers, s: MatmulSizes): void {
  const { kernel, workgroups } = plan;
  if (workgroups[0] > 65535 || workgroups[1] > 65535) {
    throw new ShapeError(
      `${kernel.name}: M=${s.M} N=${s.N} needs ${workgroups.join('x')} workgroups, more than 65535 per dimension; split the matrix`,
    );
  }
  const buffers: Record<string, GPUBuffer> = { a, b, c };
  if (bias) buffers.bias = bias;
  if (maskA) buffers.mask = maskA;
  if (rowSums) buffers.rowsum = rowSums;
  launch(gpu, kernel, { params: { M: s.M, N: s.N, K: s.K, accumulate: s.accumulate ? 1 : 0 }, buffers, workgroups });
}

const variant = (name: keyof typeof PLANS) => (gpu: Gpu, bufs: MatmulBuffers, s: MatmulSizes, config?: TuneConfig) =>
  runPlan(PLANS[name](gpu, s, layoutOf(s, bufs), config), gpu, bufs, s);

export type MatmulVariant = 'v1' | 'v2' | 'v3' | 'v4';

export const MATMUL = defineOp<MatmulSizes, MatmulBuffers, MatmulVariant>({
  name: 'matmul',
  variants: {
    v1: { summary: 'naive, one invocation per output: the fallback', run: variant('v1') },
    v2: { summary: 'register tiles, no workgroup memory: software adapters', configs: () => V2_TILES, run: variant('v2') },
    v3: { summary: 'workgroup-memory tiles: GPUs', run: variant('v3') },
    v4: {
      summary: 'register tiles sharing B loads across a subgroup: software adapters',
      requires: ['fixed-subgroups'],
      configs: (gpu, s) => subgroupTiles(s.M, s.N, s.K, fixedSubgroupSize(gpu) ?? 8),
      run: variant('v4'),
    },
  },
  prefer: (gpu) => (gpu.isSoftware ? ['v4', 'v2'] : ['v3']),
  cost: ({ M, N, K }: MatmulSizes): Cost => ({ flops: 2 * M * N * K, bytes: 4 * (M * K + K * N + M * N) }),
  needs: ({ M, N, K }, { a, b, c, bias }) => ({ a: [a, M * K], b: [b, K * N], c: [c, M * N], bias: [bias, N] }),
});

/** The kernel and grid `matmul` would dispatch for these sizes on this adapter (for logs and benchmarks). */
export function matmulPlan(gpu: Gpu, sizes: MatmulSizes, withBias = false): Plan {
  const { variant, config } = MATMUL.choose(gpu, sizes, sizes.variant);
  return PLANS[variant](gpu, sizes, layoutOf(sizes, { bias: withBias }), config);
}

/**
 * C = op(A)·op(B) + bias (+ C with accumulate), bias[N] broadcast over rows and added in the epilogue; with
 * `more`, op(A) masked by maskA and its row sums written to rowSums in the same dispatch.
 */
export function matmulBias(
  gpu: Gpu,
  a: GPUBuffer,
  b: GPUBuffer,
  bias: GPUBuffer | null,
  c: GPUBuffer,
  sizes: MatmulSizes,
  more: Pick<MatmulBuffers, 'maskA' | 'rowSums'> = {},
): void {
  const { M, N, K } = sizes;
  for (const [name, v] of Object.entries({ M, N, K })) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`matmul: ${name} must be a non-negative integer, got ${v}`);
  }
  if (M === 0 || N === 0) return;
  const flags = { withBias: !!bias, withMaskA: !!more.maskA, withRowSums: !!more.rowSums };
  MATMUL.run(gpu, { a, b, c, bias, maskA: more.maskA ?? null, rowSums: more.rowSums ?? null }, { ...sizes, ...flags });
}

/** C[M,N] = op(A)·op(B), or C += op(A)·op(B) with `accumulate`. A is [M,K] ([K,M] if transA), B [K,N] ([N,K] if transB). */
export function matmul(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, sizes: MatmulSizes): void {
  matmulBias(gpu, a, b, null, c, sizes);
}

export const matmulCost = MATMUL.cost;
