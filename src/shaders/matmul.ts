// Matrix multiply and the linear layer: C[M,N] = op(A)·op(B) (+ bias[N]) (+ C), float32, row-major.
// Layout: A stored [M,K], or [K,M] when transA; B stored [K,N], or [N,K] when transB; C [M,N].
// Linear layer in PyTorch layout: x [batch,in], w [out,in], b [out], y [batch,out] = x·wᵀ + b.
// Cost: 2·M·N·K flops; 4·(MK + KN + MN) bytes (each operand read once, C written once; more with accumulate).
//
// matmul_v1      naive: one invocation per C element, a scalar loop over K. The simplest-correct fallback.
// matmul_v2      register-tiled, barrier-free: each invocation computes a TM x TN tile of C in registers,
//                reading A and B as vec4 wherever the contiguous dimension is a multiple of 4 (scalar loads
//                otherwise; out-of-range rows and columns are clamped for loads and masked for stores).
//                No workgroup memory: on llvmpipe a workgroup runs on one CPU thread and every barrier is
//                a full stop of its SIMD loop (shared/GPU-NOTES.md), so this is the software-adapter kernel.
// matmul_v3      workgroup-memory tiled for real GPUs: a 16x16 workgroup computes a 64x64 block of C, each
//                invocation a 4x4 register tile strided by 16; 64x16 slabs of A and B are staged through
//                workgroup memory with coalesced loads (the transposes are undone while staging).
// Chosen: v2 where gpu.isSoftware, v3 otherwise; `variant` forces one (the tests run all three).
// Every variant fuses the epilogue: + bias[j] (linearForward) and + C (accumulate, gradient accumulation).
//
// bias_add_v1    y[r,c] = x[r,c] + b[c], one invocation per element (in place when x and y are one buffer).
// bias_grad_v1   db[c] = Σ_r dy[r,c], one invocation per column looping over rows (software adapters).
// bias_grad_v2   the same as a workgroup reduction: 16 columns x 16 row-strides per workgroup (GPUs).
//
// Backward of y = x·wᵀ + b:  dx = dy·w (matmul, no transposes);  dw = dyᵀ·x (transA);  db = Σ_rows dy.
import { ShapeError } from '../errors.js';
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, grid1d, memoKernel, uniforms } from './common.js';

export type MatmulVariant = 'v1' | 'v2' | 'v3';
export const MATMUL_VARIANTS: readonly MatmulVariant[] = ['v1', 'v2', 'v3'];

export interface MatmulSizes {
  M: number;
  N: number;
  K: number;
  /** A is stored [K,M] (C = Aᵀ·B). */
  transA?: boolean;
  /** B is stored [N,K] (C = A·Bᵀ). */
  transB?: boolean;
  /** C += op(A)·op(B) instead of C = op(A)·op(B). */
  accumulate?: boolean;
  /** Force a kernel version; by default v2 on software adapters, v3 on GPUs. */
  variant?: MatmulVariant;
}

/** Compile-time shape of a matmul kernel: which operands are transposed, which load as vec4, the epilogue. */
export interface MatmulLayout {
  transA: boolean;
  transB: boolean;
  /** A's contiguous dimension (K, or M when transA) is a multiple of 4, so A is read as vec4. */
  vecA: boolean;
  /** B's contiguous dimension (N, or K when transB) is a multiple of 4, so B is read as vec4. */
  vecB: boolean;
  accumulate: boolean;
  bias: boolean;
}

/** Register tile of one matmul_v2 invocation (TM rows x TN columns, TN a multiple of 4) and its workgroup. */
export interface RegisterTile {
  tm: number;
  tn: number;
  wgx: number;
  wgy: number;
}

/** Chosen by measurement on llvmpipe at M=N=K=512 (see bench/kernels-matmul.ts, `--filter matmul_v2 tile`). */
export const DEFAULT_TILE: RegisterTile = { tm: 4, tn: 8, wgx: 8, wgy: 8 };

// ---- WGSL shared by the variants ------------------------------------------------------------------------

// Bindings 0..3 (+4 for the bias). A and B are arrays of vec4 when they load as vec4, else of f32; ldA/ldB
// read one element either way, so the scalar paths (edges, K tails) look the same in both cases.
function header(l: MatmulLayout, vecA: boolean, vecB: boolean): string {
  const arr = (v: boolean) => (v ? 'array<vec4f>' : 'array<f32>');
  const ld = (name: string, v: boolean) =>
    v ? `fn ld${name.toUpperCase()}(i: u32) -> f32 { return ${name}[i >> 2u][i & 3u]; }` : `fn ld${name.toUpperCase()}(i: u32) -> f32 { return ${name}[i]; }`;
  return /* wgsl */ `
struct Params { M: u32, N: u32, K: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: ${arr(vecA)};
@group(0) @binding(2) var<storage, read> b: ${arr(vecB)};
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
${l.bias ? '@group(0) @binding(4) var<storage, read> bias: array<f32>;' : ''}
${ld('a', vecA)}
${ld('b', vecB)}
// Element (i, k) of op(A) and (k, j) of op(B), as flat indices into the stored arrays.
fn idxA(i: u32, k: u32) -> u32 { return ${l.transA ? 'k * p.M + i' : 'i * p.K + k'}; }
fn idxB(k: u32, j: u32) -> u32 { return ${l.transB ? 'j * p.K + k' : 'k * p.N + j'}; }
// The fused epilogue: C[i,j] = acc (+ bias[j]) (+ C[i,j]).
fn store(i: u32, j: u32, acc: f32) {
  let o = i * p.N + j;
  c[o] = acc${l.bias ? ' + bias[j]' : ''}${l.accumulate ? ' + c[o]' : ''};
}`;
}

const layoutTag = (l: MatmulLayout) =>
  `${l.transA ? 't' : 'n'}${l.transB ? 't' : 'n'}${l.vecA ? '4' : '1'}${l.vecB ? '4' : '1'}${l.bias ? '_bias' : ''}${l.accumulate ? '_acc' : ''}`;

// ---- v1: one invocation per output ----------------------------------------------------------------------

const V1_WG = 16;

export const matmulV1Kernel = memoKernel((l: MatmulLayout) => ({
  name: `matmul_v1_${layoutTag(l)}`,
  wgsl: /* wgsl */ `${header(l, false, false)}
@compute @workgroup_size(${V1_WG}, ${V1_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y;
  let j = g.x;
  if (i >= p.M || j >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) { acc = fma(ldA(idxA(i, k)), ldB(idxB(k, j)), acc); }
  store(i, j, acc);
}`,
}));

// ---- v2: register tile per invocation, no workgroup memory ----------------------------------------------

// The generated body is fully unrolled over the tile: acc{r}_{q} holds C[i0+r, j0+4q .. j0+4q+3].
// a(r, kk) and b4(kk, q) are the WGSL expressions for op(A)[i0+r, k+kk] and op(B)[k+kk, j0+4q .. +3].
export const matmulV2Kernel = memoKernel((l: MatmulLayout, t: RegisterTile) => {
  const { tm, tn, wgx, wgy } = t;
  if (tn % 4 !== 0) throw new Error(`matmul_v2: tile width ${tn} is not a multiple of 4`);
  const tq = tn / 4;
  // vec4 loads need the tile edge to fall on a vec4 boundary too.
  const vecA = l.vecA && (!l.transA || tm % 4 === 0);
  const vecB = l.vecB;
  const R = [...Array(tm).keys()];
  const Q = [...Array(tq).keys()];
  const C = [...Array(tn).keys()];
  const KK = [0, 1, 2, 3];
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);

  // Clamped load coordinates: rows past M and columns past N read real data that the store then drops.
  for (const r of R) emit(`let ra${r} = min(i0 + ${r}u, p.M - 1u);`);
  for (const c of C) emit(`let cb${c} = min(j0 + ${c}u, p.N - 1u);`);
  if (vecA && l.transA) for (const q of [...Array(tm / 4).keys()]) emit(`let ra4_${q} = min(i0 / 4u + ${q}u, p.M / 4u - 1u);`);
  if (vecB && !l.transB) for (const q of Q) emit(`let cb4_${q} = min(j0 / 4u + ${q}u, p.N / 4u - 1u);`);
  for (const r of R) for (const q of Q) emit(`var acc${r}_${q} = vec4f(0.0);`);

  // Main loop: four steps of k per iteration.
  const body: string[] = [];
  const a: string[][] = R.map(() => []);
  if (!l.transA) {
    for (const r of R) {
      body.push(vecA ? `let a${r} = a[(ra${r} * p.K + k) >> 2u];` : `let a${r} = vec4f(${KK.map((kk) => `ldA(ra${r} * p.K + k + ${kk}u)`).join(', ')});`);
      for (const kk of KK) a[r][kk] = `a${r}[${kk}]`;
    }
  } else {
    for (const kk of KK) {
      if (vecA) {
        for (const q of [...Array(tm / 4).keys()]) body.push(`let a${kk}_${q} = a[(k + ${kk}u) * (p.M / 4u) + ra4_${q}];`);
        for (const r of R) a[r][kk] = `a${kk}_${r >> 2}[${r & 3}]`;
      } else {
        for (const r of R) {
          body.push(`let a${kk}_${r} = ldA((k + ${kk}u) * p.M + ra${r});`);
          a[r][kk] = `a${kk}_${r}`;
        }
      }
    }
  }
  const b4: string[][] = KK.map(() => []);
  if (!l.transB) {
    for (const kk of KK) {
      for (const q of Q) {
        body.push(
          vecB
            ? `let b${kk}_${q} = b[(k + ${kk}u) * (p.N / 4u) + cb4_${q}];`
            : `let b${kk}_${q} = vec4f(${KK.map((e) => `ldB((k + ${kk}u) * p.N + cb${4 * q + e})`).join(', ')});`,
        );
        b4[kk][q] = `b${kk}_${q}`;
      }
    }
  } else {
    for (const c of C) {
      body.push(vecB ? `let bt${c} = b[(cb${c} * p.K + k) >> 2u];` : `let bt${c} = vec4f(${KK.map((kk) => `ldB(cb${c} * p.K + k + ${kk}u)`).join(', ')});`);
    }
    for (const kk of KK) for (const q of Q) b4[kk][q] = `vec4f(${KK.map((e) => `bt${4 * q + e}[${kk}]`).join(', ')})`;
  }
  for (const kk of KK) for (const r of R) for (const q of Q) body.push(`acc${r}_${q} = fma(vec4f(${a[r][kk]}), ${b4[kk][q]}, acc${r}_${q});`);

  // Tail loop: the last K % 4 steps, scalar loads.
  const tail: string[] = [];
  for (const r of R) tail.push(`let a${r} = ldA(idxA(ra${r}, k));`);
  for (const c of C) tail.push(`let b${c} = ldB(idxB(k, cb${c}));`);
  for (const r of R) for (const q of Q) tail.push(`acc${r}_${q} = fma(vec4f(a${r}), vec4f(${KK.map((e) => `b${4 * q + e}`).join(', ')}), acc${r}_${q});`);

  const stores: string[] = [];
  for (const r of R) {
    for (const c of C) {
      const q = c >> 2, e = c & 3;
      const conds = [r > 0 ? `i0 + ${r}u < p.M` : '', c > 0 ? `j0 + ${c}u < p.N` : ''].filter(Boolean);
      const st = `store(i0 + ${r}u, j0 + ${c}u, acc${r}_${q}[${e}]);`;
      stores.push(conds.length ? `if (${conds.join(' && ')}) { ${st} }` : st);
    }
  }

  return {
    name: `matmul_v2_${tm}x${tn}_${wgx}x${wgy}_${layoutTag({ ...l, vecA, vecB })}`,
    wgsl: /* wgsl */ `${header(l, vecA, vecB)}
@compute @workgroup_size(${wgx}, ${wgy}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i0 = g.y * ${tm}u;
  let j0 = g.x * ${tn}u;
  if (i0 >= p.M || j0 >= p.N) { return; }
  ${lines.join('\n  ')}
  let K4 = p.K & ~3u;
  for (var k = 0u; k < K4; k += 4u) {
    ${body.join('\n    ')}
  }
  for (var k = K4; k < p.K; k++) {
    ${tail.join('\n    ')}
  }
  ${stores.join('\n  ')}
}`,
  };
});

// ---- v3: workgroup-memory tiles (GPUs) -------------------------------------------------------------------

const V3_BM = 64; // block rows (M) and columns (N) per workgroup
const V3_BK = 16; // K slab staged per barrier pair
const V3_T = 16; // 16x16 invocations, each a 4x4 tile strided by 16

export const matmulV3Kernel = memoKernel((l: MatmulLayout) => {
  const S = (V3_BM * V3_BK) / (V3_T * V3_T); // staged elements per invocation per operand
  // Staging order keeps consecutive invocations on consecutive addresses of the stored matrix.
  const stageA = l.transA ? `let kk = f / ${V3_BM}u; let ii = f % ${V3_BM}u;` : `let ii = f / ${V3_BK}u; let kk = f % ${V3_BK}u;`;
  const stageB = l.transB ? `let jj = f / ${V3_BK}u; let kk = f % ${V3_BK}u;` : `let kk = f / ${V3_BM}u; let jj = f % ${V3_BM}u;`;
  return {
    name: `matmul_v3_${layoutTag({ ...l, vecA: false, vecB: false })}`,
    wgsl: /* wgsl */ `${header(l, false, false)}
var<workgroup> As: array<array<f32, ${V3_BM}>, ${V3_BK}>;
var<workgroup> Bs: array<array<f32, ${V3_BM}>, ${V3_BK}>;
@compute @workgroup_size(${V3_T}, ${V3_T}) fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = lid.y * ${V3_T}u + lid.x;
  let bi = wg.y * ${V3_BM}u;
  let bj = wg.x * ${V3_BM}u;
  var acc: array<array<f32, 4>, 4>;
  for (var k0 = 0u; k0 < p.K; k0 += ${V3_BK}u) {
    for (var s = 0u; s < ${S}u; s++) {
      let f = t + s * ${V3_T * V3_T}u;
      {
        ${stageA}
        let i = bi + ii; let k = k0 + kk;
        As[kk][ii] = select(0.0, ldA(idxA(min(i, p.M - 1u), min(k, p.K - 1u))), i < p.M && k < p.K);
      }
      {
        ${stageB}
        let j = bj + jj; let k = k0 + kk;
        Bs[kk][jj] = select(0.0, ldB(idxB(min(k, p.K - 1u), min(j, p.N - 1u))), j < p.N && k < p.K);
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${V3_BK}u; kk++) {
      var av: array<f32, 4>;
      var bv: array<f32, 4>;
      for (var r = 0u; r < 4u; r++) { av[r] = As[kk][lid.y + r * ${V3_T}u]; bv[r] = Bs[kk][lid.x + r * ${V3_T}u]; }
      for (var r = 0u; r < 4u; r++) {
        for (var q = 0u; q < 4u; q++) { acc[r][q] = fma(av[r], bv[q], acc[r][q]); }
      }
    }
    workgroupBarrier();
  }
  for (var r = 0u; r < 4u; r++) {
    for (var q = 0u; q < 4u; q++) {
      let i = bi + lid.y + r * ${V3_T}u;
      let j = bj + lid.x + q * ${V3_T}u;
      if (i < p.M && j < p.N) { store(i, j, acc[r][q]); }
    }
  }
}`,
  };
});

// ---- dispatch ----------------------------------------------------------------------------------------------

function checkSizes(op: string, s: { M: number; N: number; K: number }): void {
  for (const [k, v] of Object.entries(s)) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${op}: ${k} must be a non-negative integer, got ${v}`);
  }
}

function checkGrid(op: string, workgroups: [number, number], sizes: MatmulSizes): [number, number] {
  if (workgroups[0] > 65535 || workgroups[1] > 65535) {
    throw new ShapeError(`${op}: M=${sizes.M} N=${sizes.N} needs ${workgroups.join('x')} workgroups, more than 65535 per dimension; split the matrix`);
  }
  return workgroups;
}

/** Records C = op(A)·op(B) (+ bias) (+ C) with the chosen variant; `bias` (length N) may be null. */
export function matmulWithBias(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, bias: GPUBuffer | null, c: GPUBuffer, sizes: MatmulSizes, tile: RegisterTile = DEFAULT_TILE): void {
  const { M, N, K } = sizes;
  checkSizes('matmul', { M, N, K });
  if (M === 0 || N === 0) return;
  const transA = !!sizes.transA, transB = !!sizes.transB;
  const layout: MatmulLayout = {
    transA,
    transB,
    vecA: (transA ? M : K) % 4 === 0,
    vecB: (transB ? K : N) % 4 === 0,
    accumulate: !!sizes.accumulate,
    bias: bias !== null,
  };
  const variant = sizes.variant ?? (gpu.isSoftware ? 'v2' : 'v3');
  const buffers = bias ? [a, b, c, bias] : [a, b, c];
  const params = uniforms(M, N, K);
  let kernel, workgroups: [number, number];
  if (variant === 'v1') {
    kernel = matmulV1Kernel(layout);
    workgroups = [Math.ceil(N / V1_WG), Math.ceil(M / V1_WG)];
  } else if (variant === 'v2') {
    kernel = matmulV2Kernel(layout, tile);
    workgroups = [Math.ceil(N / (tile.tn * tile.wgx)), Math.ceil(M / (tile.tm * tile.wgy))];
  } else {
    kernel = matmulV3Kernel(layout);
    workgroups = [Math.ceil(N / V3_BM), Math.ceil(M / V3_BM)];
  }
  gpu.dispatch({ kernel, params, buffers, workgroups: checkGrid(kernel.name, workgroups, sizes) });
}

/** C[M,N] = op(A)·op(B), or C += op(A)·op(B) with `accumulate`. A is [M,K] ([K,M] if transA), B [K,N] ([N,K] if transB). */
export function matmul(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, sizes: MatmulSizes): void {
  matmulWithBias(gpu, a, b, null, c, sizes);
}

export const matmulCost = ({ M, N, K }: { M: number; N: number; K: number }): Cost => ({
  flops: 2 * M * N * K,
  bytes: 4 * (M * K + K * N + M * N),
});

// ---- bias ------------------------------------------------------------------------------------------------

export interface BiasSizes {
  rows: number;
  cols: number;
}

const BIAS_WG = 256;

const biasAddKernel = memoKernel((inPlace: boolean) => ({
  name: inPlace ? 'bias_add_v1_inplace' : 'bias_add_v1',
  wgsl: /* wgsl */ `
struct Params { n: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${inPlace ? '' : '@group(0) @binding(1) var<storage, read> x: array<f32>;'}
@group(0) @binding(${inPlace ? 1 : 2}) var<storage, read> b: array<f32>;
@group(0) @binding(${inPlace ? 2 : 3}) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${BIAS_WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(BIAS_WG)};
  if (i < p.n) { y[i] = ${inPlace ? 'y[i]' : 'x[i]'} + b[i % p.cols]; }
}`,
}));

/** y[r,c] = x[r,c] + b[c] for a [rows, cols] matrix; x and y may be the same buffer. */
export function biasAdd(gpu: Gpu, x: GPUBuffer, b: GPUBuffer, y: GPUBuffer, { rows, cols }: BiasSizes): void {
  const n = rows * cols;
  if (n === 0) return;
  const inPlace = x === y;
  gpu.dispatch({ kernel: biasAddKernel(inPlace), params: uniforms(n, cols), buffers: inPlace ? [b, y] : [x, b, y], workgroups: grid1d(n, BIAS_WG) });
}
export const biasAddCost = ({ rows, cols }: BiasSizes): Cost => ({ flops: rows * cols, bytes: 4 * (2 * rows * cols + cols) });

export type BiasGradVariant = 'v1' | 'v2';
export const BIAS_GRAD_VARIANTS: readonly BiasGradVariant[] = ['v1', 'v2'];

export interface BiasGradSizes extends BiasSizes {
  /** db += Σ_rows dy instead of db = Σ_rows dy. */
  accumulate?: boolean;
  /** Force a kernel version; by default v1 on software adapters, v2 on GPUs. */
  variant?: BiasGradVariant;
}

const BG1_WG = 64;
const BG2_T = 16;

const biasGradV1Kernel = memoKernel((accumulate: boolean) => ({
  name: `bias_grad_v1${accumulate ? '_acc' : ''}`,
  wgsl: /* wgsl */ `
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;
@compute @workgroup_size(${BG1_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.cols + j]; }
  db[j] = s${accumulate ? ' + db[j]' : ''};
}`,
}));

const biasGradV2Kernel = memoKernel((accumulate: boolean) => ({
  name: `bias_grad_v2${accumulate ? '_acc' : ''}`,
  wgsl: /* wgsl */ `
struct Params { rows: u32, cols: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;
var<workgroup> part: array<array<f32, ${BG2_T}>, ${BG2_T}>;
@compute @workgroup_size(${BG2_T}, ${BG2_T}) fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let j = wg.x * ${BG2_T}u + lid.x;
  var s = 0.0;
  if (j < p.cols) {
    for (var r = lid.y; r < p.rows; r += ${BG2_T}u) { s += dy[r * p.cols + j]; }
  }
  part[lid.y][lid.x] = s;
  for (var h = ${BG2_T / 2}u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (lid.y < h) { part[lid.y][lid.x] += part[lid.y + h][lid.x]; }
  }
  if (lid.y == 0u && j < p.cols) { db[j] = part[0][lid.x]${accumulate ? ' + db[j]' : ''}; }
}`,
}));

// db[c] = Σ_r dy[r,c]  (the bias's gradient: the bias is broadcast over rows in the forward)
export function biasGrad(gpu: Gpu, dy: GPUBuffer, db: GPUBuffer, sizes: BiasGradSizes): void {
  const { rows, cols } = sizes;
  if (cols === 0) return;
  const variant = sizes.variant ?? (gpu.isSoftware ? 'v1' : 'v2');
  const accumulate = !!sizes.accumulate;
  const params = uniforms(rows, cols);
  if (variant === 'v1') gpu.dispatch({ kernel: biasGradV1Kernel(accumulate), params, buffers: [dy, db], workgroups: [Math.ceil(cols / BG1_WG)] });
  else gpu.dispatch({ kernel: biasGradV2Kernel(accumulate), params, buffers: [dy, db], workgroups: [Math.ceil(cols / BG2_T)] });
}
export const biasGradCost = ({ rows, cols }: BiasSizes): Cost => ({ flops: rows * cols, bytes: 4 * (rows * cols + cols) });

// ---- linear layer (PyTorch layout: w [out, in]) -----------------------------------------------------------

export interface LinearSizes {
  batch: number;
  inFeatures: number;
  outFeatures: number;
  /** Forces the matmul version (tests and benchmarks). */
  variant?: MatmulVariant;
}

export interface LinearBackwardSizes extends LinearSizes {
  /** dw += and db += (parameter gradients accumulate across backward calls); dx is overwritten unless accumulateDx. */
  accumulate?: boolean;
  /** dx += dy·w (when x feeds more than one op). */
  accumulateDx?: boolean;
  /** Forces the bias-gradient version. */
  biasGradVariant?: BiasGradVariant;
}

/** y[batch,out] = x[batch,in]·wᵀ + b, the bias added in the matmul's epilogue; `b` may be null. */
export function linearForward(gpu: Gpu, x: GPUBuffer, w: GPUBuffer, b: GPUBuffer | null, y: GPUBuffer, s: LinearSizes): void {
  matmulWithBias(gpu, x, w, b, y, { M: s.batch, N: s.outFeatures, K: s.inFeatures, transB: true, variant: s.variant });
}

/** Gradients of y = x·wᵀ + b; pass null for any of dx, dw, db that is not needed. */
export function linearBackward(
  gpu: Gpu,
  x: GPUBuffer,
  w: GPUBuffer,
  dy: GPUBuffer,
  dx: GPUBuffer | null,
  dw: GPUBuffer | null,
  db: GPUBuffer | null,
  s: LinearBackwardSizes,
): void {
  const { batch, inFeatures, outFeatures, variant } = s;
  // dx[batch,in] = dy[batch,out]·w[out,in]
  if (dx) matmul(gpu, dy, w, dx, { M: batch, N: inFeatures, K: outFeatures, accumulate: s.accumulateDx, variant });
  // dw[out,in] = dyᵀ·x: dy is stored [batch,out] = [K,M]
  if (dw) matmul(gpu, dy, x, dw, { M: outFeatures, N: inFeatures, K: batch, transA: true, accumulate: s.accumulate, variant });
  // db[out] = Σ_batch dy
  if (db) biasGrad(gpu, dy, db, { rows: batch, cols: outFeatures, accumulate: s.accumulate, variant: s.biasGradVariant });
}

export const linearCost = ({ batch, inFeatures, outFeatures }: LinearSizes): Cost => {
  const m = matmulCost({ M: batch, N: outFeatures, K: inFeatures });
  return { flops: m.flops + batch * outFeatures, bytes: m.bytes + 4 * outFeatures };
};

export const linearBackwardCost = ({ batch, inFeatures, outFeatures }: LinearSizes): Cost => {
  const dx = matmulCost({ M: batch, N: inFeatures, K: outFeatures });
  const dw = matmulCost({ M: outFeatures, N: inFeatures, K: batch });
  const db = biasGradCost({ rows: batch, cols: outFeatures });
  return { flops: dx.flops + dw.flops + db.flops, bytes: dx.bytes + dw.bytes + db.bytes };
};
