// 2-D convolution, PyTorch semantics (cross-correlation, zero padding, equal stride and padding on both axes).
// Layout: x[N,C,H,W], w[O,C,KH,KW], bias[O], y[N,O,OH,OW], all row-major float32;
// OH = floor((H + 2·pad − KH) / stride) + 1, likewise OW.
//
//   y[n,o,oh,ow] = bias[o] + Σ_{c,kh,kw} x[n,c,oh·s+kh−pad,ow·s+kw−pad] · w[o,c,kh,kw]
//   dx = full correlation of dy with the flipped kernel; dw[o,c,kh,kw] = Σ_{n,oh,ow} dy·x; db[o] = Σ dy[n,o,·,·]
//
// Cost: flops = 2·N·O·OH·OW·C·KH·KW for forward, backward-input and backward-weight alike.
//
// Versions (the `variant` field of the sizes object forces one; tests run all of them):
//   conv2d_v1            one output per invocation, loops over c, kh, kw. The fallback.
//   conv2d_v2            llvmpipe: barrier-free register tile. An invocation computes OT output channels ×
//                        PT adjacent output columns of one row; the workgroup's OT channels come from
//                        workgroup_id.z, so its weight addresses are uniform, and each loaded input value
//                        feeds up to OT·KW FMAs. Lanes run over (n, oh, column block). Tile: conv2dTileV2.
//   conv2d_v3            GPUs: a workgroup computes TO channels × an 8×8 output patch of one image, staging the
//                        input patch and the weights for a chunk of input channels in workgroup memory.
//   conv2d_v4            llvmpipe with subgroups: a workgroup is one subgroup whose sg lanes are sg images; the
//                        workgroup picks the output row, a column block (PT ≤ 12 columns) and OT output channels
//                        (up to 120 accumulators per lane). The weights of each (ic, kh) step are loaded once per
//                        subgroup, a slice per lane, and shared with subgroupBroadcast (every per-lane load is a
//                        gather on llvmpipe); with row and block uniform, padding rows are skipped by the loop
//                        bounds and each kind of column block (edges, interior, tail) is compiled without the
//                        padding taps. Tile: conv2dTileV4.
//   conv2d_bwd_input_v1  one dx element per invocation (any stride).
//   conv2d_bwd_input_v2/3/4  stride 1: the forward v2/v3/v4 kernels run as a convolution of dy with the kernel
//                        flipped and its channel axes swapped, padding KH−1−pad (other strides run v1). v4 gains
//                        most here: with 8×8 dy and k5, over half the taps of the padded convolution are padding.
//   conv2d_bwd_weight_v1 one dw element per invocation, looping over N·OH·OW.
//   conv2d_bwd_weight_v2 llvmpipe: an invocation owns OT output channels × KW taps of one (c, kh) and sums over
//                        a slice of the N·OH rows, PT columns per step (lanes run over (c, kh), so dy
//                        addresses are uniform); slices write partial sums that conv2d_sum_partials adds (and
//                        accumulates) into dw. Tile: conv2dWeightTileV2.
//   conv2d_bwd_weight_v3 GPUs: a workgroup per weight element splits the N·OH·OW reduction over its threads
//                        (consecutive threads, consecutive addresses) and tree-reduces in workgroup memory.
//   conv2d_bwd_weight_v4 llvmpipe with subgroups: v2 with one subgroup per workgroup, steps of sg columns, and the
//                        dy values (the same in every lane) loaded one column per lane and shared with
//                        subgroupBroadcast: OT loads per step instead of OT·sg. Tile: conv2dWeightTileV4.
//   conv2d_bwd_bias_v1   one db element per invocation.
//   conv2d_bwd_bias_v2   llvmpipe: one invocation per (n, o) plane, then conv2d_sum_partials over n (also v4).
//   conv2d_bwd_bias_v3   GPUs: a workgroup per o, tree reduction in workgroup memory.
// Chosen by default (defaultConv2dVariant): v4 on software adapters with fixed-size subgroups (llvmpipe: 8),
// v2 on other software adapters, v3 elsewhere; v4 forced on an adapter without them runs v2. Only the v2 and v4
// kernels take sizes as compile-time constants (their tiles are unrolled into registers); v1 and v3 compile
// once for all shapes. On llvmpipe (2 cores, busy machine) the v2 kernels run the seed's layers at 5–11
// GFLOP/s, v1 at 0.2–0.6, v3 at 0.1–0.5: `npm run bench:kernels -- --filter conv`. v4 against v2 on the seed's
// layers at batch 64, same process, alternating, median of 21, two runs (busy machine): forward conv1 1.6–2.1x,
// conv2 2.5–2.8x; backward-input conv2 4.4–4.8x; backward-weight conv1 1.8–2.2x, conv2 2.4x (8–15.6 GFLOP/s
// where v2 ran 2.8–6.3); the seed's training step (bench/train.ts, batch 64) went from 37 to 27 ms.
// Its kernels take llvmpipe about 8.6 s to compile for the seed's layers (v2: 3.3 s; Mesa caches them on disk).
import { ShapeError } from '../errors.js';
import { fixedSubgroupSize } from '../gpu/capabilities.js';
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, type Kernel, grid1d, i32, memoKernel, uniforms } from './common.js';

export type Conv2dVariant = 'v1' | 'v2' | 'v3' | 'v4';

/** Sizes of a convolution: x[N,C,H,W] convolved with w[O,C,KH,KW]. */
export interface Conv2dSizes {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  /** Same on both axes; default 1. */
  stride?: number;
  /** Zero padding, same on both axes; default 0. */
  padding?: number;
  /** Forces a kernel version (tests run every one); default {@link defaultConv2dVariant}. */
  variant?: Conv2dVariant;
}

export interface Conv2dBackwardBiasSizes {
  N: number;
  O: number;
  OH: number;
  OW: number;
  /** db += Σ dy instead of db = Σ dy. */
  accumulate?: boolean;
  variant?: Conv2dVariant;
}

/** Output height and width: floor((size + 2·padding − kernel) / stride) + 1. */
export function conv2dOutputSize(s: Conv2dSizes): { OH: number; OW: number } {
  const stride = s.stride ?? 1;
  const pad = s.padding ?? 0;
  return { OH: Math.floor((s.H + 2 * pad - s.KH) / stride) + 1, OW: Math.floor((s.W + 2 * pad - s.KW) / stride) + 1 };
}

interface Geometry {
  N: number; C: number; H: number; W: number; O: number; KH: number; KW: number;
  S: number; pad: number; OH: number; OW: number; variant: Conv2dVariant;
}

/** The version run when none is forced: v4 on software adapters with fixed-size subgroups, else v2; v3 on GPUs. */
export function defaultConv2dVariant(gpu: Gpu): Conv2dVariant {
  if (!gpu.isSoftware) return 'v3';
  return fixedSubgroupSize(gpu) ? 'v4' : 'v2';
}

function geometry(gpu: Gpu, op: string, s: Conv2dSizes): Geometry {
  const S = s.stride ?? 1;
  const pad = s.padding ?? 0;
  const { OH, OW } = conv2dOutputSize(s);
  const dims = [s.N, s.C, s.H, s.W, s.O, s.KH, s.KW, S];
  if (!dims.every((d) => Number.isInteger(d) && d >= 1) || !Number.isInteger(pad) || pad < 0 || OH < 1 || OW < 1) {
    throw new ShapeError(
      `${op}: bad sizes N=${s.N} C=${s.C} H=${s.H} W=${s.W} O=${s.O} KH=${s.KH} KW=${s.KW} stride=${S} padding=${pad} ` +
        `(output ${OH}x${OW}); sizes and stride must be positive integers, padding a non-negative integer, and the ` +
        'padded input at least as large as the kernel.',
    );
  }
  return { N: s.N, C: s.C, H: s.H, W: s.W, O: s.O, KH: s.KH, KW: s.KW, S, pad, OH, OW, variant: s.variant ?? defaultConv2dVariant(gpu) };
}

// ---------------------------------------------------------------------------------------------------------
// Shared WGSL. Only the v2 kernels take compile-time sizes (their tiles are unrolled into registers, which is
// what makes them fast on llvmpipe); v1 and v3 read every size from the uniform, so one pipeline serves all
// shapes (llvmpipe compiles a constant-bound loop nest by unrolling it, which costs seconds per shape).

const binding = (i: number, name: string, access: 'read' | 'read_write') =>
  `@group(0) @binding(${i}) var<storage, ${access}> ${name}: array<f32>;`;

const range = (n: number) => [...Array(n).keys()];

/** Workgroup-memory tree reduction of `red[0..WG)` into `red[0]`; every thread of the workgroup must reach it. */
const treeReduce = (WG: number) => /* wgsl */ `
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { red[lid.x] += red[lid.x + s]; }
    workgroupBarrier();
  }`;

// out[i] = (accumulate ? out[i] : 0) + Σ_{s<splits} part[s·M + i]: the second pass of the split reductions.
// (select() evaluates both sides; whatever out[i] held is discarded when not accumulating.)
const WG_SUM = 64;
const sumPartialsKernel = memoKernel((): Kernel => ({
  name: 'conv2d_sum_partials',
  wgsl: /* wgsl */ `
struct Params { M: u32, splits: u32, accumulate: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'part', 'read')}
${binding(2, 'out', 'read_write')}
@compute @workgroup_size(${WG_SUM}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_SUM)};
  if (i >= p.M) { return; }
  var acc = select(0.0, out[i], p.accumulate != 0u);
  for (var s = 0u; s < p.splits; s++) { acc += part[s * p.M + i]; }
  out[i] = acc;
}`,
}));

function sumPartials(gpu: Gpu, part: GPUBuffer, out: GPUBuffer, M: number, splits: number, accumulate: boolean): void {
  gpu.dispatch({ kernel: sumPartialsKernel(), params: uniforms(M, splits, +accumulate), buffers: [part, out], workgroups: grid1d(M, WG_SUM) });
}

// ---------------------------------------------------------------------------------------------------------
// Forward (and, with `flip`, backward-input at stride 1). These "direct" kernels read a[N,Cin,Hin,Win] and
// write b[N,Cout,Hout,Wout]. flip = false: tap (oc, ic, kh, kw) is w[oc, ic, kh, kw] (forward).
// flip = true: the input is dy, the output dx, and tap (oc, ic, kh, kw) is w[ic, oc, KH−1−kh, KW−1−kw].
// Bindings: x, w, bias, y; without a bias, w is bound in its place and hasBias = 0.

interface DirectArgs {
  Cin: number; Hin: number; Win: number; Cout: number; Hout: number; Wout: number;
  S: number; padH: number; padW: number; KH: number; KW: number; flip: boolean; hasBias: boolean;
}

/** WGSL index of w for tap (oc, ic, kh, kw); KH, KW are WGSL expressions (constants or uniforms). */
function weightIndex(flip: boolean, KH: string, KW: string, oc: string, ic: string, kh: string, kw: string): string {
  return flip
    ? `((${ic}) * p.Cout + (${oc})) * ${KH} * ${KW} + (${KH} - 1u - (${kh})) * ${KW} + (${KW} - 1u - (${kw}))`
    : `((${oc}) * p.Cin + (${ic})) * ${KH} * ${KW} + (${kh}) * ${KW} + (${kw})`;
}

const DIRECT_PARAMS = 'Cin: u32, Hin: u32, Win: u32, Cout: u32, Hout: u32, Wout: u32, padH: i32, padW: i32, hasBias: u32';
const directParams = (a: DirectArgs) => [a.Cin, a.Hin, a.Win, a.Cout, a.Hout, a.Wout, i32(a.padH), i32(a.padW), +a.hasBias];
const DIRECT_BINDINGS = [binding(1, 'x', 'read'), binding(2, 'w', 'read'), binding(3, 'bias', 'read'), binding(4, 'y', 'read_write')].join('\n');
const biasOf = (oc: string) => `select(0.0, bias[${oc}], p.hasBias != 0u)`;

// v1: one output per invocation.
const WG_V1 = 64;
const directV1Kernel = memoKernel((flip: boolean): Kernel => ({
  name: flip ? 'conv2d_bwd_input_v1' : 'conv2d_v1',
  wgsl: /* wgsl */ `
struct Params { ${DIRECT_PARAMS}, KH: u32, KW: u32, S: u32, total: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${DIRECT_BINDINGS}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_V1)};
  if (i >= p.total) { return; }
  let ow = i % p.Wout;
  let oh = (i / p.Wout) % p.Hout;
  let oc = (i / (p.Wout * p.Hout)) % p.Cout;
  let n = i / (p.Wout * p.Hout * p.Cout);
  var acc = ${biasOf('oc')};
  for (var ic = 0u; ic < p.Cin; ic++) {
    for (var kh = 0u; kh < p.KH; kh++) {
      let ih = i32(oh * p.S + kh) - p.padH;
      if (ih < 0 || ih >= i32(p.Hin)) { continue; }
      let row = ((n * p.Cin + ic) * p.Hin + u32(ih)) * p.Win;
      for (var kw = 0u; kw < p.KW; kw++) {
        let iw = i32(ow * p.S + kw) - p.padW;
        if (iw < 0 || iw >= i32(p.Win)) { continue; }
        acc += x[row + u32(iw)] * w[${weightIndex(flip, 'p.KH', 'p.KW', 'oc', 'ic', 'kh', 'kw')}];
      }
    }
  }
  y[i] = acc;
}`,
}));

function directV1(gpu: Gpu, a: DirectArgs, N: number, bufs: GPUBuffer[]): void {
  const total = N * a.Cout * a.Hout * a.Wout;
  gpu.dispatch({
    kernel: directV1Kernel(a.flip),
    params: uniforms(...directParams(a), a.KH, a.KW, a.S, total),
    buffers: bufs,
    workgroups: grid1d(total, WG_V1),
  });
}

// v2: register tile of OT output channels × PT output columns, unrolled over (kw, t, p) so the tile lives in
// registers; the kh and ic loops stay loops. Per (ic, kh) an invocation loads (PT−1)·S + KW input values and
// OT·KW weights (uniform across the workgroup) for OT·PT·KW FMAs.
export interface Conv2dTile {
  /** Output channels per invocation. */
  OT: number;
  /** Adjacent output columns per invocation (forward); unused by backward-weight. */
  PT: number;
  WG: number;
}

const directV2Kernel = memoKernel((KH: number, KW: number, S: number, padded: boolean, flip: boolean, t: Conv2dTile): Kernel => {
  const { OT, PT, WG } = t;
  const span = (PT - 1) * S + KW; // input columns one tile row touches
  const body: string[] = range(span).map((j) =>
    padded
      ? `let c${j} = iw0 + ${j}; let x${j} = select(0.0, x[xr + u32(clamp(c${j}, 0, i32(p.Win) - 1))], c${j} >= 0 && c${j} < i32(p.Win));`
      : `let x${j} = x[xr + min(u32(iw0) + ${j}u, p.Win - 1u)];`, // min: columns past Wout in the last block
  );
  // wk{t}: index of tap (oc_t, ic, kh, kw = 0); taps step by +1 along kw (−1 when flipped).
  body.push(...range(OT).map((tt) => `let wk${tt} = ${weightIndex(flip, `${KH}u`, `${KW}u`, `oc_${tt}`, 'ic', 'kh', '0u')};`));
  for (const kw of range(KW)) {
    for (const tt of range(OT)) {
      body.push(`{ let wv = w[wk${tt} ${flip ? '-' : '+'} ${kw}u];`);
      body.push(...range(PT).map((pp) => `  a${tt}_${pp} = fma(wv, x${pp * S + kw}, a${tt}_${pp});`), '}');
    }
  }
  const stores = range(OT).flatMap((tt) =>
    range(PT).map((pp) => `if (oc0 + ${tt}u < p.Cout && ow0 + ${pp}u < p.Wout) { y[ybase + ${tt}u * plane + ${pp}u] = a${tt}_${pp}; }`),
  );
  return {
    name: flip ? 'conv2d_bwd_input_v2' : 'conv2d_v2',
    wgsl: /* wgsl */ `
struct Params { ${DIRECT_PARAMS}, lanes: u32, nPB: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${DIRECT_BINDINGS}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let lane = ${FLAT_INDEX(WG)};
  if (lane >= p.lanes) { return; }
  let pb = lane % p.nPB;
  let row = lane / p.nPB;
  let oh = row % p.Hout;
  let n = row / p.Hout;
  let ow0 = pb * ${PT}u;
  let oc0 = wid.z * ${OT}u;
  ${range(OT).map((tt) => `let oc_${tt} = min(oc0 + ${tt}u, p.Cout - 1u);`).join('\n  ')}
  ${range(OT).map((tt) => `let b${tt} = ${biasOf(`oc_${tt}`)};`).join('\n  ')}
  ${range(OT).flatMap((tt) => range(PT).map((pp) => `var a${tt}_${pp} = b${tt};`)).join('\n  ')}
  let ih0 = i32(oh * ${S}u) - p.padH;
  let iw0 = i32(ow0 * ${S}u) - p.padW;
  for (var ic = 0u; ic < p.Cin; ic++) {
    for (var kh = 0u; kh < ${KH}u; kh++) {
      let ih = ih0 + i32(kh);
      ${padded ? 'if (ih < 0 || ih >= i32(p.Hin)) { continue; }' : ''}
      let xr = ((n * p.Cin + ic) * p.Hin + u32(ih)) * p.Win;
      ${body.join('\n      ')}
    }
  }
  let plane = p.Hout * p.Wout;
  let ybase = ((n * p.Cout + oc0) * p.Hout + oh) * p.Wout + ow0;
  ${stores.join('\n  ')}
}`,
  };
});

/**
 * The v2 tile for a direct convolution: the (OT, PT) with the fewest loads per useful FMA, counting the FMAs
 * wasted on channel and column tails, within a register budget. Per (ic, kh) an invocation loads
 * (PT−1)·S + KW inputs and OT·KW weights for OT·PT·KW FMAs; a load costs about 8 FMAs on llvmpipe (measured:
 * the weight loads, though uniform, cost about as much as the gathered input loads). Flipped (backward-input)
 * kernels pad by KW−1−pad, so their loads carry bounds checks and their budget is smaller.
 * The measurements behind it: bench/kernels-conv2d.ts.
 */
export function conv2dTileV2(Cout: number, Wout: number, KW: number, S: number, flip: boolean): Conv2dTile {
  const maxPT = flip ? 14 : 8;
  const maxAcc = flip ? 24 : 40;
  let best: Conv2dTile = { OT: 1, PT: 1, WG: 16 };
  let bestScore = Infinity;
  for (let OT = 1; OT <= Math.min(Cout, 5); OT++) {
    for (let PT = 1; PT <= Math.min(Wout, maxPT) && OT * PT <= maxAcc; PT++) {
      const waste = ((Math.ceil(Cout / OT) * OT) / Cout) * ((Math.ceil(Wout / PT) * PT) / Wout);
      const score = waste * (1 + (8 * ((PT - 1) * S + KW + OT * KW)) / (OT * PT * KW));
      if (score < bestScore) [best, bestScore] = [{ OT, PT, WG: 16 }, score];
    }
  }
  return best;
}

function directV2(gpu: Gpu, a: DirectArgs, N: number, bufs: GPUBuffer[], tile?: Conv2dTile): void {
  const t = tile ?? conv2dTileV2(a.Cout, a.Wout, a.KW, a.S, a.flip);
  const nPB = Math.ceil(a.Wout / t.PT);
  const lanes = N * a.Hout * nPB;
  const padded = a.padH !== 0 || a.padW !== 0;
  const [gx, gy] = grid1d(lanes, t.WG);
  gpu.dispatch({
    kernel: directV2Kernel(a.KH, a.KW, a.S, padded, a.flip, t),
    params: uniforms(...directParams(a), lanes, nPB),
    buffers: bufs,
    workgroups: [gx, gy, Math.ceil(a.Cout / t.OT)],
  });
}

// v4 (llvmpipe with subgroups): one subgroup per workgroup, its sg lanes over sg images; workgroup (gx, gy)
// picks the output row and column block, wid.z OT output channels, and each lane computes OT channels × PT
// columns of that row for its image. Everything but the image is uniform, which buys three things:
//  - the OT·KW weights of a (ic, kh) step are the same in every lane: lane l loads taps l, l + sg, ... and
//    subgroupBroadcast from a constant lane (a register shuffle on llvmpipe) hands every lane all of them, so
//    ceil(OT·KW / sg) loads (each a gather on llvmpipe) replace OT·KW;
//  - padding rows are skipped by the kh loop bounds for the whole subgroup;
//  - Win, Wout and the column padding are compile-time, so each class of column block (left edge, interior,
//    right edge, tail) gets its own unrolled body without the loads and FMAs that would touch padding columns
//    or columns past Wout. Backward-input at stride 1 pads by KW−1−pad: with 8×8 dy and k5 that is more than
//    half of the taps, which the v2 kernel multiplies by zero.
// No lane returns early (a broadcast reads the other lanes' registers): lanes past N compute image N−1 again
// and skip the store. Tiles are large (up to 120 accumulators): measured faster than v2-sized ones here.
const directV4Kernel = memoKernel((KH: number, KW: number, S: number, flip: boolean, t: Conv2dTile, sg: number, Win: number, Wout: number, padW: number): Kernel => {
  const { OT, PT } = t;
  const span = (PT - 1) * S + KW;
  const nPB = Math.ceil(Wout / PT);
  const NT = OT * KW;
  const G = range(Math.ceil(NT / sg));
  const pre = G.flatMap((g) => [
    `let j${g} = min(${g * sg}u + sid, ${NT - 1}u);`,
    `let jc${g} = min(oc0 + j${g} / ${KW}u, p.Cout - 1u);`,
    flip ? `let wl${g} = jc${g} * ${KH * KW}u + ${KW - 1}u - j${g} % ${KW}u;` : `let wl${g} = jc${g} * p.Cin * ${KH * KW}u + j${g} % ${KW}u;`,
  ]);
  const wo = flip ? `ic * p.Cout * ${KH * KW}u + (${KH - 1}u - kh) * ${KW}u` : `(ic * ${KH}u + kh) * ${KW}u`;
  const wloads = [`let wo = ${wo};`, ...G.map((g) => `let wg${g} = w[wl${g} + wo];`)];
  for (const tt of range(OT)) for (const kw of range(KW)) {
    const j = tt * KW + kw;
    wloads.push(`let w${tt}_${kw} = subgroupBroadcast(wg${Math.floor(j / sg)}, ${j % sg}u);`);
  }
  // classes of column blocks with the same valid input columns and output columns
  const classes = new Map<string, number[]>();
  for (const b of range(nPB)) {
    const iw0 = b * PT * S - padW;
    const xs = range(span).filter((j) => iw0 + j >= 0 && iw0 + j < Win);
    const ps = range(PT).filter((pp) => b * PT + pp < Wout);
    const key = `${xs.join(',')}|${ps.join(',')}`;
    classes.set(key, [...(classes.get(key) ?? []), b]);
  }
  const nests: string[] = [];
  for (const [key, blocks] of classes) {
    const [xs, ps] = key.split('|').map((l) => (l ? l.split(',').map(Number) : []));
    const x0 = xs[0] ?? 0; // xr points at input column iw0 + x0, the block's first one inside the image
    const body = xs.map((j) => `let x${j} = x[xr + ${j - x0}u];`);
    for (const kw of range(KW)) for (const tt of range(OT)) for (const pp of ps) {
      if (xs.includes(pp * S + kw)) body.push(`a${tt}_${pp} = fma(w${tt}_${kw}, x${pp * S + kw}, a${tt}_${pp});`);
    }
    const cond = blocks.map((b) => `pb == ${b}u`).join(' || ');
    nests.push(`if (${cond}) {
    for (var ic = 0u; ic < p.Cin; ic++) {
      for (var kh = khLo; kh < khHi; kh++) {
        ${wloads.join('\n        ')}
        let xr = ((n * p.Cin + ic) * p.Hin + u32(ih0 + i32(kh))) * ${Win}u + u32(iw0 + ${x0});
        ${body.join('\n        ')}
      }
    }
  }`);
  }
  const stores = range(OT).flatMap((tt) =>
    range(PT).map((pp) => `if (live && oc0 + ${tt}u < p.Cout && ow0 + ${pp}u < ${Wout}u) { y[ybase + ${tt}u * plane + ${pp}u] = a${tt}_${pp}; }`),
  );
  return {
    name: flip ? 'conv2d_bwd_input_v4' : 'conv2d_v4',
    wgsl: /* wgsl */ `enable subgroups;
struct Params { ${DIRECT_PARAMS}, N: u32, nNB: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${DIRECT_BINDINGS}
@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sid: u32) {
  let gidx = wid.y * nwg.x + wid.x;  // (oh, pb, image block); past the end only at grid rounding
  let nb = gidx % p.nNB;
  let pb = (gidx / p.nNB) % ${nPB}u;
  let oh = min(gidx / (p.nNB * ${nPB}u), p.Hout - 1u);
  let nl = nb * ${sg}u + sid;
  let live = nl < p.N && gidx < p.nNB * ${nPB}u * p.Hout;
  let n = min(nl, p.N - 1u);
  let ow0 = pb * ${PT}u;
  let oc0 = wid.z * ${OT}u;
  ${pre.join('\n  ')}
  ${range(OT).map((tt) => `let b${tt} = ${biasOf(`min(oc0 + ${tt}u, p.Cout - 1u)`)};`).join('\n  ')}
  ${range(OT).flatMap((tt) => range(PT).map((pp) => `var a${tt}_${pp} = b${tt};`)).join('\n  ')}
  let ih0 = i32(oh * ${S}u) - p.padH;
  let iw0 = i32(ow0 * ${S}u) - ${padW};
  let khLo = u32(max(-ih0, 0));
  let khHi = u32(clamp(i32(p.Hin) - ih0, 0, ${KH}));
  ${nests.join(' else ')}
  let plane = p.Hout * ${Wout}u;
  let ybase = ((n * p.Cout + oc0) * p.Hout + oh) * ${Wout}u + ow0;
  ${stores.join('\n  ')}
}`,
  };
});

/**
 * The v4 tile (measured on the seed's layers, A/B on llvmpipe): a whole output row, or a column block of at
 * most 12, per lane (fewest column-tail FMAs), and as many output channels as fit 120 accumulators with the
 * fewest channel-tail ones. conv1 forward ran 1.5x faster at 10x12 than at 5x12; conv2 as fast at 10x8 as at
 * 20x8, which takes llvmpipe 4.7 s to compile instead of 2 (uncached).
 */
export function conv2dTileV4(Cout: number, Wout: number): Conv2dTile {
  let PT = Wout;
  if (Wout > 12) {
    PT = 12;
    for (let pt = 12; pt >= 6; pt--) if (Math.ceil(Wout / pt) * pt < Math.ceil(Wout / PT) * PT) PT = pt;
  }
  let OT = 1;
  for (let ot = 2; ot <= Math.min(Cout, Math.floor(120 / PT)); ot++) if (Math.ceil(Cout / ot) * ot - Cout <= Math.ceil(Cout / OT) * OT - Cout) OT = ot;
  return { OT, PT, WG: 0 }; // WG: unused, a v4 workgroup is one subgroup
}

function directV4(gpu: Gpu, a: DirectArgs, N: number, bufs: GPUBuffer[], tile?: Conv2dTile): void {
  const sg = fixedSubgroupSize(gpu);
  if (!sg) return directV2(gpu, a, N, bufs, tile && { ...tile, WG: tile.WG || 16 }); // no subgroups: v4 is v2
  const t = tile ?? conv2dTileV4(a.Cout, a.Wout);
  const nPB = Math.ceil(a.Wout / t.PT);
  const nNB = Math.ceil(N / sg);
  const [gx, gy] = grid1d(nNB * nPB * a.Hout, 1);
  gpu.dispatch({
    kernel: directV4Kernel(a.KH, a.KW, a.S, a.flip, { ...t, WG: sg }, sg, a.Win, a.Wout, a.padW),
    params: uniforms(...directParams(a), N, nNB),
    buffers: bufs,
    workgroups: [gx, gy, Math.ceil(a.Cout / t.OT)],
  });
}

// v3 (GPUs): a workgroup computes TO output channels × an 8×8 output patch of one image, one thread per output
// pixel. Per chunk of ICT input channels the threads stage the input patch (zero outside the image) and the
// chunk's weights (zero past Cout) in workgroup memory, then every thread reads its taps from there.
const TO = 8;
const TILE = 8;
const XS = 2048; // floats of staged input
const WS = 1024; // floats of staged weights: 12 KiB in all, within the 16 KiB every adapter offers

function v3Chunk(KH: number, KW: number, S: number): { PH: number; PW: number; ICT: number } | null {
  const PH = (TILE - 1) * S + KH;
  const PW = (TILE - 1) * S + KW;
  const ICT = Math.min(8, Math.floor(XS / (PH * PW)), Math.floor(WS / (TO * KH * KW)));
  return ICT >= 1 ? { PH, PW, ICT } : null;
}

const directV3Kernel = memoKernel((flip: boolean): Kernel => ({
  name: flip ? 'conv2d_bwd_input_v3' : 'conv2d_v3',
  wgsl: /* wgsl */ `
struct Params { ${DIRECT_PARAMS}, KH: u32, KW: u32, S: u32, ICT: u32, PH: u32, PW: u32, tilesW: u32, tilesPerImage: u32, N: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${DIRECT_BINDINGS}
var<workgroup> xs: array<f32, ${XS}>;  // [icl][PH][PW]
var<workgroup> ws: array<f32, ${WS}>;  // [t][icl][KH][KW]
@compute @workgroup_size(${TILE}, ${TILE}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
    @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wid.y * nwg.x + wid.x;  // (n, patch) flattened; groups past the end (grid rounding) only stage zeros
  let n = g / p.tilesPerImage;
  let live = n < p.N;
  let oh0 = ((g % p.tilesPerImage) / p.tilesW) * ${TILE}u;
  let ow0 = ((g % p.tilesPerImage) % p.tilesW) * ${TILE}u;
  let oc0 = wid.z * ${TO}u;
  let KK = p.KH * p.KW;
  var acc: array<f32, ${TO}>;
  for (var t = 0u; t < ${TO}u; t++) { acc[t] = ${biasOf('min(oc0 + t, p.Cout - 1u)')}; }
  let ih0 = i32(oh0 * p.S) - p.padH;
  let iw0 = i32(ow0 * p.S) - p.padW;
  for (var ic0 = 0u; ic0 < p.Cin; ic0 += p.ICT) {
    for (var e = li; e < p.ICT * p.PH * p.PW; e += ${TILE * TILE}u) {
      let ic = ic0 + e / (p.PH * p.PW);
      let ih = ih0 + i32((e / p.PW) % p.PH);
      let iw = iw0 + i32(e % p.PW);
      var v = 0.0;
      if (live && ic < p.Cin && ih >= 0 && ih < i32(p.Hin) && iw >= 0 && iw < i32(p.Win)) {
        v = x[((n * p.Cin + ic) * p.Hin + u32(ih)) * p.Win + u32(iw)];
      }
      xs[e] = v;
    }
    for (var e = li; e < ${TO}u * p.ICT * KK; e += ${TILE * TILE}u) {
      let oc = oc0 + e / (p.ICT * KK);
      let ic = ic0 + (e / KK) % p.ICT;
      let kh = (e / p.KW) % p.KH;
      let kw = e % p.KW;
      var v = 0.0;
      if (oc < p.Cout && ic < p.Cin) { v = w[${weightIndex(flip, 'p.KH', 'p.KW', 'oc', 'ic', 'kh', 'kw')}]; }
      ws[e] = v;
    }
    workgroupBarrier();
    for (var icl = 0u; icl < p.ICT; icl++) {
      for (var kh = 0u; kh < p.KH; kh++) {
        for (var kw = 0u; kw < p.KW; kw++) {
          let xv = xs[(icl * p.PH + lid.y * p.S + kh) * p.PW + lid.x * p.S + kw];
          let wi = (icl * p.KH + kh) * p.KW + kw;
          for (var t = 0u; t < ${TO}u; t++) { acc[t] = fma(xv, ws[t * p.ICT * KK + wi], acc[t]); }
        }
      }
    }
    workgroupBarrier();
  }
  let oh = oh0 + lid.y;
  let ow = ow0 + lid.x;
  if (live && oh < p.Hout && ow < p.Wout) {
    for (var t = 0u; t < ${TO}u; t++) {
      if (oc0 + t < p.Cout) { y[((n * p.Cout + oc0 + t) * p.Hout + oh) * p.Wout + ow] = acc[t]; }
    }
  }
}`,
}));

function directV3(gpu: Gpu, a: DirectArgs, N: number, bufs: GPUBuffer[]): void {
  const chunk = v3Chunk(a.KH, a.KW, a.S);
  if (!chunk) return directV2(gpu, a, N, bufs); // a kernel too large to stage
  const tilesW = Math.ceil(a.Wout / TILE);
  const tilesPerImage = tilesW * Math.ceil(a.Hout / TILE);
  const [gx, gy] = grid1d(N * tilesPerImage, 1);
  gpu.dispatch({
    kernel: directV3Kernel(a.flip),
    params: uniforms(...directParams(a), a.KH, a.KW, a.S, chunk.ICT, chunk.PH, chunk.PW, tilesW, tilesPerImage, N),
    buffers: bufs,
    workgroups: [gx, gy, Math.ceil(a.Cout / TO)],
  });
}

function direct(gpu: Gpu, variant: Conv2dVariant, a: DirectArgs, N: number, bufs: GPUBuffer[], tile?: Conv2dTile): void {
  if (variant === 'v1') directV1(gpu, a, N, bufs);
  else if (variant === 'v2') directV2(gpu, a, N, bufs, tile);
  else if (variant === 'v4') directV4(gpu, a, N, bufs, tile);
  else directV3(gpu, a, N, bufs);
}

const forwardArgs = (g: Geometry, hasBias: boolean): DirectArgs => ({
  Cin: g.C, Hin: g.H, Win: g.W, Cout: g.O, Hout: g.OH, Wout: g.OW, S: g.S, padH: g.pad, padW: g.pad, KH: g.KH, KW: g.KW, flip: false, hasBias,
});

/** y = conv2d(x, w) + bias, bias optional (null). y[N,O,OH,OW]. `tile` overrides the v2 register tile (benchmarks). */
export function conv2d(gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, y: GPUBuffer, sizes: Conv2dSizes & { tile?: Conv2dTile }): void {
  const g = geometry(gpu, 'conv2d', sizes);
  direct(gpu, g.variant, forwardArgs(g, bias !== null), g.N, [x, w, bias ?? w, y], sizes.tile);
}

export const conv2dCost = (s: Conv2dSizes): Cost => {
  const { OH, OW } = conv2dOutputSize(s);
  const flops = 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW;
  return { flops, bytes: 4 * (s.N * s.C * s.H * s.W + s.O * s.C * s.KH * s.KW + s.O + s.N * s.O * OH * OW) };
};

// dx[n,c,ih,iw] = Σ_{o,kh,kw: ih = oh·s+kh−pad, iw = ow·s+kw−pad} dy[n,o,oh,ow] · w[o,c,kh,kw]
export function conv2dBackwardInput(gpu: Gpu, dy: GPUBuffer, w: GPUBuffer, dx: GPUBuffer, sizes: Conv2dSizes & { tile?: Conv2dTile }): void {
  const g = geometry(gpu, 'conv2dBackwardInput', sizes);
  if (g.S === 1 && g.variant !== 'v1') {
    // At stride 1, dx is the convolution of dy (padded by KH−1−pad) with the flipped, channel-swapped kernel.
    const a: DirectArgs = {
      Cin: g.O, Hin: g.OH, Win: g.OW, Cout: g.C, Hout: g.H, Wout: g.W,
      S: 1, padH: g.KH - 1 - g.pad, padW: g.KW - 1 - g.pad, KH: g.KH, KW: g.KW, flip: true, hasBias: false,
    };
    direct(gpu, g.variant, a, g.N, [dy, w, w, dx], sizes.tile);
    return;
  }
  const total = g.N * g.C * g.H * g.W;
  gpu.dispatch({
    kernel: bwdInputV1Kernel(),
    params: uniforms(total, g.C, g.H, g.W, g.O, g.OH, g.OW, g.pad, g.KH, g.KW, g.S),
    buffers: [dy, w, dx],
    workgroups: grid1d(total, WG_V1),
  });
}

// v1, any stride: the forward taps that read x[n,c,ih,iw] are oh = (ih + pad − kh) / s where that divides.
const bwdInputV1Kernel = memoKernel((): Kernel => ({
  name: 'conv2d_bwd_input_v1',
  wgsl: /* wgsl */ `
struct Params { total: u32, C: u32, H: u32, W: u32, O: u32, OH: u32, OW: u32, pad: u32, KH: u32, KW: u32, S: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'dy', 'read')}
${binding(2, 'w', 'read')}
${binding(3, 'dx', 'read_write')}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_V1)};
  if (i >= p.total) { return; }
  let iw = (i % p.W) + p.pad;
  let ih = ((i / p.W) % p.H) + p.pad;
  let c = (i / (p.W * p.H)) % p.C;
  let n = i / (p.W * p.H * p.C);
  var acc = 0.0;
  for (var o = 0u; o < p.O; o++) {
    for (var kh = 0u; kh < p.KH && kh <= ih; kh++) {
      let th = ih - kh;  // = oh·s
      if (th % p.S != 0u || th / p.S >= p.OH) { continue; }
      let dyRow = ((n * p.O + o) * p.OH + th / p.S) * p.OW;
      let wRow = ((o * p.C + c) * p.KH + kh) * p.KW;
      for (var kw = 0u; kw < p.KW && kw <= iw; kw++) {
        let tw = iw - kw;
        if (tw % p.S != 0u || tw / p.S >= p.OW) { continue; }
        acc += dy[dyRow + tw / p.S] * w[wRow + kw];
      }
    }
  }
  dx[i] = acc;
}`,
}));

export const conv2dBackwardInputCost = (s: Conv2dSizes): Cost => {
  const { OH, OW } = conv2dOutputSize(s);
  return { flops: 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW, bytes: 4 * (s.N * s.O * OH * OW + s.O * s.C * s.KH * s.KW + s.N * s.C * s.H * s.W) };
};

// ---------------------------------------------------------------------------------------------------------
// Backward weight: dw[o,c,kh,kw] (+)= Σ_{n,oh,ow} dy[n,o,oh,ow] · x[n,c,oh·s+kh−pad,ow·s+kw−pad]

const BWD_W_PARAMS = 'N: u32, C: u32, H: u32, W: u32, O: u32, OH: u32, OW: u32, pad: i32, accumulate: u32';
const bwdWParams = (g: Geometry, acc: boolean) => [g.N, g.C, g.H, g.W, g.O, g.OH, g.OW, i32(g.pad), +acc];
const BWD_W_BINDINGS = [binding(1, 'x', 'read'), binding(2, 'dy', 'read'), binding(3, 'dw', 'read_write')].join('\n');

const bwdWeightV1Kernel = memoKernel((): Kernel => ({
  name: 'conv2d_bwd_weight_v1',
  wgsl: /* wgsl */ `
struct Params { ${BWD_W_PARAMS}, KH: u32, KW: u32, S: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${BWD_W_BINDINGS}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
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
}`,
}));

// v2 (llvmpipe): lanes over (c, kh); workgroup_id.y picks OT output channels, workgroup_id.z a slice of the
// N·OH rows. An invocation keeps OT × KW sums. It walks a row PT output columns at a time: it loads the
// (PT−1)·S + KW x values those columns touch and OT·PT dy values (uniform across the workgroup: lanes differ
// only in c and kh) for OT·PT·KW FMAs. Slice z writes part[z][o][c][kh][kw]; with one slice that is dw itself.
export interface Conv2dWeightTile {
  /** Output channels per invocation. */
  OT: number;
  /** Output columns per step. */
  PT: number;
  WG: number;
  /** Workgroups to aim for when choosing how many slices to split the rows into. */
  groups: number;
}

/** The v2 backward-weight tile (measured on the seed's shapes: bench/kernels-conv2d.ts). */
export function conv2dWeightTileV2(O: number, OW: number): Conv2dWeightTile {
  let OT = 1;
  for (let t = 2; t <= Math.min(O, 5); t++) if (Math.ceil(O / t) * t - O <= Math.ceil(O / OT) * OT - O) OT = t;
  return { OT, PT: Math.min(OW, 4), WG: 8, groups: 64 };
}

const bwdWeightV2Kernel = memoKernel((KH: number, KW: number, S: number, padded: boolean, t: Conv2dWeightTile): Kernel => {
  const { OT, PT, WG } = t;
  const span = (PT - 1) * S + KW;
  const body = range(span).map((j) =>
    padded
      ? `let c${j} = iw0 + ${j}; let x${j} = select(0.0, x[xr + u32(clamp(c${j}, 0, i32(p.W) - 1))], c${j} >= 0 && c${j} < i32(p.W));`
      : `let x${j} = x[xr + min(u32(iw0) + ${j}u, p.W - 1u)];`, // min: columns past OW in the last step
  );
  for (const pp of range(PT)) {
    body.push(`{ let live = ow + ${pp}u < p.OW; let owc = min(ow + ${pp}u, p.OW - 1u);`);
    for (const tt of range(OT)) {
      body.push(`  { let g = select(0.0, dy[dr${tt} + owc], live); ${range(KW).map((kw) => `a${tt}_${kw} = fma(g, x${pp * S + kw}, a${tt}_${kw});`).join(' ')} }`);
    }
    body.push('}');
  }
  const stores = range(OT).flatMap((tt) =>
    range(KW).map((kw) => {
      const i = `wbase + ${tt * KH * KW}u * p.C + ${kw}u`;
      return `if (o0 + ${tt}u < p.O) { dw[${i}] = select(a${tt}_${kw}, dw[${i}] + a${tt}_${kw}, p.accumulate != 0u); }`;
    }),
  );
  return {
    name: 'conv2d_bwd_weight_v2',
    wgsl: /* wgsl */ `
struct Params { ${BWD_W_PARAMS}, rowsPerSlice: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${BWD_W_BINDINGS}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = wid.x * ${WG}u + lid.x;
  if (lane >= p.C * ${KH}u) { return; }
  let c = lane / ${KH}u;
  let kh = lane % ${KH}u;
  let o0 = wid.y * ${OT}u;
  ${range(OT).map((tt) => `let o_${tt} = min(o0 + ${tt}u, p.O - 1u);`).join('\n  ')}
  ${range(OT).flatMap((tt) => range(KW).map((kw) => `var a${tt}_${kw} = 0.0;`)).join('\n  ')}
  let r0 = wid.z * p.rowsPerSlice;
  let r1 = min(r0 + p.rowsPerSlice, p.N * p.OH);
  for (var r = r0; r < r1; r++) {
    let n = r / p.OH;
    let oh = r % p.OH;
    let ih = i32(oh * ${S}u + kh) - p.pad;
    ${padded ? 'if (ih < 0 || ih >= i32(p.H)) { continue; }' : ''}
    let xr = ((n * p.C + c) * p.H + u32(ih)) * p.W;
    ${range(OT).map((tt) => `let dr${tt} = ((n * p.O + o_${tt}) * p.OH + oh) * p.OW;`).join('\n    ')}
    for (var ow = 0u; ow < p.OW; ow += ${PT}u) {
      let iw0 = i32(ow * ${S}u) - p.pad;
      ${body.join('\n      ')}
    }
  }
  let wbase = wid.z * p.O * p.C * ${KH * KW}u + ((o0 * p.C + c) * ${KH}u + kh) * ${KW}u;
  ${stores.join('\n  ')}
}`,
  };
});

// v4 (llvmpipe with subgroups): v2 with one subgroup per workgroup (WG = sg lanes over (c, kh)) sharing the dy
// loads, which are the same in every lane: per step of PT columns (PT a multiple of sg) lane l loads columns
// ow + l, ow + l + sg, ... of each of its OT dy rows, and subgroupBroadcast hands every lane all PT of them, so
// OT·PT/sg loads replace OT·PT. No lane returns early: lanes past C·KH compute a clamped duplicate and skip
// the store; padding rows read zeros instead of skipping (a broadcast must not sit in divergent control flow).
const bwdWeightV4Kernel = memoKernel((KH: number, KW: number, S: number, padded: boolean, t: Conv2dWeightTile, sg: number): Kernel => {
  const { OT, PT } = t;
  const span = (PT - 1) * S + KW;
  const body = range(span).map((j) =>
    padded
      ? `let c${j} = iw0 + ${j}; let x${j} = select(0.0, x[xr + u32(clamp(c${j}, 0, i32(p.W) - 1))], rowOk && c${j} >= 0 && c${j} < i32(p.W));`
      : `let x${j} = x[xr + min(u32(iw0) + ${j}u, p.W - 1u)];`,
  );
  // dy[dr_t + ow + gq·sg + lane], zero past OW; every lane then gets all PT columns by broadcast
  for (const gq of range(PT / sg)) {
    body.push(`let owl${gq} = ow + ${gq * sg}u + sid;`);
    body.push(...range(OT).map((tt) => `let d${tt}_${gq} = select(0.0, dy[dr${tt} + min(owl${gq}, p.OW - 1u)], owl${gq} < p.OW);`));
  }
  for (const pp of range(PT)) {
    for (const tt of range(OT)) {
      body.push(`{ let g = subgroupBroadcast(d${tt}_${Math.floor(pp / sg)}, ${pp % sg}u); ${range(KW).map((kw) => `a${tt}_${kw} = fma(g, x${pp * S + kw}, a${tt}_${kw});`).join(' ')} }`);
    }
  }
  const stores = range(OT).flatMap((tt) =>
    range(KW).map((kw) => {
      const i = `wbase + ${tt * KH * KW}u * p.C + ${kw}u`;
      return `if (live && o0 + ${tt}u < p.O) { dw[${i}] = select(a${tt}_${kw}, dw[${i}] + a${tt}_${kw}, p.accumulate != 0u); }`;
    }),
  );
  return {
    name: 'conv2d_bwd_weight_v4',
    wgsl: /* wgsl */ `enable subgroups;
struct Params { ${BWD_W_PARAMS}, rowsPerSlice: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${BWD_W_BINDINGS}
@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(subgroup_invocation_id) sid: u32) {
  let glane = wid.x * ${sg}u + sid;
  let live = glane < p.C * ${KH}u;
  let lane = min(glane, p.C * ${KH}u - 1u);
  let c = lane / ${KH}u;
  let kh = lane % ${KH}u;
  let o0 = wid.y * ${OT}u;
  ${range(OT).map((tt) => `let o_${tt} = min(o0 + ${tt}u, p.O - 1u);`).join('\n  ')}
  ${range(OT).flatMap((tt) => range(KW).map((kw) => `var a${tt}_${kw} = 0.0;`)).join('\n  ')}
  let r0 = wid.z * p.rowsPerSlice;
  let r1 = min(r0 + p.rowsPerSlice, p.N * p.OH);
  for (var r = r0; r < r1; r++) {
    let n = r / p.OH;
    let oh = r % p.OH;
    let ihr = i32(oh * ${S}u + kh) - p.pad;
    ${padded ? 'let rowOk = ihr >= 0 && ihr < i32(p.H); let ih = clamp(ihr, 0, i32(p.H) - 1);' : 'let ih = ihr;'}
    let xr = ((n * p.C + c) * p.H + u32(ih)) * p.W;
    ${range(OT).map((tt) => `let dr${tt} = ((n * p.O + o_${tt}) * p.OH + oh) * p.OW;`).join('\n    ')}
    for (var ow = 0u; ow < p.OW; ow += ${PT}u) {
      let iw0 = i32(ow * ${S}u) - p.pad;
      ${body.join('\n      ')}
    }
  }
  let wbase = wid.z * p.O * p.C * ${KH * KW}u + ((o0 * p.C + c) * ${KH}u + kh) * ${KW}u;
  ${stores.join('\n  ')}
}`,
  };
});

/**
 * The v4 backward-weight tile (A/B on the seed's layers): sg columns per step (2·sg ran at half the speed on
 * conv1), as many output channels as fit 50 accumulators with the fewest channel-tail ones (conv1 ran 1.5x
 * faster with 10 than with 5; conv2 no faster with 20, which takes 7 s to compile instead of 2), and few row
 * slices (16 groups: 64 and more ran slower, 4 to 32 alike).
 */
export function conv2dWeightTileV4(O: number, KW: number, sg: number): Conv2dWeightTile {
  let OT = 1;
  for (let t = 2; t <= Math.min(O, Math.floor(50 / KW)); t++) if (Math.ceil(O / t) * t - O <= Math.ceil(O / OT) * OT - O) OT = t;
  return { OT, PT: sg, WG: sg, groups: 16 };
}

// v3 (GPUs): a workgroup of WG_R threads per weight element; thread j sums reduction positions j, j + WG_R, ...
// (consecutive threads read consecutive dy and x), then a tree reduction in workgroup memory.
const WG_R = 64;
const bwdWeightV3Kernel = memoKernel((): Kernel => ({
  name: 'conv2d_bwd_weight_v3',
  wgsl: /* wgsl */ `
struct Params { ${BWD_W_PARAMS}, KH: u32, KW: u32, S: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${BWD_W_BINDINGS}
var<workgroup> red: array<f32, ${WG_R}>;
@compute @workgroup_size(${WG_R}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let kw = wid.x % p.KW;
  let kh = (wid.x / p.KW) % p.KH;
  let c = wid.x / (p.KW * p.KH);
  let o = wid.y;
  let plane = p.OH * p.OW;
  var acc = 0.0;
  for (var r = lid.x; r < p.N * plane; r += ${WG_R}u) {
    let n = r / plane;
    let oh = (r % plane) / p.OW;
    let ow = r % p.OW;
    let ih = i32(oh * p.S + kh) - p.pad;
    let iw = i32(ow * p.S + kw) - p.pad;
    if (ih >= 0 && ih < i32(p.H) && iw >= 0 && iw < i32(p.W)) {
      acc = fma(dy[(n * p.O + o) * plane + oh * p.OW + ow], x[((n * p.C + c) * p.H + u32(ih)) * p.W + u32(iw)], acc);
    }
  }
  red[lid.x] = acc;
  ${treeReduce(WG_R)}
  if (lid.x == 0u) {
    let i = (o * p.C + c) * p.KH * p.KW + kh * p.KW + kw;
    dw[i] = select(red[0], dw[i] + red[0], p.accumulate != 0u);
  }
}`,
}));

export type Conv2dBackwardWeightSizes = Conv2dSizes & { accumulate?: boolean; tile?: Conv2dWeightTile };

// dw (+)= Σ_{n,oh,ow} dy[n,o,oh,ow] · x[n,c,oh·s+kh−pad,ow·s+kw−pad]
export function conv2dBackwardWeight(gpu: Gpu, x: GPUBuffer, dy: GPUBuffer, dw: GPUBuffer, sizes: Conv2dBackwardWeightSizes): void {
  const g = geometry(gpu, 'conv2dBackwardWeight', sizes);
  const acc = sizes.accumulate ?? false;
  const M = g.O * g.C * g.KH * g.KW;
  if (g.variant === 'v1') {
    gpu.dispatch({ kernel: bwdWeightV1Kernel(), params: uniforms(...bwdWParams(g, acc), g.KH, g.KW, g.S), buffers: [x, dy, dw], workgroups: grid1d(M, WG_V1) });
    return;
  }
  if (g.variant === 'v3') {
    const workgroups: [number, number] = [g.C * g.KH * g.KW, g.O];
    gpu.dispatch({ kernel: bwdWeightV3Kernel(), params: uniforms(...bwdWParams(g, acc), g.KH, g.KW, g.S), buffers: [x, dy, dw], workgroups });
    return;
  }
  const sg = g.variant === 'v4' ? fixedSubgroupSize(gpu) : null; // v4 without subgroups is v2
  const t = sg ? { ...(sizes.tile ?? conv2dWeightTileV4(g.O, g.KW, sg)), WG: sg } : (sizes.tile ?? conv2dWeightTileV2(g.O, g.OW));
  if (sg && t.PT % sg !== 0) throw new ShapeError(`conv2d_bwd_weight_v4: tile width ${t.PT} is not a multiple of the subgroup size ${sg}`);
  const groups = Math.ceil((g.C * g.KH) / t.WG) * Math.ceil(g.O / t.OT);
  const rows = g.N * g.OH;
  const rowsPerSlice = Math.ceil(rows / Math.min(rows, 65535, Math.max(1, Math.round(t.groups / groups))));
  const slices = Math.ceil(rows / rowsPerSlice);
  const kernel = sg ? bwdWeightV4Kernel(g.KH, g.KW, g.S, g.pad !== 0, t, sg) : bwdWeightV2Kernel(g.KH, g.KW, g.S, g.pad !== 0, t);
  const workgroups: [number, number, number] = [Math.ceil((g.C * g.KH) / t.WG), Math.ceil(g.O / t.OT), slices];
  if (slices === 1) {
    gpu.dispatch({ kernel, params: uniforms(...bwdWParams(g, acc), rowsPerSlice), buffers: [x, dy, dw], workgroups });
    return;
  }
  const part = gpu.pool.acquire(4 * slices * M, 'conv2d dw partial sums');
  gpu.dispatch({ kernel, params: uniforms(...bwdWParams(g, false), rowsPerSlice), buffers: [x, dy, part], workgroups });
  sumPartials(gpu, part, dw, M, slices, acc);
  gpu.pool.release(part); // safe: the queue runs the recorded dispatches before any later use of the buffer
}

export const conv2dBackwardWeightCost = (s: Conv2dSizes): Cost => {
  const { OH, OW } = conv2dOutputSize(s);
  return { flops: 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW, bytes: 4 * (s.N * s.C * s.H * s.W + s.N * s.O * OH * OW + s.O * s.C * s.KH * s.KW) };
};

// ---------------------------------------------------------------------------------------------------------
// Backward bias: db[o] (+)= Σ_{n,oh,ow} dy[n,o,oh,ow]

const BIAS_PARAMS = 'N: u32, O: u32, plane: u32, accumulate: u32';
const BIAS_BINDINGS = [binding(1, 'dy', 'read'), binding(2, 'db', 'read_write')].join('\n');

const bwdBiasV1Kernel = memoKernel((): Kernel => ({
  name: 'conv2d_bwd_bias_v1',
  wgsl: /* wgsl */ `
struct Params { ${BIAS_PARAMS} }
@group(0) @binding(0) var<uniform> p: Params;
${BIAS_BINDINGS}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let o = ${FLAT_INDEX(WG_V1)};
  if (o >= p.O) { return; }
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let base = (n * p.O + o) * p.plane;
    for (var i = 0u; i < p.plane; i++) { acc += dy[base + i]; }
  }
  db[o] = select(acc, db[o] + acc, p.accumulate != 0u);
}`,
}));

// v2 (llvmpipe), first pass: part[n·O + o] = Σ of the (n, o) plane; conv2d_sum_partials then sums over n.
const bwdBiasV2Kernel = memoKernel((): Kernel => ({
  name: 'conv2d_bwd_bias_v2',
  wgsl: /* wgsl */ `
struct Params { ${BIAS_PARAMS} }
@group(0) @binding(0) var<uniform> p: Params;
${BIAS_BINDINGS}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let j = ${FLAT_INDEX(WG_V1)};
  if (j >= p.N * p.O) { return; }
  let base = j * p.plane;
  var acc = 0.0;
  for (var i = 0u; i < p.plane; i++) { acc += dy[base + i]; }
  db[j] = acc;
}`,
}));

const bwdBiasV3Kernel = memoKernel((): Kernel => ({
  name: 'conv2d_bwd_bias_v3',
  wgsl: /* wgsl */ `
struct Params { ${BIAS_PARAMS} }
@group(0) @binding(0) var<uniform> p: Params;
${BIAS_BINDINGS}
var<workgroup> red: array<f32, ${WG_R}>;
@compute @workgroup_size(${WG_R}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = wid.x;
  var acc = 0.0;
  for (var r = lid.x; r < p.N * p.plane; r += ${WG_R}u) {
    acc += dy[((r / p.plane) * p.O + o) * p.plane + r % p.plane];
  }
  red[lid.x] = acc;
  ${treeReduce(WG_R)}
  if (lid.x == 0u) { db[o] = select(red[0], db[o] + red[0], p.accumulate != 0u); }
}`,
}));

// db (+)= Σ_{n,oh,ow} dy[n,o,oh,ow]
export function conv2dBackwardBias(gpu: Gpu, dy: GPUBuffer, db: GPUBuffer, sizes: Conv2dBackwardBiasSizes): void {
  const { N, O, OH, OW } = sizes;
  if (![N, O, OH, OW].every((d) => Number.isInteger(d) && d >= 1)) {
    throw new ShapeError(`conv2dBackwardBias: bad sizes N=${N} O=${O} OH=${OH} OW=${OW}; all must be positive integers.`);
  }
  const acc = sizes.accumulate ?? false;
  const variant = sizes.variant ?? defaultConv2dVariant(gpu);
  const params = uniforms(N, O, OH * OW, +acc);
  if (variant === 'v1') {
    gpu.dispatch({ kernel: bwdBiasV1Kernel(), params, buffers: [dy, db], workgroups: grid1d(O, WG_V1) });
  } else if (variant === 'v3') {
    gpu.dispatch({ kernel: bwdBiasV3Kernel(), params, buffers: [dy, db], workgroups: [O] });
  } else {
    const part = gpu.pool.acquire(4 * N * O, 'conv2d db partial sums');
    gpu.dispatch({ kernel: bwdBiasV2Kernel(), params, buffers: [dy, part], workgroups: grid1d(N * O, WG_V1) });
    sumPartials(gpu, part, db, O, N, acc);
    gpu.pool.release(part);
  }
}

export const conv2dBackwardBiasCost = (s: { N: number; O: number; OH: number; OW: number }): Cost => ({
  flops: s.N * s.O * s.OH * s.OW,
  bytes: 4 * (s.N * s.O * s.OH * s.OW + s.O),
});
