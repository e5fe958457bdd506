// The WGSL of the matmul variants (see index.ts for what each is for). Every variant shares one declaration:
// uniforms M, N, K, accumulate; buffers a, b, c (+ bias); and element helpers, so the variants differ only
// in how they walk the product.

import { VariantError } from '../../errors.js';
import { type DeclaredKernel, declareKernel } from '../../gpu/kernel.js';
import { memoKernel, range } from '../wgsl.js';

/** Compile-time shape of a matmul kernel: which operands are transposed, which load as vec4, the epilogue. */
export interface MatmulLayout {
  transA: boolean;
  transB: boolean;
  /** A's contiguous dimension (K, or M when transA) is a multiple of 4, so A is read as vec4. */
  vecA: boolean;
  /** B's contiguous dimension (N, or K when transB) is a multiple of 4, so B is read as vec4. */
  vecB: boolean;
  bias: boolean;
  /** Epilogue: C = max(…, 0) (a linear layer's ReLU). */
  relu?: boolean;
  /** op(A) is zero where `mask` (stored like A) is ≤ 0: a ReLU's backward folded into the loads of its gradient. */
  maskA?: boolean;
  /** Also rowsum[i] (+)= Σ_k op(A)[i,k] (a linear layer's bias gradient, with dw = dyᵀ·x), written by the first column block. */
  sumA?: boolean;
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

const layoutTag = (l: MatmulLayout) =>
  `${l.transA ? 't' : 'n'}${l.transB ? 't' : 'n'}${l.vecA ? '4' : '1'}${l.vecB ? '4' : '1'}${l.bias ? '_bias' : ''}` +
  `${l.relu ? '_relu' : ''}${l.maskA ? '_maskA' : ''}${l.sumA ? '_sumA' : ''}`;

// A and B are arrays of vec4 when they load as vec4, else of f32; ldA/ldB read one element either way, so the
// scalar paths (edges, K tails) look the same in both cases; ldA4 reads a vec4 of A (vec4 layouts). With
// maskA, both zero the elements whose mask is ≤ 0 (select, not a product: −0 and NaN·0 never appear).
function declareMatmul(name: string, l: MatmulLayout, wgsl: string, enable?: string[]): DeclaredKernel {
  const ld = (name: string, v: boolean) =>
    `fn ld${name.toUpperCase()}(i: u32) -> f32 { return ${v ? `${name}[i >> 2u][i & 3u]` : `${name}[i]`}; }`;
  const ldA = l.maskA
    ? `fn ldA(i: u32) -> f32 { return select(0.0, ${l.vecA ? 'a[i >> 2u][i & 3u]' : 'a[i]'}, ${l.vecA ? 'mask[i >> 2u][i & 3u]' : 'mask[i]'} > 0.0); }`
    : ld('a', l.vecA);
  const ldA4 = l.vecA
    ? `fn ldA4(i4: u32) -> vec4f { return ${l.maskA ? 'select(vec4f(0.0), a[i4], mask[i4] > vec4f(0.0))' : 'a[i4]'}; }`
    : '';
  return declareKernel({
    name: `${name}_${layoutTag(l)}`,
    enable,
    params: { M: 'u32', N: 'u32', K: 'u32', accumulate: 'u32' },
    buffers: {
      a: { read: l.vecA ? 'vec4f' : 'f32' },
      b: { read: l.vecB ? 'vec4f' : 'f32' },
      c: 'read_write',
      ...(l.bias ? { bias: 'read' as const } : {}),
      ...(l.maskA ? { mask: { read: l.vecA ? 'vec4f' : 'f32' } } : {}),
      ...(l.sumA ? { rowsum: 'read_write' as const } : {}),
    },
    wgsl: /* wgsl */ `
${ldA}
${ldA4}
${ld('b', l.vecB)}
// Element (i, k) of op(A) and (k, j) of op(B), as flat indices into the stored arrays.
fn idxA(i: u32, k: u32) -> u32 { return ${l.transA ? 'k * p.M + i' : 'i * p.K + k'}; }
fn idxB(k: u32, j: u32) -> u32 { return ${l.transB ? 'j * p.K + k' : 'k * p.N + j'}; }
// The fused epilogue: C[i,j] = acc (+ bias[j]) (+ C[i,j])${l.relu ? ', then max(·, 0)' : ''}. accumulate is uniform, so the branch is free.
fn store(i: u32, j: u32, acc: f32) {
  let o = i * p.N + j;
  var v = acc${l.bias ? ' + bias[j]' : ''};
  if (p.accumulate != 0u) { v += c[o]; }
  c[o] = ${l.relu ? 'max(v, 0.0)' : 'v'};
}
${
  l.sumA
    ? `// rowsum[i] = s (+ rowsum[i]): the sum over k of op(A)'s row i, added in order of k.
fn storeRowSum(i: u32, s: f32) {
  var v = s;
  if (p.accumulate != 0u) { v += rowsum[i]; }
  rowsum[i] = v;
}`
    : ''
}
${wgsl}`,
  });
}

// ---- v1: one invocation per output ----------------------------------------------------------------------

export const V1_WG = 16;

export const matmulV1Kernel = memoKernel((layout: MatmulLayout) => {
  const l = { ...layout, vecA: false, vecB: false };
  return declareMatmul(
    'matmul_v1',
    l,
    /* wgsl */ `
@compute @workgroup_size(${V1_WG}, ${V1_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let i = g.y;
  let j = g.x;
  if (i >= p.M || j >= p.N) { return; }
  var acc = 0.0;
  var sa = 0.0;
  for (var k = 0u; k < p.K; k++) {
    let av = ldA(idxA(i, k));
    acc = fma(av, ldB(idxB(k, j)), acc);
    ${l.sumA ? 'sa += av;' : ''}
  }
  store(i, j, acc);
  ${l.sumA ? 'if (j == 0u) { storeRowSum(i, sa); }' : ''}
}`,
  );
});

// ---- register tiles (v2, v4): code generation shared by both ---------------------------------------------
//
// The kernel body is unrolled over the tile and over four steps of k: acc{r}_{q} holds C[i0+r, j0+4q .. +3].
// Loads are clamped to the last row/column, so edge tiles read real data that the masked stores then drop.
// The main loop covers K rounded down to 4 (vec4 loads where the layout allows); a scalar loop the rest.

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
      body.push(
        vecA
          ? `let a${r} = ldA4((ra${r} * p.K + k) >> 2u);`
          : `let a${r} = vec4f(${KK.map((kk) => `ldA(ra${r} * p.K + k + ${kk}u)`).join(', ')});`,
      );
      for (const kk of KK) a[r][kk] = `a${r}[${kk}]`;
    }
  } else if (vecA) {
    // Aᵀ stored [K,M]: one vec4 along m covers four rows (tm % 4 == 0 and M % 4 == 0, so no vec4 straddles M)
    for (const q of range(tm / 4)) pre.push(`let ra4_${q} = min(i0 / 4u + ${q}u, p.M / 4u - 1u);`);
    for (const kk of KK) for (const q of range(tm / 4)) body.push(`let a${kk}_${q} = ldA4((k + ${kk}u) * (p.M / 4u) + ra4_${q});`);
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
  const R = range(tm);
  const Q = range(tn / 4);
  const fmas = (kk: number) => R.flatMap((r) => Q.map((q) => `acc${r}_${q} = fma(vec4f(${A.a[r][kk]}), bv${kk}_${q}, acc${r}_${q});`));
  const stores = R.flatMap((r) =>
    range(tn).map((c) => `if (i0 + ${r}u < p.M && j0 + ${c}u < p.N) { store(i0 + ${r}u, j0 + ${c}u, acc${r}_${c >> 2}[${c & 3}]); }`),
  );
  // Row sums of op(A) (sumA): added in order of k, by every invocation, stored by the first column block.
  const sums = l.sumA
    ? {
        init: R.map((r) => `var sa${r} = 0.0;`),
        body: KK.flatMap((kk) => R.map((r) => `sa${r} += ${A.a[r][kk]};`)),
        tail: R.map((r) => `sa${r} += ${A.aT[r]};`),
        store: R.map((r) => `if (j0 == 0u && i0 + ${r}u < p.M) { storeRowSum(i0 + ${r}u, sa${r}); }`),
      }
    : { init: [], body: [], tail: [], store: [] };
  return /* wgsl */ `${entry} {
  ${prologue}
  ${[...A.pre, ...B.pre].join('\n  ')}
  ${R.flatMap((r) => Q.map((q) => `var acc${r}_${q} = vec4f(0.0);`)).join('\n  ')}
  ${sums.init.join('\n  ')}
  let K4 = p.K & ~3u;
  for (var k = 0u; k < K4; k += 4u) {
    ${[...A.body, ...B.body, ...KK.flatMap(fmas), ...sums.body].join('\n    ')}
  }
  for (var k = K4; k < p.K; k++) {
    ${[...A.tail, ...B.tail, ...R.flatMap((r) => Q.map((q) => `acc${r}_${q} = fma(vec4f(${A.aT[r]}), bv${q}, acc${r}_${q});`)), ...sums.tail].join('\n    ')}
  }
  ${stores.join('\n  ')}
  ${sums.store.join('\n  ')}
}`;
}

// Workgroup ids in bands of SWIZZLE_BAND block rows: consecutive workgroups walk down a band before moving
// right, so a B column panel is reused by the whole band while it is in cache, and the band's A rows stay in
// cache across the columns (without it, large products on llvmpipe streamed B from memory once per block row
// and ran at half the speed). Defines blk: vec2u, the (column, row) block this workgroup computes.
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
  if (tn % 4 !== 0) throw new VariantError(`matmul_v2: tile width ${tn} is not a multiple of 4`);
  const vecA = vecAFor(l, tm);
  const vecB = l.vecB;
  const C = range(tn);
  const Q = range(tn / 4);
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
    for (const c of C)
      B.body.push(
        vecB
          ? `let bt${c} = b[(cb${c} * p.K + k) >> 2u];`
          : `let bt${c} = vec4f(${KK.map((kk) => `ldB(cb${c} * p.K + k + ${kk}u)`).join(', ')});`,
      );
    for (const kk of KK) for (const q of Q) B.body.push(`let bv${kk}_${q} = vec4f(${KK.map((e) => `bt${4 * q + e}[${kk}]`).join(', ')});`);
  }
  B.tail.push(
    ...C.map((c) => `let b${c} = ldB(idxB(k, cb${c}));`),
    ...Q.map((q) => `let bv${q} = vec4f(${KK.map((e) => `b${4 * q + e}`).join(', ')});`),
  );
  const entry = `@compute @workgroup_size(${wgx}, ${wgy}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u)`;
  const prologue = `${SWIZZLE}
  let i0 = (blk.y * ${wgy}u + lid.y) * ${tm}u;
  let j0 = (blk.x * ${wgx}u + lid.x) * ${tn}u;
  if (i0 >= p.M || j0 >= p.N) { return; }`;
  return declareMatmul(`matmul_v2_${tm}x${tn}_${wgx}x${wgy}`, { ...l, vecA, vecB }, tileKernel(l, vecA, tm, tn, B, prologue, entry));
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
  if (tn % sg !== 0 || tn % 4 !== 0) throw new VariantError(`matmul_v4: tile width ${tn} is not a multiple of ${sg} and 4`);
  const vecA = vecAFor(l, tm);
  // vec4 loads along N: lane s loads columns 4s..4s+3 of each group of 4*sg columns (in a tile narrower than
  // 4*sg the last lanes load a clamped duplicate); along K (transB): lane s loads its column's 4 k.
  const vecB = l.vecB;
  const Q = range(tn / 4);
  const G = range(tn / sg);
  const col = (g: number) => `min(j0 + ${g * sg}u + lane, p.N - 1u)`;
  const bc = (v: string, s: number) => `subgroupBroadcast(${v}, ${s}u)`;
  const B: TileLoads = { pre: [], body: [], tail: [] };
  // bcol(kk, c): op(B)[k+kk, j0+c] in every lane
  let bcol: (kk: number, c: number) => string;
  if (!l.transB && vecB) {
    for (const kk of KK)
      for (const g of range(Math.ceil(tn / (4 * sg))))
        B.body.push(`let b${kk}_${g} = b[(k + ${kk}u) * (p.N / 4u) + min(j0 / 4u + ${g * sg}u + lane, p.N / 4u - 1u)];`);
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
  B.tail.push(
    ...Q.map((q) => `let bv${q} = vec4f(${KK.map((e) => bc(`b${Math.floor((4 * q + e) / sg)}`, (4 * q + e) % sg)).join(', ')});`),
  );
  const entry = `@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) lane: u32)`;
  const prologue = `${SWIZZLE}
  let j0 = blk.x * ${tn}u;
  let i0 = (blk.y * ${sg}u + lane) * ${tm}u;`;
  return declareMatmul(`matmul_v4_${tm}x${tn}_sg${sg}`, { ...l, vecA, vecB }, tileKernel(l, vecA, tm, tn, B, prologue, entry), [
    'subgroups',
  ]);
});

// ---- v4 with A shared (AS): lanes over columns, op(A) broadcast ------------------------------------------
//
// The other way round: the workgroup's sg lanes own sg vec4s of columns each (tn = 4·sg·cq columns, cq vec4s a
// lane) of the same tm = sg rows, and op(A)'s values, the same in every lane, are shared: lane l loads row
// i0 + l's next four k (a vec4 along K where A is not transposed) and subgroupBroadcast hands every lane all
// sg·4 of them. Per four k a lane then does sg·4·cq vec4 multiply-adds for sg·4 broadcasts, where the B-shared
// tile with tm = 1 does 4·tn/4 for tn broadcasts: on the seed's fc1 backward products (64×50 by 50×320) a
// quarter of the shuffles for the same loads and multiply-adds. Each output still sums over k in order.
export interface SharedATile {
  /** Columns a workgroup computes: 4·sg·cq (cq vec4s a lane). */
  tn: number;
  sg: number;
}

export const matmulV4aKernel = memoKernel((l: MatmulLayout, t: SharedATile) => {
  const { tn, sg } = t;
  if (tn % (4 * sg) !== 0) throw new VariantError(`matmul_v4 AS: tile width ${tn} is not a multiple of 4 lanes' vec4s (${4 * sg})`);
  const vecA = l.vecA && !l.transA;
  const vecB = l.vecB && !l.transB;
  const R = range(sg);
  const Q = range(tn / (4 * sg));
  // lane's columns of vec4 q: j0 + 4·(q·sg + lane) … + 3
  const colAt = (q: number, e: number) => `min(j0 + ${4 * q * sg}u + 4u * lane + ${e}u, p.N - 1u)`;
  const loadB = (kExpr: string, q: number) =>
    vecB
      ? `b[(${kExpr}) * (p.N / 4u) + min(j0 / 4u + ${q * sg}u + lane, p.N / 4u - 1u)]`
      : `vec4f(${KK.map((e) => `ldB(idxB(${kExpr}, ${colAt(q, e)}))`).join(', ')})`;
  // this lane's row of op(A): four k at once (aw), or one (the tail)
  const loadA4 = vecA ? 'ldA4((ra * p.K + k) >> 2u)' : `vec4f(${KK.map((kk) => `ldA(idxA(ra, k + ${kk}u))`).join(', ')})`;
  // one k: row r's op(A) value (lane r's `a`, broadcast) times B's values `bv(q)` into the sums (and the row sum)
  const step = (a: string, bv: (q: number) => string) =>
    R.flatMap((r) => [
      `{ let av = subgroupBroadcast(${a}, ${r}u);`,
      ...Q.map((q) => `  acc${r}_${q} = fma(vec4f(av), ${bv(q)}, acc${r}_${q});`),
      ...(l.sumA ? [`  sa${r} += av;`] : []),
      '}',
    ]);
  const body = [
    `let aw = ${loadA4};`,
    ...KK.flatMap((kk) => Q.map((q) => `let bv${kk}_${q} = ${loadB(`k + ${kk}u`, q)};`)),
    ...KK.flatMap((kk) => step(`aw[${kk}]`, (q) => `bv${kk}_${q}`)),
  ];
  const tail = ['let at = ldA(idxA(ra, k));', ...Q.map((q) => `let bv${q} = ${loadB('k', q)};`), ...step('at', (q) => `bv${q}`)];
  const stores = R.flatMap((r) =>
    Q.flatMap((q) =>
      KK.map(
        (e) =>
          `if (i0 + ${r}u < p.M && j0 + ${4 * q * sg + e}u + 4u * lane < p.N) { store(i0 + ${r}u, j0 + ${4 * q * sg + e}u + 4u * lane, acc${r}_${q}[${e}]); }`,
      ),
    ),
  );
  const wgsl = /* wgsl */ `@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) lane: u32) {
  ${SWIZZLE}
  let j0 = blk.x * ${tn}u;
  let i0 = blk.y * ${sg}u;
  let ra = min(i0 + lane, p.M - 1u);
  ${R.flatMap((r) => Q.map((q) => `var acc${r}_${q} = vec4f(0.0);`)).join('\n  ')}
  ${l.sumA ? R.map((r) => `var sa${r} = 0.0;`).join(' ') : ''}
  let K4 = p.K & ~3u;
  for (var k = 0u; k < K4; k += 4u) {
    ${body.join('\n    ')}
  }
  for (var k = K4; k < p.K; k++) {
    ${tail.join('\n    ')}
  }
  ${stores.join('\n  ')}
  ${l.sumA ? R.map((r) => `if (j0 == 0u && lane == 0u && i0 + ${r}u < p.M) { storeRowSum(i0 + ${r}u, sa${r}); }`).join('\n  ') : ''}
}`;
  return declareMatmul(`matmul_v4as_${tn}_sg${sg}`, l, wgsl, ['subgroups']);
});

// ---- v3: workgroup-memory tiles (GPUs) -------------------------------------------------------------------

export const V3_BM = 64; // block rows (M) and columns (N) per workgroup
const V3_BK = 16; // K slab staged per barrier pair
const V3_T = 16; // 16x16 invocations, each a 4x4 tile strided by 16

export const matmulV3Kernel = memoKernel((layout: MatmulLayout) => {
  const { transA, transB } = layout;
  const S = (V3_BM * V3_BK) / (V3_T * V3_T); // staged elements per invocation per operand
  // Staging order keeps consecutive invocations on consecutive addresses of the stored matrix.
  const stageA = transA ? `let kk = f / ${V3_BM}u; let ii = f % ${V3_BM}u;` : `let ii = f / ${V3_BK}u; let kk = f % ${V3_BK}u;`;
  const stageB = transB ? `let jj = f / ${V3_BK}u; let kk = f % ${V3_BK}u;` : `let kk = f / ${V3_BM}u; let jj = f % ${V3_BM}u;`;
  return declareMatmul(
    'matmul_v3',
    { ...layout, vecA: false, vecB: false },
    /* wgsl */ `
var<workgroup> As: array<array<f32, ${V3_BM}>, ${V3_BK}>;
var<workgroup> Bs: array<array<f32, ${V3_BM}>, ${V3_BK}>;
@compute @workgroup_size(${V3_T}, ${V3_T}) fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let t = lid.y * ${V3_T}u + lid.x;
  let bi = wg.y * ${V3_BM}u;
  let bj = wg.x * ${V3_BM}u;
  var acc: array<array<f32, 4>, 4>;
  var sa: array<f32, 4>;  // sumA: row sums of op(A), for rows bi + lid.y + 16r (every thread; stored by the first column block)
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
      ${layout.sumA ? `if (k0 + kk < p.K) { for (var r = 0u; r < 4u; r++) { sa[r] += av[r]; } }` : ''}
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
  ${layout.sumA ? `for (var r = 0u; r < 4u; r++) { let i = bi + lid.y + r * ${V3_T}u; if (wg.x == 0u && lid.x == 0u && i < p.M) { storeRowSum(i, sa[r]); } }` : ''}
}`,
  );
});
