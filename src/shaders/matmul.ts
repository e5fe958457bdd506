// Matrix multiply and the linear layer: C[M,N] = op(A)·op(B) (+ bias[N]) (+ C), float32, row-major.
// Layout: A stored [M,K], or [K,M] when transA; B stored [K,N], or [N,K] when transB; C [M,N].
// Linear layer in PyTorch layout: x [batch,in], w [out,in], b [out], y [batch,out] = x·wᵀ + b.
// Cost: 2·M·N·K flops; 4·(MK + KN + MN) bytes (each operand read once, C written once; more with accumulate).
//
// matmul_v1      naive: one invocation per C element, a scalar loop over K. The simplest-correct fallback.
// matmul_v2      register-tiled, barrier-free: each invocation computes a TM x TN tile of C in registers,
//                reading A and B as vec4 wherever the contiguous dimension is a multiple of 4 (scalar loads
//                otherwise). No workgroup memory: on llvmpipe a workgroup runs on one CPU thread and every
//                barrier stops its SIMD loop (shared/GPU-NOTES.md). Software adapters without subgroups.
// matmul_v3      workgroup-memory tiled for real GPUs: a 16x16 workgroup computes a 64x64 block of C, each
//                invocation a 4x4 register tile strided by 16; 64x16 slabs of A and B are staged through
//                workgroup memory with coalesced loads (the transposes are undone while staging).
// matmul_v4      v2's register tiles, with one subgroup per workgroup sharing its B loads: each lane loads a
//                slice of B's row and subgroupBroadcast gives every lane all of it. On llvmpipe every
//                per-lane load is a gather, the real cost of v2; sharing them doubles v2's speed.
// Chosen (defaultMatmulVariant): v4 on software adapters with a fixed subgroup size, else v2; v3 on GPUs.
// `variant` forces one; the tests run all four. Every variant fuses the epilogue: + bias[j] (linearForward)
// and + C (accumulate, a uniform flag, for gradient accumulation).
// v2 and v4 clamp loads to the last row/column and mask the stores, so any M, N, K works; they hand out
// blocks in bands of 8 block rows, which keeps 2048^3 as fast as 1024^3 on llvmpipe (twice as fast as without).
//
// bias_add_v1    y[r,c] = x[r,c] + b[c], one invocation per element (in place when x and y are one buffer).
// bias_grad_v1   db[c] = Σ_r dy[r,c], one invocation per column looping over rows (software adapters).
// bias_grad_v2   the same as a workgroup reduction: 16 columns x 16 row-strides per workgroup (GPUs).
//
// Backward of y = x·wᵀ + b:  dx = dy·w (matmul, no transposes);  dw = dyᵀ·x (transA);  db = Σ_rows dy.
import { GpuError, ShapeError } from '../errors.js';
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, grid1d, type Kernel, memoKernel, uniforms } from './common.js';

export type MatmulVariant = 'v1' | 'v2' | 'v3' | 'v4';
export const MATMUL_VARIANTS: readonly MatmulVariant[] = ['v1', 'v2', 'v3', 'v4'];

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
  /** Force a kernel version (tests, benchmarks); by default {@link defaultMatmulVariant}. */
  variant?: MatmulVariant;
  /** Benchmarks only: the v2 register tile (default {@link DEFAULT_TILE}). */
  registerTile?: RegisterTile;
  /** Benchmarks only: the v4 tile (by default 4x32 when M and N are at least 128, else 4x16). */
  subgroupTile?: Omit<SubgroupTile, 'sg'>;
}

/** Compile-time shape of a matmul kernel: which operands are transposed, which load as vec4, the epilogue. */
export interface MatmulLayout {
  transA: boolean;
  transB: boolean;
  /** A's contiguous dimension (K, or M when transA) is a multiple of 4, so A is read as vec4. */
  vecA: boolean;
  /** B's contiguous dimension (N, or K when transB) is a multiple of 4, so B is read as vec4. */
  vecB: boolean;
  bias: boolean;
}

/** Register tile of one matmul_v2 invocation (TM rows x TN columns, TN a multiple of 4) and its workgroup. */
export interface RegisterTile {
  tm: number;
  tn: number;
  wgx: number;
  wgy: number;
}

/** Tile of one matmul_v4 workgroup: each of its sg lanes (the subgroup size) owns tm rows of the same tn columns. */
export interface SubgroupTile {
  tm: number;
  tn: number;
  sg: number;
}

// Tiles, measured on llvmpipe (2 Zen 5 vCPUs shared with other jobs, so ranges over several runs) at
// M=N=K=512 (`npm run bench:kernels -- --filter tile`), and the time llvmpipe takes to compile the kernel at
// its first dispatch, which grows with the unrolled tile (Mesa's disk cache then keeps it):
//   v4  4x32: 14-22 GFLOP/s, 2-4 s    4x16: 11-19, 1-1.6 s    8x16: 10-22, 4-5 s    2x32: 12-19
//   v2  4x8 on 8x8: 4.5-8, 1-2.4 s    8x8 on 4x4: 7-11, 2-6 s    8x16 on 4x4: 7.5-12.5, 5-14 s
// v2 is only the fallback for software adapters without subgroups, so it gets the cheap tile. v4 takes the
// wide tile only for large matrices, where it pays; narrow outputs (N = 10, 50) waste less with 16 columns.
export const DEFAULT_TILE: RegisterTile = { tm: 4, tn: 8, wgx: 8, wgy: 8 };
const subgroupTileFor = (M: number, N: number): Omit<SubgroupTile, 'sg'> => (M >= 128 && N >= 128 ? { tm: 4, tn: 32 } : { tm: 4, tn: 16 });

// ---- WGSL shared by the variants ------------------------------------------------------------------------

// Bindings 0..3 (+4 for the bias). A and B are arrays of vec4 when they load as vec4, else of f32; ldA/ldB
// read one element either way, so the scalar paths (edges, K tails) look the same in both cases.
function header(l: MatmulLayout): string {
  const { vecA, vecB } = l;
  const arr = (v: boolean) => (v ? 'array<vec4f>' : 'array<f32>');
  const ld = (name: string, v: boolean) =>
    v ? `fn ld${name.toUpperCase()}(i: u32) -> f32 { return ${name}[i >> 2u][i & 3u]; }` : `fn ld${name.toUpperCase()}(i: u32) -> f32 { return ${name}[i]; }`;
  return /* wgsl */ `
struct Params { M: u32, N: u32, K: u32, accumulate: u32 }
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
// The fused epilogue: C[i,j] = acc (+ bias[j]) (+ C[i,j]). accumulate is uniform, so the branch is free.
fn store(i: u32, j: u32, acc: f32) {
  let o = i * p.N + j;
  var v = acc${l.bias ? ' + bias[j]' : ''};
  if (p.accumulate != 0u) { v += c[o]; }
  c[o] = v;
}`;
}

const layoutTag = (l: MatmulLayout) =>
  `${l.transA ? 't' : 'n'}${l.transB ? 't' : 'n'}${l.vecA ? '4' : '1'}${l.vecB ? '4' : '1'}${l.bias ? '_bias' : ''}`;

// ---- v1: one invocation per output ----------------------------------------------------------------------

const V1_WG = 16;

export const matmulV1Kernel = memoKernel((transA: boolean, transB: boolean, bias: boolean) => {
  const l: MatmulLayout = { transA, transB, vecA: false, vecB: false, bias };
  return {
    name: `matmul_v1_${layoutTag(l)}`,
    wgsl: /* wgsl */ `${header(l)}
@compute @workgroup_size(${V1_WG}, ${V1_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y;
  let j = g.x;
  if (i >= p.M || j >= p.N) { return; }
  var acc = 0.0;
  for (var k = 0u; k < p.K; k++) { acc = fma(ldA(idxA(i, k)), ldB(idxB(k, j)), acc); }
  store(i, j, acc);
}`,
  };
});

// ---- register tiles (v2, v4): code generation shared by both ---------------------------------------------
//
// The kernel body is unrolled over the tile and over four steps of k: acc{r}_{q} holds C[i0+r, j0+4q .. +3].
// Loads are clamped to the last row/column, so edge tiles read real data that the masked stores then drop.
// The main loop covers K rounded down to 4 (vec4 loads where the layout allows); a scalar loop the rest.

const range = (n: number) => [...Array(n).keys()];
const KK = [0, 1, 2, 3];

/** WGSL statements for one tile operand: setup before the loop, loads for k..k+3, loads for one k (tail). */
interface TileLoads {
  pre: string[];
  body: string[];
  tail: string[];
}

// This invocation's tm rows of op(A), starting at i0. Sets a[r][kk] (main loop) and aT[r] (tail) expressions.
function loadA(l: MatmulLayout, vecA: boolean, tm: number): TileLoads & { a: string[][]; aT: string[] } {
  const R = range(tm);
  const pre = R.map((r) => `let ra${r} = min(i0 + ${r}u, p.M - 1u);`);
  const body: string[] = [];
  const a: string[][] = R.map(() => []);
  if (!l.transA) {
    // A [M,K]: one vec4 along k per row
    for (const r of R) {
      body.push(vecA ? `let a${r} = a[(ra${r} * p.K + k) >> 2u];` : `let a${r} = vec4f(${KK.map((kk) => `ldA(ra${r} * p.K + k + ${kk}u)`).join(', ')});`);
      for (const kk of KK) a[r][kk] = `a${r}[${kk}]`;
    }
  } else if (vecA) {
    // Aᵀ stored [K,M]: one vec4 along m covers four rows (tm % 4 == 0 and M % 4 == 0, so no vec4 straddles M)
    for (const q of range(tm / 4)) pre.push(`let ra4_${q} = min(i0 / 4u + ${q}u, p.M / 4u - 1u);`);
    for (const kk of KK) for (const q of range(tm / 4)) body.push(`let a${kk}_${q} = a[(k + ${kk}u) * (p.M / 4u) + ra4_${q}];`);
    for (const r of R) for (const kk of KK) a[r][kk] = `a${kk}_${r >> 2}[${r & 3}]`;
  } else {
    for (const kk of KK) for (const r of R) body.push(`let a${kk}_${r} = ldA((k + ${kk}u) * p.M + ra${r});`);
    for (const r of R) for (const kk of KK) a[r][kk] = `a${kk}_${r}`;
  }
  return { pre, body, a, tail: R.map((r) => `let a${r} = ldA(idxA(ra${r}, k));`), aT: R.map((r) => `a${r}`) };
}

// Assembles a register-tile kernel from its B loads, which must define `let bv{kk}_{q}` (op(B)[k+kk, j0+4q .. +3])
// in the main loop and `let bv{q}` (op(B)[k, j0+4q .. +3]) in the tail.
function tileKernel(l: MatmulLayout, vecA: boolean, tm: number, tn: number, B: TileLoads, prologue: string, entry: string): string {
  const A = loadA(l, vecA, tm);
  const R = range(tm), Q = range(tn / 4);
  const fmas = (kk: number) => R.flatMap((r) => Q.map((q) => `acc${r}_${q} = fma(vec4f(${A.a[r][kk]}), bv${kk}_${q}, acc${r}_${q});`));
  const stores = R.flatMap((r) =>
    range(tn).map((c) => `if (i0 + ${r}u < p.M && j0 + ${c}u < p.N) { store(i0 + ${r}u, j0 + ${c}u, acc${r}_${c >> 2}[${c & 3}]); }`),
  );
  return /* wgsl */ `${entry} {
  ${prologue}
  ${[...A.pre, ...B.pre].join('\n  ')}
  ${R.flatMap((r) => Q.map((q) => `var acc${r}_${q} = vec4f(0.0);`)).join('\n  ')}
  let K4 = p.K & ~3u;
  for (var k = 0u; k < K4; k += 4u) {
    ${[...A.body, ...B.body, ...KK.flatMap(fmas)].join('\n    ')}
  }
  for (var k = K4; k < p.K; k++) {
    ${[...A.tail, ...B.tail, ...R.flatMap((r) => Q.map((q) => `acc${r}_${q} = fma(vec4f(${A.aT[r]}), bv${q}, acc${r}_${q});`))].join('\n    ')}
  }
  ${stores.join('\n  ')}
}`;
}

// Workgroup ids in bands of SWIZZLE_BAND block rows: consecutive workgroups walk down a band before moving
// right, so a B column panel is reused by the whole band while it is in cache, and the band's A rows stay in
// cache across the columns. Without it, 2048^3 ran at half the speed of 1024^3 on llvmpipe (B streamed
// from memory once per block row). Defines blk: vec2u, the (column, row) block this workgroup computes.
const SWIZZLE_BAND = 8;
const SWIZZLE = `let pid = wid.y * nwg.x + wid.x;
  let first = pid / (${SWIZZLE_BAND}u * nwg.x) * ${SWIZZLE_BAND}u;
  let rows = min(nwg.y - first, ${SWIZZLE_BAND}u);
  let inBand = pid % (${SWIZZLE_BAND}u * nwg.x);
  let blk = vec2u(inBand / rows, first + inBand % rows);`;

// vec4 loads along M need the tile's rows to fall on vec4 boundaries.
const vecAFor = (l: MatmulLayout, tm: number) => l.vecA && (!l.transA || tm % 4 === 0);

// ---- v2: register tile per invocation, no workgroup memory, no subgroups ----------------------------------

export const matmulV2Kernel = memoKernel((l: MatmulLayout, t: RegisterTile) => {
  const { tm, tn, wgx, wgy } = t;
  if (tn % 4 !== 0) throw new Error(`matmul_v2: tile width ${tn} is not a multiple of 4`);
  const vecA = vecAFor(l, tm), vecB = l.vecB;
  const C = range(tn), Q = range(tn / 4);
  const B: TileLoads = { pre: C.map((c) => `let cb${c} = min(j0 + ${c}u, p.N - 1u);`), body: [], tail: [] };
  if (!l.transB) {
    // B [K,N]: vec4 along n
    if (vecB) B.pre.push(...Q.map((q) => `let cb4_${q} = min(j0 / 4u + ${q}u, p.N / 4u - 1u);`));
    for (const kk of KK) {
      for (const q of Q) {
        B.body.push(
          vecB
            ? `let bv${kk}_${q} = b[(k + ${kk}u) * (p.N / 4u) + cb4_${q}];`
            : `let bv${kk}_${q} = vec4f(${KK.map((e) => `ldB((k + ${kk}u) * p.N + cb${4 * q + e})`).join(', ')});`,
        );
      }
    }
  } else {
    // Bᵀ stored [N,K]: vec4 along k per column, regrouped into vec4s along n
    for (const c of C) B.body.push(vecB ? `let bt${c} = b[(cb${c} * p.K + k) >> 2u];` : `let bt${c} = vec4f(${KK.map((kk) => `ldB(cb${c} * p.K + k + ${kk}u)`).join(', ')});`);
    for (const kk of KK) for (const q of Q) B.body.push(`let bv${kk}_${q} = vec4f(${KK.map((e) => `bt${4 * q + e}[${kk}]`).join(', ')});`);
  }
  B.tail.push(...C.map((c) => `let b${c} = ldB(idxB(k, cb${c}));`), ...Q.map((q) => `let bv${q} = vec4f(${KK.map((e) => `b${4 * q + e}`).join(', ')});`));
  const entry = `@compute @workgroup_size(${wgx}, ${wgy}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u)`;
  const prologue = `${SWIZZLE}
  let i0 = (blk.y * ${wgy}u + lid.y) * ${tm}u;
  let j0 = (blk.x * ${wgx}u + lid.x) * ${tn}u;
  if (i0 >= p.M || j0 >= p.N) { return; }`;
  return {
    name: `matmul_v2_${tm}x${tn}_${wgx}x${wgy}_${layoutTag({ ...l, vecA, vecB })}`,
    wgsl: `${header({ ...l, vecA, vecB })}\n${tileKernel(l, vecA, tm, tn, B, prologue, entry)}`,
  };
});

// ---- v4: register tile per lane, B shared across the subgroup ------------------------------------------
//
// One workgroup is one subgroup of sg lanes (the adapter's fixed subgroup size). Lane l computes rows
// i0 = (wid.y*sg + l)*tm .. +tm-1 of the workgroup's tn columns. The lanes load different slices of op(B)'s
// row (one gather brings sg useful values, where per-lane loads of the whole row would bring one) and
// subgroupBroadcast from a constant lane, a register shuffle on llvmpipe, hands every lane the full row.
// No lane may return early: a broadcast reads the other lanes' registers.

export const matmulV4Kernel = memoKernel((l: MatmulLayout, t: SubgroupTile) => {
  const { tm, tn, sg } = t;
  if (tn % sg !== 0 || tn % 4 !== 0) throw new Error(`matmul_v4: tile width ${tn} is not a multiple of ${sg} and 4`);
  const vecA = vecAFor(l, tm);
  // vec4 loads along N: lane s loads columns 4s..4s+3 of each group of 4*sg columns (in a tile narrower than
  // 4*sg the last lanes load a clamped duplicate); along K (transB): lane s loads its column's 4 k.
  const vecB = l.vecB;
  const Q = range(tn / 4), G = range(tn / sg);
  const col = (g: number) => `min(j0 + ${g * sg}u + lane, p.N - 1u)`;
  const bc = (v: string, s: number) => `subgroupBroadcast(${v}, ${s}u)`;
  const B: TileLoads = { pre: [], body: [], tail: [] };
  // bcol(kk, c): op(B)[k+kk, j0+c] in every lane
  let bcol: (kk: number, c: number) => string;
  if (!l.transB && vecB) {
    for (const kk of KK) for (const g of range(Math.ceil(tn / (4 * sg)))) B.body.push(`let b${kk}_${g} = b[(k + ${kk}u) * (p.N / 4u) + min(j0 / 4u + ${g * sg}u + lane, p.N / 4u - 1u)];`);
    bcol = (kk, c) => bc(`b${kk}_${Math.floor(c / (4 * sg))}[${c & 3}]`, (c >> 2) % sg);
  } else if (!l.transB) {
    for (const kk of KK) for (const g of G) B.body.push(`let b${kk}_${g} = ldB((k + ${kk}u) * p.N + ${col(g)});`);
    bcol = (kk, c) => bc(`b${kk}_${Math.floor(c / sg)}`, c % sg);
  } else {
    for (const g of G) {
      const at = `${col(g)} * p.K + k`;
      B.body.push(vecB ? `let bt${g} = b[(${at}) >> 2u];` : `let bt${g} = vec4f(${KK.map((kk) => `ldB(${at} + ${kk}u)`).join(', ')});`);
      for (let s = 0; s < sg; s++) B.body.push(`let bs${g * sg + s} = ${bc(`bt${g}`, s)};`);
    }
    bcol = (kk, c) => `bs${c}[${kk}]`;
  }
  for (const kk of KK) for (const q of Q) B.body.push(`let bv${kk}_${q} = vec4f(${KK.map((e) => bcol(kk, 4 * q + e)).join(', ')});`);
  B.tail.push(...G.map((g) => `let b${g} = ldB(idxB(k, ${col(g)}));`));
  B.tail.push(...Q.map((q) => `let bv${q} = vec4f(${KK.map((e) => bc(`b${Math.floor((4 * q + e) / sg)}`, (4 * q + e) % sg)).join(', ')});`));
  const entry = `@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) lane: u32)`;
  const prologue = `${SWIZZLE}
  let j0 = blk.x * ${tn}u;
  let i0 = (blk.y * ${sg}u + lane) * ${tm}u;`;
  return {
    name: `matmul_v4_${tm}x${tn}_sg${sg}_${layoutTag({ ...l, vecA, vecB })}`,
    wgsl: `enable subgroups;\n${header({ ...l, vecA, vecB })}\n${tileKernel(l, vecA, tm, tn, B, prologue, entry)}`,
  };
});

// ---- v3: workgroup-memory tiles (GPUs) -------------------------------------------------------------------

const V3_BM = 64; // block rows (M) and columns (N) per workgroup
const V3_BK = 16; // K slab staged per barrier pair
const V3_T = 16; // 16x16 invocations, each a 4x4 tile strided by 16

export const matmulV3Kernel = memoKernel((transA: boolean, transB: boolean, bias: boolean) => {
  const l: MatmulLayout = { transA, transB, vecA: false, vecB: false, bias };
  const S = (V3_BM * V3_BK) / (V3_T * V3_T); // staged elements per invocation per operand
  // Staging order keeps consecutive invocations on consecutive addresses of the stored matrix.
  const stageA = l.transA ? `let kk = f / ${V3_BM}u; let ii = f % ${V3_BM}u;` : `let ii = f / ${V3_BK}u; let kk = f % ${V3_BK}u;`;
  const stageB = l.transB ? `let jj = f / ${V3_BK}u; let kk = f % ${V3_BK}u;` : `let kk = f / ${V3_BM}u; let jj = f % ${V3_BM}u;`;
  return {
    name: `matmul_v3_${layoutTag(l)}`,
    wgsl: /* wgsl */ `${header(l)}
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

const subgroupSizes = new WeakMap<GPUDevice, number | null>();

/** The adapter's subgroup size when the device has subgroups and the size is fixed (llvmpipe: 8), else null. */
export function fixedSubgroupSize(gpu: Gpu): number | null {
  let size = subgroupSizes.get(gpu.device);
  if (size === undefined) {
    const info = gpu.device.adapterInfo as GPUAdapterInfo | undefined;
    const min = info?.subgroupMinSize, max = info?.subgroupMaxSize;
    size = gpu.device.features.has('subgroups') && min && min === max ? min : null;
    subgroupSizes.set(gpu.device, size);
  }
  return size;
}

/** The version `matmul` runs when none is forced: v4 on software adapters with fixed-size subgroups, else v2; v3 on GPUs. */
export function defaultMatmulVariant(gpu: Gpu): MatmulVariant {
  if (!gpu.isSoftware) return 'v3';
  return fixedSubgroupSize(gpu) ? 'v4' : 'v2';
}

/** The kernel and grid `matmul` would dispatch for these sizes on this adapter (for logs and benchmarks). */
export function matmulPlan(gpu: Gpu, sizes: MatmulSizes, withBias = false): { kernel: Kernel; workgroups: [number, number] } {
  const { M, N, K } = sizes;
  const transA = !!sizes.transA, transB = !!sizes.transB;
  const layout: MatmulLayout = { transA, transB, vecA: (transA ? M : K) % 4 === 0, vecB: (transB ? K : N) % 4 === 0, bias: withBias };
  const variant = sizes.variant ?? defaultMatmulVariant(gpu);
  let kernel: Kernel, workgroups: [number, number];
  if (variant === 'v1') {
    kernel = matmulV1Kernel(transA, transB, withBias);
    workgroups = [Math.ceil(N / V1_WG), Math.ceil(M / V1_WG)];
  } else if (variant === 'v2') {
    const t = sizes.registerTile ?? DEFAULT_TILE;
    kernel = matmulV2Kernel(layout, t);
    workgroups = [Math.ceil(N / (t.tn * t.wgx)), Math.ceil(M / (t.tm * t.wgy))];
  } else if (variant === 'v3') {
    kernel = matmulV3Kernel(transA, transB, withBias);
    workgroups = [Math.ceil(N / V3_BM), Math.ceil(M / V3_BM)];
  } else {
    const sg = fixedSubgroupSize(gpu);
    if (!sg) throw new GpuError('matmul_v4 needs the "subgroups" feature with a fixed subgroup size; this adapter has neither');
    const t = { ...(sizes.subgroupTile ?? subgroupTileFor(M, N)), sg };
    kernel = matmulV4Kernel(layout, t);
    workgroups = [Math.ceil(N / t.tn), Math.ceil(M / (t.tm * sg))];
  }
  if (workgroups[0] > 65535 || workgroups[1] > 65535) {
    throw new ShapeError(`${kernel.name}: M=${M} N=${N} needs ${workgroups.join('x')} workgroups, more than 65535 per dimension; split the matrix`);
  }
  return { kernel, workgroups };
}

/** C = op(A)·op(B) + bias (+ C with accumulate), bias[N] broadcast over rows and added in the epilogue. */
export function matmulBias(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, bias: GPUBuffer | null, c: GPUBuffer, sizes: MatmulSizes): void {
  const { M, N, K } = sizes;
  for (const [name, v] of Object.entries({ M, N, K })) {
    if (!Number.isInteger(v) || v < 0) throw new ShapeError(`matmul: ${name} must be a non-negative integer, got ${v}`);
  }
  if (M === 0 || N === 0) return;
  const { kernel, workgroups } = matmulPlan(gpu, sizes, bias !== null);
  const params = uniforms(M, N, K, sizes.accumulate ? 1 : 0);
  gpu.dispatch({ kernel, params, buffers: bias ? [a, b, c, bias] : [a, b, c], workgroups });
}

/** C[M,N] = op(A)·op(B), or C += op(A)·op(B) with `accumulate`. A is [M,K] ([K,M] if transA), B [K,N] ([N,K] if transB). */
export function matmul(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, c: GPUBuffer, sizes: MatmulSizes): void {
  matmulBias(gpu, a, b, null, c, sizes);
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

const biasGradV1Kernel = memoKernel(() => ({
  name: 'bias_grad_v1',
  wgsl: /* wgsl */ `
struct Params { rows: u32, cols: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> db: array<f32>;
@compute @workgroup_size(${BG1_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let j = g.x;
  if (j >= p.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < p.rows; r++) { s += dy[r * p.cols + j]; }
  if (p.accumulate != 0u) { s += db[j]; }
  db[j] = s;
}`,
}));

const biasGradV2Kernel = memoKernel(() => ({
  name: 'bias_grad_v2',
  wgsl: /* wgsl */ `
struct Params { rows: u32, cols: u32, accumulate: u32 }
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
  if (lid.y == 0u && j < p.cols) { db[j] = part[0][lid.x] + select(0.0, db[j], p.accumulate != 0u); }
}`,
}));

// db[c] = Σ_r dy[r,c]  (the bias's gradient: the bias is broadcast over rows in the forward)
export function biasGrad(gpu: Gpu, dy: GPUBuffer, db: GPUBuffer, sizes: BiasGradSizes): void {
  const { rows, cols } = sizes;
  if (cols === 0) return;
  const variant = sizes.variant ?? (gpu.isSoftware ? 'v1' : 'v2');
  const params = uniforms(rows, cols, sizes.accumulate ? 1 : 0);
  if (variant === 'v1') gpu.dispatch({ kernel: biasGradV1Kernel(), params, buffers: [dy, db], workgroups: [Math.ceil(cols / BG1_WG)] });
  else gpu.dispatch({ kernel: biasGradV2Kernel(), params, buffers: [dy, db], workgroups: [Math.ceil(cols / BG2_T)] });
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
  matmulBias(gpu, x, w, b, y, { M: s.batch, N: s.outFeatures, K: s.inFeatures, transB: true, variant: s.variant });
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
