// Backward-weight kernels: dw[o,c,kh,kw] (+)= Σ_{n,oh,ow} dy[n,o,oh,ow] · x[n,c,oh·s+kh−pad,ow·s+kw−pad]
// (see index.ts for which variant is for what). Buffers x, dy, dw; with a bias, every variant also computes
// its gradient db[o] (+)= Σ_{n,oh,ow} dy[n,o,oh,ow] in the same dispatch, from the dy values it loads anyway.
import { VariantError } from '../../errors.js';
import { fixedSubgroupSize } from '../../gpu/capabilities.js';
import { declareKernel, launch, type ParamType } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel, range, treeReduction } from '../wgsl.js';
import { backwardWeightImageLanes, imageLanesTiles } from './backward-weight-patch.js';
import { WG_V1 } from './direct.js';
import type { Geometry } from './sizes.js';
import { slicing, sumPartials } from './sum-partials.js';

export interface BackwardWeightBuffers {
  x: GPUBuffer;
  dy: GPUBuffer;
  dw: GPUBuffer;
  /** The bias gradient, computed in the same dispatch (null: no bias). */
  db?: GPUBuffer | null;
}

/** Tile of a v2 or v4 invocation: it owns OT output channels × KW taps of one (c, kh). */
export interface Conv2dWeightTile {
  /** Output channels per invocation. */
  OT: number;
  /** Output columns per step. */
  PT: number;
  /** Invocations per workgroup (v2; a v4 workgroup is one subgroup). */
  WG: number;
  /** Workgroups to aim for when choosing how many slices to split the rows into. */
  groups: number;
  /** v4 only: 1 loads the input rows as vec4s (see weightVecRows for when it can). */
  VX?: number;
  /** v4 only: 1 loads the dy rows as vec4s, spread over the lanes (see weightVecDy for when it can). */
  DV?: number;
  /** v4 only: 1 puts images on the lanes, RT×PT output positions each, and loops over the output channels (backward-weight-patch.ts; OT unused). */
  IL?: number;
  /** With IL: output rows per lane. */
  RT?: number;
  /** With IL: input channels per workgroup (the lane's patch and sums cover these). */
  CT?: number;
  /** With IL: reads x as uniform windows of UW images each (backward-weight-patch.ts), not as a storage buffer. */
  UW?: number;
  /** With IL behind the pool: 1 multiplies each window's value at its maximum only (backward-weight-patch.ts), the same sums. */
  AM?: number;
  /**
   * With IL split into slices: 1 has the last workgroup of each channel group to finish add up the slices' sums
   * (backward-weight-patch.ts: on llvmpipe only), not a second dispatch; the same sums.
   */
  LS?: number;
}

/** Why v4 cannot load x rows as vec4s for this geometry and tile, or null: unpadded, rows and steps on vec4 boundaries, no step past a row. */
export function weightVecRows(g: Geometry, PT: number): string | null {
  if (g.pad !== 0) return 'padded inputs need bounds checks per column';
  if (g.W % 4 !== 0) return `input rows of ${g.W} floats are not whole vec4s`;
  if ((PT * g.S) % 4 !== 0) return `steps of ${PT} columns at stride ${g.S} do not start on vec4 boundaries`;
  if ((Math.ceil(g.OW / PT) * PT - 1) * g.S + g.KW > g.W) return `the last step of ${PT} columns would read past the row`;
  return null;
}

/** Why v4 cannot load dy rows as vec4s for this geometry and step width, or null: rows of whole vec4s, steps of whole vec4s that end at the row's end. */
export function weightVecDy(g: Geometry, PT: number): string | null {
  if (g.OW % 4 !== 0) return `dy rows of ${g.OW} floats are not whole vec4s`;
  if (PT % 4 !== 0) return `steps of ${PT} columns are not whole vec4s`;
  if (g.OW % PT !== 0) return `the last step of ${PT} columns would run past a dy row of ${g.OW}`;
  return null;
}

const BUFFERS = { x: 'read', dy: 'read', dw: 'read_write' } as const;
const BIAS_BUFFERS = { ...BUFFERS, db: 'read_write' } as const;
/** The buffers to bind: db only when there is one. */
const bound = ({ x, dy, dw, db }: BackwardWeightBuffers): Record<string, GPUBuffer> => (db ? { x, dy, dw, db } : { x, dy, dw });
const PARAMS = {
  N: 'u32',
  C: 'u32',
  H: 'u32',
  W: 'u32',
  O: 'u32',
  OH: 'u32',
  OW: 'u32',
  pad: 'i32',
  accumulate: 'u32',
} as const satisfies Record<string, ParamType>;
const params = (g: Geometry, accumulate: boolean) => ({
  N: g.N,
  C: g.C,
  H: g.H,
  W: g.W,
  O: g.O,
  OH: g.OH,
  OW: g.OW,
  pad: g.pad,
  accumulate: +accumulate,
});

// ---- v1: one dw element per invocation, looping over N·OH·OW ----------------------------------------------

const backwardWeightV1Kernel = memoKernel((bias: boolean) =>
  declareKernel({
    name: `conv2d_bwd_weight_v1${bias ? '_bias' : ''}`,
    params: { ...PARAMS, KH: 'u32', KW: 'u32', S: 'u32' },
    buffers: bias ? BIAS_BUFFERS : BUFFERS,
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_V1)};
  if (i >= p.O * p.C * p.KH * p.KW) { return; }
  let kw = i % p.KW;
  let kh = (i / p.KW) % p.KH;
  let c = (i / (p.KH * p.KW)) % p.C;
  let o = i / (p.KH * p.KW * p.C);
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    for (var oh = 0u; oh < p.OH; oh++) {
      let ih = i32(oh * p.S + kh) - p.pad;
      if (ih < 0 || ih >= i32(p.H)) { continue; }
      let xRow = ((n * p.C + c) * p.H + u32(ih)) * p.W;
      let dyRow = ((n * p.O + o) * p.OH + oh) * p.OW;
      for (var ow = 0u; ow < p.OW; ow++) {
        let iw = i32(ow * p.S + kw) - p.pad;
        if (iw < 0 || iw >= i32(p.W)) { continue; }
        acc += dy[dyRow + ow] * x[xRow + u32(iw)];
      }
    }
  }
  dw[i] = select(acc, dw[i] + acc, p.accumulate != 0u);
  ${
    bias
      ? `if (c == 0u && kh == 0u && kw == 0u) {  // the first weight of each o also sums its dy
    var s = 0.0;
    for (var j = 0u; j < p.N * p.OH * p.OW; j++) { s += dy[((j / (p.OH * p.OW)) * p.O + o) * p.OH * p.OW + j % (p.OH * p.OW)]; }
    db[o] = select(s, db[o] + s, p.accumulate != 0u);
  }`
      : ''
  }
}`,
  }),
);

export function backwardWeightV1(gpu: Gpu, g: Geometry, buffers: BackwardWeightBuffers, accumulate: boolean): void {
  launch(gpu, backwardWeightV1Kernel(!!buffers.db), {
    params: { ...params(g, accumulate), KH: g.KH, KW: g.KW, S: g.S },
    buffers: bound(buffers),
    workgroups: grid1d(g.O * g.C * g.KH * g.KW, WG_V1),
  });
}

// ---- v2 and v4: register tiles over row slices, no barriers (software adapters) ----------------------------
//
// v2: lanes over (c, kh); workgroup_id.y picks OT output channels, workgroup_id.z a slice of the N·OH rows.
// An invocation keeps OT × KW sums. It walks a row PT output columns at a time: it loads the (PT−1)·S + KW x
// values those columns touch and OT·PT dy values (uniform across the workgroup: lanes differ only in c and
// kh) for OT·PT·KW FMAs. Slice z writes part[z][o][c][kh][kw]; with one slice that is dw itself, else
// conv2d_sum_partials adds (and accumulates) the slices into dw.
//
// v4 (sg = the subgroup size): v2 with one subgroup per workgroup (WG = sg lanes over (c, kh)) sharing the dy
// loads, which are the same in every lane: per step of PT columns (PT a multiple of sg) lane l loads columns
// ow + l, ow + l + sg, ... of each of its OT dy rows, and subgroupBroadcast hands every lane all PT of them, so
// OT·PT/sg loads replace OT·PT. No lane returns early: lanes past C·KH compute a clamped duplicate and skip
// the store; padding rows read zeros instead of skipping (a broadcast must not sit in divergent control flow):
// a row outside the image moves the step's first column iw0 far to the left, so every column test fails.
//
// v4 with DV (dy rows of whole vec4s, steps ending at the row's end): the step's OT·PT dy values are loaded as
// OT·PT/4 vec4s spread over the lanes (vec4 k = channel k / (PT/4), columns 4·(k % (PT/4)) on, in lane k % sg of
// round k / sg; a last round short of sg vec4s loads in its first lanes only) instead of OT scalars per lane:
// on llvmpipe every per-lane load is a loop over the lanes with a bounds check per component, so fewer, wider
// loads cost less. The FMAs are the same, in the same order; the bias sums are kept per round of vec4s (3
// registers instead of OT for the seed's conv2) and added per channel at the end, in another order.
//
// With a bias, each invocation also sums the dy values it loads (v2: the same in every lane; v4: its own
// columns, added across the subgroup at the end), and the first lane of the first workgroup of each (channels,
// slice) writes them: db[o] itself with one slice, else slice z's partial sums db_part[z][o]. Padding rows then
// read zeros in v2 too, so that every dy value is summed.
//
// With padding, each x load tests its column with one unsigned compare (a negative column wraps past W). The
// same tests written as a signed pair (c >= 0 && c < W) with the row test beside them in every load took
// SwiftShader's compiler minutes and gigabytes of memory once a step loaded a dozen x values or more (v4,
// stride 2, a 16-column step: 33 loads, killed at 6 GB after a minute; 0.1 s as written here, and still
// over 6 GB with only one of the two changes).

/** A column far left of any image (padding rows read as zeros); adding a step's offsets cannot overflow it. */
const OFF_IMAGE = -(1 << 30);

const backwardWeightTiledKernel = memoKernel(
  (KH: number, KW: number, S: number, padded: boolean, t: Conv2dWeightTile, sg: number | null, bias: boolean) => {
    const { OT, PT, WG } = t;
    const span = (PT - 1) * S + KW;
    const vx = !!t.VX && sg !== null && !padded; // weightVecRows checked the rest
    const dv = !!t.DV && sg !== null; // weightVecDy checked the rest
    // the bias sums each invocation keeps: one per channel, or with dv one per round of dy vec4s
    const nbs = dv && sg ? Math.ceil((OT * PT) / 4 / sg) : OT;
    const zeroRows = sg !== null || bias; // padding rows read zeros instead of being skipped
    const body = vx
      ? [
          ...range(Math.ceil(span / 4)).map((q) => `let xv${q} = x[(xr + u32(iw0)) / 4u + ${q}u];`),
          ...range(span).map((j) => `let x${j} = xv${j >> 2}[${j & 3}];`),
        ]
      : range(span).map(
          (j) =>
            padded
              ? `let c${j} = u32(iw0 + ${j}); let x${j} = select(0.0, x[xr + min(c${j}, p.W - 1u)], c${j} < p.W);` // c < 0 wraps past W
              : `let x${j} = x[xr + min(u32(iw0) + ${j}u, p.W - 1u)];`, // min: columns past OW in the last step
        );
    const fmas = (tt: number, pp: number) =>
      range(KW)
        .map((kw) => `a${tt}_${kw} = fma(g, x${pp * S + kw}, a${tt}_${kw});`)
        .join(' ');
    if (sg === null) {
      for (const pp of range(PT)) {
        body.push(`{ let live = ow + ${pp}u < p.OW; let owc = min(ow + ${pp}u, p.OW - 1u);`);
        for (const tt of range(OT))
          body.push(`  { let g = select(0.0, dy[dr${tt} + owc], live); ${fmas(tt, pp)}${bias ? ` bs${tt} += g;` : ''} }`);
        body.push('}');
      }
    } else if (dv) {
      // the step's OT·PT/4 dy vec4s (vec4 k: channel k / (PT/4), columns 4·(k % (PT/4)) on) spread over the
      // lanes, round q holding vec4s q·sg + lane; a tail round loads in its first lanes only
      const per = PT / 4;
      const nv = OT * per;
      for (const q of range(Math.ceil(nv / sg))) {
        const active = Math.min(sg, nv - q * sg);
        body.push(`let k${q} = ${q * sg}u + sid; let ov${q} = min(o0 + k${q} / ${per}u, p.O - 1u);`);
        const load = `dy[(((n * p.O + ov${q}) * p.OH + oh) * p.OW + ow) / 4u + k${q} % ${per}u]`;
        body.push(active < sg ? `var v${q} = vec4f(0.0); if (sid < ${active}u) { v${q} = ${load}; }` : `let v${q} = ${load};`);
        if (bias) body.push(`bs${q} += (v${q}.x + v${q}.y) + (v${q}.z + v${q}.w);`);
      }
      for (const pp of range(PT)) {
        for (const tt of range(OT)) {
          const k = tt * per + Math.floor(pp / 4);
          body.push(`{ let g = subgroupBroadcast(v${Math.floor(k / sg)}[${pp % 4}], ${k % sg}u); ${fmas(tt, pp)} }`);
        }
      }
    } else {
      // dy[dr_t + ow + gq·sg + lane], zero past OW; every lane then gets all PT columns by broadcast
      for (const gq of range(PT / sg)) {
        body.push(`let owl${gq} = ow + ${gq * sg}u + sid;`);
        body.push(...range(OT).map((tt) => `let d${tt}_${gq} = select(0.0, dy[dr${tt} + min(owl${gq}, p.OW - 1u)], owl${gq} < p.OW);`));
        if (bias) body.push(...range(OT).map((tt) => `bs${tt} += d${tt}_${gq};`));
      }
      // channel by channel: a channel's KW sums stay in registers over the step's columns, where column by column
      // cycles all OT·KW sums (more than a CPU's vector registers) through memory; each sum adds its terms in
      // the same order either way. (The dv body above runs faster column by column: bench/kernels-conv2d.ts.)
      for (const tt of range(OT)) {
        for (const pp of range(PT)) body.push(`{ let g = subgroupBroadcast(d${tt}_${Math.floor(pp / sg)}, ${pp % sg}u); ${fmas(tt, pp)} }`);
      }
    }
    const stores = range(OT).flatMap((tt) =>
      range(KW).map((kw) => {
        const i = `wbase + ${tt * KH * KW}u * p.C + ${kw}u`;
        return `if (${sg ? 'live && ' : ''}o0 + ${tt}u < p.O) { dw[${i}] = select(a${tt}_${kw}, dw[${i}] + a${tt}_${kw}, p.accumulate != 0u); }`;
      }),
    );
    // with dv, channel tt's sum is in the lanes that loaded its PT/4 vec4s
    const lanes = sg ?? 1;
    const dvSum = (tt: number) =>
      range(PT / 4)
        .map((j) => {
          const k = tt * (PT / 4) + j;
          return `subgroupBroadcast(bs${Math.floor(k / lanes)}, ${k % lanes}u)`;
        })
        .join(' + ');
    const biasStores = bias
      ? range(OT).flatMap((tt) => {
          const i = `wid.z * p.O + o0 + ${tt}u`;
          return [
            dv ? `let bt${tt} = ${dvSum(tt)};` : sg ? `let bt${tt} = subgroupAdd(bs${tt});` : `let bt${tt} = bs${tt};`,
            `if (${sg ? 'wid.x == 0u && sid == 0u' : 'lane == 0u'} && o0 + ${tt}u < p.O) { db[${i}] = select(bt${tt}, db[${i}] + bt${tt}, p.accumulate != 0u); }`,
          ];
        })
      : [];
    const entry = sg
      ? `@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) sid: u32) {
  let glane = wid.x * ${sg}u + sid;
  let live = glane < p.C * ${KH}u;
  let lane = min(glane, p.C * ${KH}u - 1u);`
      : `@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = wid.x * ${WG}u + lid.x;
  if (lane >= p.C * ${KH}u) { return; }`;
    const row = zeroRows
      ? `let ihr = i32(oh * ${S}u + kh) - p.pad;
    ${padded ? 'let rowOk = ihr >= 0 && ihr < i32(p.H); let ih = clamp(ihr, 0, i32(p.H) - 1);' : 'let ih = ihr;'}`
      : `let ih = i32(oh * ${S}u + kh) - p.pad;
    ${padded ? 'if (ih < 0 || ih >= i32(p.H)) { continue; }' : ''}`;
    return declareKernel({
      name: `${sg ? 'conv2d_bwd_weight_v4' : 'conv2d_bwd_weight_v2'}${bias ? '_bias' : ''}${vx ? '_vx' : ''}${dv ? '_dv' : ''}`,
      enable: sg ? ['subgroups'] : [],
      params: { ...PARAMS, rowsPerSlice: 'u32' },
      buffers: { ...(bias ? BIAS_BUFFERS : BUFFERS), ...(vx ? { x: { read: 'vec4f' } } : {}), ...(dv ? { dy: { read: 'vec4f' } } : {}) },
      wgsl: /* wgsl */ `${entry}
  let c = lane / ${KH}u;
  let kh = lane % ${KH}u;
  let o0 = wid.y * ${OT}u;
  ${range(OT)
    .map((tt) => `let o_${tt} = min(o0 + ${tt}u, p.O - 1u);`)
    .join('\n  ')}
  ${range(OT)
    .flatMap((tt) => range(KW).map((kw) => `var a${tt}_${kw} = 0.0;`))
    .join('\n  ')}
  ${
    bias
      ? range(nbs)
          .map((tt) => `var bs${tt} = 0.0;`)
          .join(' ')
      : ''
  }
  let r0 = wid.z * p.rowsPerSlice;
  let r1 = min(r0 + p.rowsPerSlice, p.N * p.OH);
  for (var r = r0; r < r1; r++) {
    let n = r / p.OH;
    let oh = r % p.OH;
    ${row}
    let xr = ((n * p.C + c) * p.H + u32(ih)) * p.W;
    ${range(OT)
      .map((tt) => `let dr${tt} = ((n * p.O + o_${tt}) * p.OH + oh) * p.OW;`)
      .join('\n    ')}
    for (var ow = 0u; ow < p.OW; ow += ${PT}u) {
      let iw0 = ${zeroRows && padded ? `select(${OFF_IMAGE}, i32(ow * ${S}u) - p.pad, rowOk)` : `i32(ow * ${S}u) - p.pad`};
      ${body.join('\n      ')}
    }
  }
  let wbase = wid.z * p.O * p.C * ${KH * KW}u + ((o0 * p.C + c) * ${KH}u + kh) * ${KW}u;
  ${stores.join('\n  ')}
  ${biasStores.join('\n  ')}
}`,
    });
  },
);

/** The v2 tile (measured on the seed's shapes: bench/kernels-conv2d.ts). */
export function conv2dWeightTileV2(O: number, OW: number): Conv2dWeightTile {
  let OT = 1;
  for (let t = 2; t <= Math.min(O, 5); t++) if (Math.ceil(O / t) * t - O <= Math.ceil(O / OT) * OT - O) OT = t;
  return { OT, PT: Math.min(OW, 4), WG: 8, groups: 64 };
}

/**
 * The v4 tile (measured on the seed's layers with bench/kernels-conv2d.ts): sg columns per step (2·sg ran
 * slower on conv1), as many output channels as fit 50 accumulators with the fewest channel-tail ones (on conv1
 * 10 ran faster than 5; on conv2 20 ran no faster than 10 and took much longer to compile), and few row slices
 * (more than 16 groups ran slower). Rows are loaded as vec4s where weightVecRows allows (fewer, wider per-lane
 * loads; the same values, so the same results); dy is not (DV sums the bias gradient in another order).
 */
export function conv2dWeightTileV4(g: Geometry, sg: number): Conv2dWeightTile {
  const t = scalarWeightTileV4(g.O, g.KW, sg);
  return weightVecRows(g, t.PT) === null ? { ...t, VX: 1 } : t;
}

function scalarWeightTileV4(O: number, KW: number, sg: number): Conv2dWeightTile {
  let OT = 1;
  for (let t = 2; t <= Math.min(O, Math.floor(50 / KW)); t++) if (Math.ceil(O / t) * t - O <= Math.ceil(O / OT) * OT - O) OT = t;
  return { OT, PT: sg, WG: sg, groups: 16 };
}

const distinct = (tiles: Conv2dWeightTile[]) =>
  tiles.filter((t, i) => tiles.findIndex((u) => JSON.stringify(u) === JSON.stringify(t)) === i);

/** v2 tiles a tuner may time: conv2dWeightTileV2's first, then wider steps, fewer channels, fewer row slices. */
export function conv2dWeightTilesV2(O: number, OW: number): Conv2dWeightTile[] {
  const d = conv2dWeightTileV2(O, OW);
  return distinct([d, { ...d, PT: Math.min(OW, 8) }, { ...d, OT: Math.min(O, 2) }, { ...d, groups: 16 }, { ...d, PT: Math.min(OW, 2) }]);
}

/**
 * v4 tiles a tuner may time: conv2dWeightTileV4's first, then half the channels, two subgroups of columns per
 * step, other slicings; the ones with sg columns per step loading their rows as vec4s (where they can: first,
 * as conv2dWeightTileV4 does) and as scalars; the vec4 ones (or, where rows cannot be vec4s, the others)
 * again loading dy as vec4s, where they can; last, where few taps allow it, the image-lane tile (IL).
 */
export function conv2dWeightTilesV4(g: Geometry, sg: number): Conv2dWeightTile[] {
  const d = scalarWeightTileV4(g.O, g.KW, sg);
  const half = Math.ceil(d.OT / 2);
  const scalar = distinct([
    d,
    { ...d, OT: half },
    { ...d, PT: 2 * sg },
    { ...d, groups: 8 },
    { ...d, groups: 32 },
    { ...d, OT: half, groups: 32 },
  ]);
  const vx = scalar.filter((t) => t.PT === sg && weightVecRows(g, t.PT) === null).map((t) => ({ ...t, VX: 1 }));
  const dv = (vx.length > 0 ? vx : scalar).filter((t) => weightVecDy(g, t.PT) === null).map((t) => ({ ...t, DV: 1 }));
  const il = imageLanesTiles(g, sg);
  return weightVecRows(g, d.PT) === null ? [...vx, ...scalar, ...dv, ...il] : [...scalar, ...vx, ...dv, ...il];
}

/** v2 (subgroups = false) or v4: the row slices, then conv2d_sum_partials when there are several. */
export function backwardWeightTiled(
  gpu: Gpu,
  g: Geometry,
  buffers: BackwardWeightBuffers,
  accumulate: boolean,
  subgroups: boolean,
  tile?: Conv2dWeightTile,
): void {
  const sg = subgroups ? fixedSubgroupSize(gpu)! : null; // the registry checked the requirement
  if (tile?.IL) {
    if (!sg) throw new VariantError('conv2d_bwd_weight_v2: only v4 puts images on the lanes (IL)');
    backwardWeightImageLanes(gpu, g, buffers, accumulate, tile);
    return;
  }
  const t = sg ? { ...(tile ?? conv2dWeightTileV4(g, sg)), WG: sg } : (tile ?? conv2dWeightTileV2(g.O, g.OW));
  if (sg && t.PT % sg !== 0)
    throw new VariantError(`conv2d_bwd_weight_v4: tile width ${t.PT} is not a multiple of the subgroup size ${sg}`);
  const why = t.VX ? (sg ? weightVecRows(g, t.PT) : 'only v4 loads rows as vec4s') : null;
  if (why) throw new VariantError(`conv2d_bwd_weight_${sg ? 'v4' : 'v2'}: vec4 rows (VX) impossible here: ${why}`);
  const whyDy = t.DV ? (sg ? weightVecDy(g, t.PT) : 'only v4 loads dy rows as vec4s') : null;
  if (whyDy) throw new VariantError(`conv2d_bwd_weight_${sg ? 'v4' : 'v2'}: vec4 dy rows (DV) impossible here: ${whyDy}`);
  const M = g.O * g.C * g.KH * g.KW;
  const groups = Math.ceil((g.C * g.KH) / t.WG) * Math.ceil(g.O / t.OT);
  const rows = g.N * g.OH;
  const { per: rowsPerSlice, slices } = slicing(rows, Math.round(t.groups / groups));
  const kernel = backwardWeightTiledKernel(g.KH, g.KW, g.S, g.pad !== 0, t, sg, !!buffers.db);
  const workgroups: [number, number, number] = [Math.ceil((g.C * g.KH) / t.WG), Math.ceil(g.O / t.OT), slices];
  const { x, dy, dw, db } = buffers;
  if (slices === 1) {
    launch(gpu, kernel, { params: { ...params(g, accumulate), rowsPerSlice }, buffers: bound(buffers), workgroups });
    return;
  }
  const part = gpu.pool.acquire(4 * slices * M, 'conv2d dw partial sums');
  const dbPart = db ? gpu.pool.acquire(4 * slices * g.O, 'conv2d db partial sums') : null;
  launch(gpu, kernel, { params: { ...params(g, false), rowsPerSlice }, buffers: bound({ x, dy, dw: part, db: dbPart }), workgroups });
  sumPartials(gpu, { part, out: dw, M }, slices, accumulate, dbPart && db ? { part: dbPart, out: db, M: g.O } : undefined);
  // safe: the queue runs the recorded dispatches before any later use of the buffers
  gpu.pool.release(part);
  if (dbPart) gpu.pool.release(dbPart);
}

// ---- v3: a workgroup per weight element, tree reduction in workgroup memory (GPUs) -------------------------
//
// WG_R threads per weight element; thread j sums reduction positions j, j + WG_R, ... (consecutive threads
// read consecutive dy and x), then the workgroup's tree reduction adds the WG_R partial sums.

const WG_R = 64;

// With a bias, the workgroups of the first weight of each o (c = kh = kw = 0) also sum dy, reduced beside the
// weight's sum as a vec2.
const backwardWeightV3Kernel = memoKernel((bias: boolean) =>
  declareKernel({
    name: `conv2d_bwd_weight_v3${bias ? '_bias' : ''}`,
    params: { ...PARAMS, KH: 'u32', KW: 'u32', S: 'u32' },
    buffers: bias ? BIAS_BUFFERS : BUFFERS,
    wgsl: /* wgsl */ `${treeReduction({ fn: 'workgroupSum', type: 'vec2f', size: WG_R, to: 'first' })}
@compute @workgroup_size(${WG_R}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let kw = wid.x % p.KW;
  let kh = (wid.x / p.KW) % p.KH;
  let c = wid.x / (p.KW * p.KH);
  let o = wid.y;
  let plane = p.OH * p.OW;
  var acc = 0.0;
  var bs = 0.0;
  for (var r = lid.x; r < p.N * plane; r += ${WG_R}u) {
    let n = r / plane;
    let oh = (r % plane) / p.OW;
    let ow = r % p.OW;
    let ih = i32(oh * p.S + kh) - p.pad;
    let iw = i32(ow * p.S + kw) - p.pad;
    if (ih >= 0 && ih < i32(p.H) && iw >= 0 && iw < i32(p.W)) {
      acc = fma(dy[(n * p.O + o) * plane + oh * p.OW + ow], x[((n * p.C + c) * p.H + u32(ih)) * p.W + u32(iw)], acc);
    }
    ${bias ? 'if (wid.x == 0u) { bs += dy[(n * p.O + o) * plane + oh * p.OW + ow]; }' : ''}
  }
  let total = workgroupSum(lid.x, vec2f(acc, bs));
  if (lid.x == 0u) {
    let i = (o * p.C + c) * p.KH * p.KW + kh * p.KW + kw;
    dw[i] = select(total.x, dw[i] + total.x, p.accumulate != 0u);
    ${bias ? 'if (wid.x == 0u) { db[o] = select(total.y, db[o] + total.y, p.accumulate != 0u); }' : ''}
  }
}`,
  }),
);

export function backwardWeightV3(gpu: Gpu, g: Geometry, buffers: BackwardWeightBuffers, accumulate: boolean): void {
  launch(gpu, backwardWeightV3Kernel(!!buffers.db), {
    params: { ...params(g, accumulate), KH: g.KH, KW: g.KW, S: g.S },
    buffers: bound(buffers),
    workgroups: [g.C * g.KH * g.KW, g.O],
  });
}
