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
//                        workgroup_id.z, so weight loads are uniform (scalar + broadcast on llvmpipe) and each
//                        loaded input value feeds OT·KW FMAs. Lanes run over (n, oh, column block).
//   conv2d_v3            GPUs: a workgroup computes TO channels × an 8×8 output patch of one image, staging the
//                        input patch and the weights for a chunk of input channels in workgroup memory.
//   conv2d_bwd_input_v1  one dx element per invocation (any stride).
//   conv2d_bwd_input_v2/3  stride 1: the forward v2/v3 kernels run as a convolution of dy with the kernel flipped
//                        and its channel axes swapped, padding KH−1−pad (other strides run v1).
//   conv2d_bwd_weight_v1 one dw element per invocation, looping over N·OH·OW.
//   conv2d_bwd_weight_v2 llvmpipe: an invocation owns OT output channels × KW taps of one (c, kh) and sums over
//                        a slice of the N·OH rows (lanes run over (c, kh), so dy loads are uniform); slices
//                        write partial sums that conv2d_sum_partials adds (and accumulates) into dw.
//   conv2d_bwd_weight_v3 GPUs: a workgroup per (o, c, kh) splits the N·OH·OW reduction over its threads and
//                        tree-reduces the KW sums in workgroup memory.
//   conv2d_bwd_bias_v1   one db element per invocation.
//   conv2d_bwd_bias_v2   llvmpipe: one invocation per (n, o) plane, then conv2d_sum_partials over n.
//   conv2d_bwd_bias_v3   GPUs: a workgroup per o, tree reduction in workgroup memory.
// Chosen by default: v2 on software adapters (gpu.isSoftware), v3 elsewhere.
import { ShapeError } from '../errors.js';
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, type Kernel, grid1d, i32, memoKernel, uniforms } from './common.js';

export type Conv2dVariant = 'v1' | 'v2' | 'v3';

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
  /** Forces a kernel version (tests run every one); default v2 on software adapters, v3 on GPUs. */
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
  return { N: s.N, C: s.C, H: s.H, W: s.W, O: s.O, KH: s.KH, KW: s.KW, S, pad, OH, OW, variant: s.variant ?? (gpu.isSoftware ? 'v2' : 'v3') };
}

// ---------------------------------------------------------------------------------------------------------
// Shared WGSL

const binding = (i: number, name: string, access: 'read' | 'read_write') =>
  `@group(0) @binding(${i}) var<storage, ${access}> ${name}: array<f32>;`;

/** A workgroup-memory tree reduction of `red[WG·K]` into `red[0..K)`; every thread must reach it. */
const treeReduce = (WG: number, K: number) => /* wgsl */ `
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { for (var k = 0u; k < ${K}u; k++) { red[lid.x * ${K}u + k] += red[(lid.x + s) * ${K}u + k]; } }
    workgroupBarrier();
  }`;

// out[i] = (accumulate ? out[i] : 0) + Σ_{s<splits} part[s·M + i]: the second pass of the split reductions.
const WG_SUM = 64;
const sumPartialsKernel = memoKernel((accumulate: boolean): Kernel => ({
  name: 'conv2d_sum_partials',
  wgsl: /* wgsl */ `
struct Params { M: u32, splits: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'part', 'read')}
${binding(2, 'out', 'read_write')}
@compute @workgroup_size(${WG_SUM}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_SUM)};
  if (i >= p.M) { return; }
  var acc = ${accumulate ? 'out[i]' : '0.0'};
  for (var s = 0u; s < p.splits; s++) { acc += part[s * p.M + i]; }
  out[i] = acc;
}`,
}));

function sumPartials(gpu: Gpu, part: GPUBuffer, out: GPUBuffer, M: number, splits: number, accumulate: boolean): void {
  gpu.dispatch({ kernel: sumPartialsKernel(accumulate), params: uniforms(M, splits), buffers: [part, out], workgroups: grid1d(M, WG_SUM) });
}

// ---------------------------------------------------------------------------------------------------------
// Forward (and, with `flip`, backward-input at stride 1): the "direct" kernels read an input a[N,Cin,Hin,Win]
// and write b[N,Cout,Hout,Wout]. flip = false: weights w[Cout,Cin,KH,KW] as stored (forward).
// flip = true: the input is dy, the output dx, and tap (oc, ic, kh, kw) reads w[ic, oc, KH−1−kh, KW−1−kw].

interface DirectArgs {
  Cin: number; Hin: number; Win: number; Cout: number; Hout: number; Wout: number;
  S: number; padH: number; padW: number; KH: number; KW: number; flip: boolean;
}

/** WGSL expression: index of w for (oc, ic, kh, kw), all u32 expressions. */
function weightIndex(flip: boolean, KH: number, KW: number, oc: string, ic: string, kh: string, kw: string): string {
  return flip
    ? `((${ic}) * p.Cout + (${oc})) * ${KH * KW}u + (${KH - 1}u - (${kh})) * ${KW}u + (${KW - 1}u - (${kw}))`
    : `((${oc}) * p.Cin + (${ic})) * ${KH * KW}u + (${kh}) * ${KW}u + (${kw})`;
}

const DIRECT_PARAMS = 'Cin: u32, Hin: u32, Win: u32, Cout: u32, Hout: u32, Wout: u32, padH: i32, padW: i32';
const directParams = (a: DirectArgs) => [a.Cin, a.Hin, a.Win, a.Cout, a.Hout, a.Wout, i32(a.padH), i32(a.padW)];

function directBindings(bias: boolean): string {
  return [binding(1, 'x', 'read'), binding(2, 'w', 'read'), bias ? binding(3, 'bias', 'read') : '', binding(bias ? 4 : 3, 'y', 'read_write')].join('\n');
}

// v1: one output per invocation.
const WG_V1 = 64;
const directV1Kernel = memoKernel((KH: number, KW: number, S: number, bias: boolean, flip: boolean): Kernel => ({
  name: flip ? 'conv2d_bwd_input_v1' : 'conv2d_v1',
  wgsl: /* wgsl */ `
struct Params { ${DIRECT_PARAMS}, total: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${directBindings(bias)}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_V1)};
  if (i >= p.total) { return; }
  let ow = i % p.Wout;
  let oh = (i / p.Wout) % p.Hout;
  let oc = (i / (p.Wout * p.Hout)) % p.Cout;
  let n = i / (p.Wout * p.Hout * p.Cout);
  var acc = ${bias ? 'bias[oc]' : '0.0'};
  for (var ic = 0u; ic < p.Cin; ic++) {
    for (var kh = 0u; kh < ${KH}u; kh++) {
      let ih = i32(oh * ${S}u + kh) - p.padH;
      if (ih < 0 || ih >= i32(p.Hin)) { continue; }
      let row = ((n * p.Cin + ic) * p.Hin + u32(ih)) * p.Win;
      for (var kw = 0u; kw < ${KW}u; kw++) {
        let iw = i32(ow * ${S}u + kw) - p.padW;
        if (iw < 0 || iw >= i32(p.Win)) { continue; }
        acc += x[row + u32(iw)] * w[${weightIndex(flip, KH, KW, 'oc', 'ic', 'kh', 'kw')}];
      }
    }
  }
  y[i] = acc;
}`,
}));

function directV1(gpu: Gpu, a: DirectArgs, N: number, bufs: GPUBuffer[], bias: boolean): void {
  const total = N * a.Cout * a.Hout * a.Wout;
  gpu.dispatch({
    kernel: directV1Kernel(a.KH, a.KW, a.S, bias, a.flip),
    params: uniforms(...directParams(a), total),
    buffers: bufs,
    workgroups: grid1d(total, WG_V1),
  });
}

// v2: register tile of OT output channels × PT output columns, fully unrolled over (kw, t, p) so the tile
// lives in registers; the kh and ic loops stay loops.
interface TileV2 { OT: number; PT: number; WG: number }

const directV2Kernel = memoKernel((KH: number, KW: number, S: number, padded: boolean, bias: boolean, flip: boolean, t: TileV2): Kernel => {
  const { OT, PT, WG } = t;
  const span = (PT - 1) * S + KW; // input columns one tile row touches
  const lines: string[] = [];
  const T = [...Array(OT).keys()];
  const P = [...Array(PT).keys()];
  for (const j of [...Array(span).keys()]) {
    lines.push(
      padded
        ? `let c${j} = iw0 + ${j}; let x${j} = select(0.0, x[xr + u32(clamp(c${j}, 0, i32(p.Win) - 1))], c${j} >= 0 && c${j} < i32(p.Win));`
        : `let x${j} = x[xr + min(u32(iw0) + ${j}u, p.Win - 1u)];`,
    );
  }
  for (let kw = 0; kw < KW; kw++) {
    for (const tt of T) {
      lines.push(`{ let wv = w[wk${tt} ${flip ? '-' : '+'} ${kw}u];`);
      for (const pp of P) lines.push(`  a${tt}_${pp} = fma(wv, x${pp * S + kw}, a${tt}_${pp});`);
      lines.push('}');
    }
  }
  // wk{t}: index of w for (oc_t, ic, kh, kw = 0); taps step by +1 (or −1 when flipped) along kw.
  const wk = T.map((tt) => `let wk${tt} = ${weightIndex(flip, KH, KW, `oc_${tt}`, 'ic', 'kh', '0u')};`);
  const stores = T.flatMap((tt) =>
    P.map((pp) => `if (oc0 + ${tt}u < p.Cout && ow0 + ${pp}u < p.Wout) { y[ybase + ${tt}u * plane + ${pp}u] = a${tt}_${pp}; }`),
  );
  return {
    name: flip ? 'conv2d_bwd_input_v2' : 'conv2d_v2',
    wgsl: /* wgsl */ `
struct Params { ${DIRECT_PARAMS}, lanes: u32, nPB: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${directBindings(bias)}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let lane = ${FLAT_INDEX(WG)};
  if (lane >= p.lanes) { return; }
  let pb = lane % p.nPB;
  let row = lane / p.nPB;
  let oh = row % p.Hout;
  let n = row / p.Hout;
  let ow0 = pb * ${PT}u;
  let oc0 = wid.z * ${OT}u;
  ${T.map((tt) => `let oc_${tt} = min(oc0 + ${tt}u, p.Cout - 1u);`).join('\n  ')}
  ${T.flatMap((tt) => P.map((pp) => `var a${tt}_${pp} = ${bias ? `bias[oc_${tt}]` : '0.0'};`)).join('\n  ')}
  let ih0 = i32(oh * ${S}u) - p.padH;
  let iw0 = i32(ow0 * ${S}u) - p.padW;
  for (var ic = 0u; ic < p.Cin; ic++) {
    for (var kh = 0u; kh < ${KH}u; kh++) {
      let ih = ih0 + i32(kh);
      ${padded ? 'if (ih < 0 || ih >= i32(p.Hin)) { continue; }' : ''}
      let xr = ((n * p.Cin + ic) * p.Hin + u32(ih)) * p.Win;
      ${wk.join('\n      ')}
      ${lines.join('\n      ')}
    }
  }
  let plane = p.Hout * p.Wout;
  let ybase = ((n * p.Cout + oc0) * p.Hout + oh) * p.Wout + ow0;
  ${stores.join('\n  ')}
}`,
  };
});

/** The v2 tile for a problem: wide column blocks where rows are wide, many channels where there are many. */
export function conv2dTileV2(Cout: number, Wout: number): TileV2 {
  const PT = Math.min(Wout, 4);
  const OT = Math.min(Cout, 5);
  return { OT, PT, WG: 64 };
}

function directV2(gpu: Gpu, a: DirectArgs, N: number, bufs: GPUBuffer[], bias: boolean, tile?: TileV2): void {
  const t = tile ?? conv2dTileV2(a.Cout, a.Wout);
  const nPB = Math.ceil(a.Wout / t.PT);
  const lanes = N * a.Hout * nPB;
  const padded = a.padH !== 0 || a.padW !== 0;
  const [gx, gy] = grid1d(lanes, t.WG);
  gpu.dispatch({
    kernel: directV2Kernel(a.KH, a.KW, a.S, padded, bias, a.flip, t),
    params: uniforms(...directParams(a), lanes, nPB),
    buffers: bufs,
    workgroups: [gx, gy, Math.ceil(a.Cout / t.OT)],
  });
}

// v3 (GPUs): workgroup = TO output channels × an 8×8 output patch of one image; each thread one output pixel
// for TO channels. Per chunk of ICT input channels, the threads stage the input patch and the weights in
// workgroup memory (zero for padding and channel tails), then compute from there.
const TO = 8;
const TILE = 8;
const SHARED_FLOATS = 3072; // 12 KiB of the 16 KiB every adapter offers

function v3Chunk(KH: number, KW: number, S: number): { PH: number; PW: number; ICT: number } | null {
  const PH = (TILE - 1) * S + KH;
  const PW = (TILE - 1) * S + KW;
  const ICT = Math.min(8, Math.floor(SHARED_FLOATS / (PH * PW + TO * KH * KW)));
  return ICT >= 1 ? { PH, PW, ICT } : null;
}

const directV3Kernel = memoKernel((KH: number, KW: number, S: number, bias: boolean, flip: boolean): Kernel => {
  const { PH, PW, ICT } = v3Chunk(KH, KW, S)!;
  const KK = KH * KW;
  return {
    name: flip ? 'conv2d_bwd_input_v3' : 'conv2d_v3',
    wgsl: /* wgsl */ `
struct Params { ${DIRECT_PARAMS}, tilesW: u32, tilesPerImage: u32, nImages: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${directBindings(bias)}
var<workgroup> xs: array<f32, ${ICT * PH * PW}>;
var<workgroup> ws: array<f32, ${ICT * TO * KK}>;
@compute @workgroup_size(${TILE}, ${TILE}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                                @builtin(local_invocation_id) lid: vec3u, @builtin(local_invocation_index) li: u32) {
  let g = wid.y * nwg.x + wid.x;  // (n, tile) flattened; may exceed the grid, then the group only helps no one
  let n = g / p.tilesPerImage;
  let tile = g % p.tilesPerImage;
  let oh0 = (tile / p.tilesW) * ${TILE}u;
  let ow0 = (tile % p.tilesW) * ${TILE}u;
  let oc0 = wid.z * ${TO}u;
  let live = n < p.nImages;
  var acc: array<f32, ${TO}>;
  for (var t = 0u; t < ${TO}u; t++) { acc[t] = ${bias ? 'bias[min(oc0 + t, p.Cout - 1u)]' : '0.0'}; }
  let ih0 = i32(oh0 * ${S}u) - p.padH;
  let iw0 = i32(ow0 * ${S}u) - p.padW;
  for (var ic0 = 0u; ic0 < p.Cin; ic0 += ${ICT}u) {
    for (var e = li; e < ${ICT * PH * PW}u; e += ${TILE * TILE}u) {
      let ic = ic0 + e / ${PH * PW}u;
      let ih = ih0 + i32((e / ${PW}u) % ${PH}u);
      let iw = iw0 + i32(e % ${PW}u);
      var v = 0.0;
      if (live && ic < p.Cin && ih >= 0 && ih < i32(p.Hin) && iw >= 0 && iw < i32(p.Win)) {
        v = x[((n * p.Cin + ic) * p.Hin + u32(ih)) * p.Win + u32(iw)];
      }
      xs[e] = v;
    }
    for (var e = li; e < ${ICT * TO * KK}u; e += ${TILE * TILE}u) {
      let t = e / ${ICT * KK}u;       // ws[t][icl][kh][kw]
      let icl = (e / ${KK}u) % ${ICT}u;
      let kh = (e / ${KW}u) % ${KH}u;
      let kw = e % ${KW}u;
      let oc = oc0 + t;
      let ic = ic0 + icl;
      var v = 0.0;
      if (oc < p.Cout && ic < p.Cin) { v = w[${weightIndex(flip, KH, KW, 'oc', 'ic', 'kh', 'kw')}]; }
      ws[e] = v;
    }
    workgroupBarrier();
    for (var icl = 0u; icl < ${ICT}u; icl++) {
      for (var kh = 0u; kh < ${KH}u; kh++) {
        for (var kw = 0u; kw < ${KW}u; kw++) {
          let xv = xs[(icl * ${PH}u + lid.y * ${S}u + kh) * ${PW}u + lid.x * ${S}u + kw];
          let wi = (icl * ${KH}u + kh) * ${KW}u + kw;
          for (var t = 0u; t < ${TO}u; t++) { acc[t] = fma(xv, ws[t * ${ICT * KK}u + wi], acc[t]); }
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
  };
});

function directV3(gpu: Gpu, a: DirectArgs, N: number, bufs: GPUBuffer[], bias: boolean): void {
  if (!v3Chunk(a.KH, a.KW, a.S)) return directV2(gpu, a, N, bufs, bias); // kernel too large to stage
  const tilesW = Math.ceil(a.Wout / TILE);
  const tilesPerImage = tilesW * Math.ceil(a.Hout / TILE);
  const [gx, gy] = grid1d(N * tilesPerImage, 1);
  gpu.dispatch({
    kernel: directV3Kernel(a.KH, a.KW, a.S, bias, a.flip),
    params: uniforms(...directParams(a), tilesW, tilesPerImage, N),
    buffers: bufs,
    workgroups: [gx, gy, Math.ceil(a.Cout / TO)],
  });
}

function direct(gpu: Gpu, variant: Conv2dVariant, a: DirectArgs, N: number, bufs: GPUBuffer[], bias: boolean): void {
  if (variant === 'v1') directV1(gpu, a, N, bufs, bias);
  else if (variant === 'v2') directV2(gpu, a, N, bufs, bias);
  else directV3(gpu, a, N, bufs, bias);
}

/** y = conv2d(x, w) + bias (bias may be null). y[N,O,OH,OW]. */
export function conv2d(gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, y: GPUBuffer, sizes: Conv2dSizes): void {
  const g = geometry(gpu, 'conv2d', sizes);
  const a: DirectArgs = { Cin: g.C, Hin: g.H, Win: g.W, Cout: g.O, Hout: g.OH, Wout: g.OW, S: g.S, padH: g.pad, padW: g.pad, KH: g.KH, KW: g.KW, flip: false };
  direct(gpu, g.variant, a, g.N, bias ? [x, w, bias, y] : [x, w, y], bias !== null);
}

/** For benchmarks measuring v2 tilings: the forward with an explicit register tile. */
export function conv2dWithTile(gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, y: GPUBuffer, sizes: Conv2dSizes, tile: TileV2): void {
  const g = geometry(gpu, 'conv2d', sizes);
  const a: DirectArgs = { Cin: g.C, Hin: g.H, Win: g.W, Cout: g.O, Hout: g.OH, Wout: g.OW, S: g.S, padH: g.pad, padW: g.pad, KH: g.KH, KW: g.KW, flip: false };
  directV2(gpu, a, g.N, bias ? [x, w, bias, y] : [x, w, y], bias !== null, tile);
}

export const conv2dCost = (s: Conv2dSizes): Cost => {
  const { OH, OW } = conv2dOutputSize(s);
  const flops = 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW;
  return { flops, bytes: 4 * (s.N * s.C * s.H * s.W + s.O * s.C * s.KH * s.KW + s.O + s.N * s.O * OH * OW) };
};

// dx[n,c,ih,iw] = Σ_{o,kh,kw: ih = oh·s+kh−pad, iw = ow·s+kw−pad} dy[n,o,oh,ow] · w[o,c,kh,kw]
export function conv2dBackwardInput(gpu: Gpu, dy: GPUBuffer, w: GPUBuffer, dx: GPUBuffer, sizes: Conv2dSizes): void {
  const g = geometry(gpu, 'conv2dBackwardInput', sizes);
  // At stride 1, dx is the convolution of dy (padded by KH−1−pad) with the flipped, channel-swapped kernel.
  if (g.S === 1 && g.variant !== 'v1') {
    const a: DirectArgs = {
      Cin: g.O, Hin: g.OH, Win: g.OW, Cout: g.C, Hout: g.H, Wout: g.W,
      S: 1, padH: g.KH - 1 - g.pad, padW: g.KW - 1 - g.pad, KH: g.KH, KW: g.KW, flip: true,
    };
    direct(gpu, g.variant, a, g.N, [dy, w, dx], false);
    return;
  }
  gpu.dispatch({
    kernel: bwdInputV1Kernel(g.KH, g.KW, g.S),
    params: uniforms(g.N * g.C * g.H * g.W, g.C, g.H, g.W, g.O, g.OH, g.OW, g.pad),
    buffers: [dy, w, dx],
    workgroups: grid1d(g.N * g.C * g.H * g.W, WG_V1),
  });
}

// v1, any stride: the forward taps that read x[n,c,ih,iw] are oh = (ih + pad − kh) / s where divisible.
const bwdInputV1Kernel = memoKernel((KH: number, KW: number, S: number): Kernel => ({
  name: 'conv2d_bwd_input_v1',
  wgsl: /* wgsl */ `
struct Params { total: u32, C: u32, H: u32, W: u32, O: u32, OH: u32, OW: u32, pad: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'dy', 'read')}
${binding(2, 'w', 'read')}
${binding(3, 'dx', 'read_write')}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_V1)};
  if (i >= p.total) { return; }
  let iw = i32(i % p.W) + i32(p.pad);
  let ih = i32((i / p.W) % p.H) + i32(p.pad);
  let c = (i / (p.W * p.H)) % p.C;
  let n = i / (p.W * p.H * p.C);
  var acc = 0.0;
  for (var o = 0u; o < p.O; o++) {
    for (var kh = 0; kh < ${KH}; kh++) {
      let th = ih - kh;
      if (th < 0 || th % ${S} != 0 || th / ${S} >= i32(p.OH)) { continue; }
      let dyRow = ((n * p.O + o) * p.OH + u32(th / ${S})) * p.OW;
      let wRow = ((o * p.C + c) * ${KH}u + u32(kh)) * ${KW}u;
      for (var kw = 0; kw < ${KW}; kw++) {
        let tw = iw - kw;
        if (tw < 0 || tw % ${S} != 0 || tw / ${S} >= i32(p.OW)) { continue; }
        acc += dy[dyRow + u32(tw / ${S})] * w[wRow + u32(kw)];
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

const BWD_W_PARAMS = 'N: u32, C: u32, H: u32, W: u32, O: u32, OH: u32, OW: u32, pad: i32';
const bwdWParams = (g: Geometry) => [g.N, g.C, g.H, g.W, g.O, g.OH, g.OW, i32(g.pad)];

const bwdWeightV1Kernel = memoKernel((KH: number, KW: number, S: number, accumulate: boolean): Kernel => ({
  name: 'conv2d_bwd_weight_v1',
  wgsl: /* wgsl */ `
struct Params { ${BWD_W_PARAMS} }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'x', 'read')}
${binding(2, 'dy', 'read')}
${binding(3, 'dw', 'read_write')}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_V1)};
  if (i >= p.O * p.C * ${KH * KW}u) { return; }
  let kw = i % ${KW}u;
  let kh = (i / ${KW}u) % ${KH}u;
  let c = (i / ${KH * KW}u) % p.C;
  let o = i / (${KH * KW}u * p.C);
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    for (var oh = 0u; oh < p.OH; oh++) {
      let ih = i32(oh * ${S}u + kh) - p.pad;
      if (ih < 0 || ih >= i32(p.H)) { continue; }
      let xRow = ((n * p.C + c) * p.H + u32(ih)) * p.W;
      let dyRow = ((n * p.O + o) * p.OH + oh) * p.OW;
      for (var ow = 0u; ow < p.OW; ow++) {
        let iw = i32(ow * ${S}u + kw) - p.pad;
        if (iw < 0 || iw >= i32(p.W)) { continue; }
        acc += dy[dyRow + ow] * x[xRow + u32(iw)];
      }
    }
  }
  dw[i] = ${accumulate ? 'dw[i] + acc' : 'acc'};
}`,
}));

// v2 (llvmpipe): lanes over (c, kh); workgroup_id.y picks OT output channels, workgroup_id.z a slice of the
// N·OH rows. Each invocation keeps OT × KW sums; per output column it loads KW x values and OT dy values
// (uniform across the workgroup) for OT·KW FMAs.
interface TileW { OT: number; WG: number; targetGroups: number }
export const conv2dTileW = (O: number): TileW => ({ OT: Math.min(O, 5), WG: 8, targetGroups: 64 });

const bwdWeightV2Kernel = memoKernel((KH: number, KW: number, S: number, padded: boolean, direct: boolean, accumulate: boolean, t: TileW): Kernel => {
  const { OT, WG } = t;
  const T = [...Array(OT).keys()];
  const K = [...Array(KW).keys()];
  const xs = K.map((kw) =>
    padded
      ? `let c${kw} = iw0 + ${kw}; let x${kw} = select(0.0, x[xr + u32(clamp(c${kw}, 0, i32(p.W) - 1))], c${kw} >= 0 && c${kw} < i32(p.W));`
      : `let x${kw} = x[xr + u32(iw0) + ${kw}u];`,
  );
  const fmas = T.map((tt) => `{ let g = dy[dr${tt} + ow]; ${K.map((kw) => `a${tt}_${kw} = fma(g, x${kw}, a${tt}_${kw});`).join(' ')} }`);
  // Partial sums go to part[slice][o][c][kh][kw]; with one slice, straight into dw.
  const stores = T.flatMap((tt) =>
    K.map((kw) => {
      const idx = `wbase + ${tt * KW}u * p.C * ${KH}u + ${kw}u`;
      const val = direct && accumulate ? `out[${idx}] + a${tt}_${kw}` : `a${tt}_${kw}`;
      return `if (o0 + ${tt}u < p.O) { out[${idx}] = ${val}; }`;
    }),
  );
  return {
    name: 'conv2d_bwd_weight_v2',
    wgsl: /* wgsl */ `
struct Params { ${BWD_W_PARAMS}, rowsPerSlice: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'x', 'read')}
${binding(2, 'dy', 'read')}
${binding(3, 'out', 'read_write')}
@compute @workgroup_size(${WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let lane = wid.x * ${WG}u + lid.x;
  if (lane >= p.C * ${KH}u) { return; }
  let c = lane / ${KH}u;
  let kh = lane % ${KH}u;
  let o0 = wid.y * ${OT}u;
  ${T.map((tt) => `let o_${tt} = min(o0 + ${tt}u, p.O - 1u);`).join('\n  ')}
  ${T.flatMap((tt) => K.map((kw) => `var a${tt}_${kw} = 0.0;`)).join('\n  ')}
  let r0 = wid.z * p.rowsPerSlice;
  let r1 = min(r0 + p.rowsPerSlice, p.N * p.OH);
  for (var r = r0; r < r1; r++) {
    let n = r / p.OH;
    let oh = r % p.OH;
    let ih = i32(oh * ${S}u + kh) - p.pad;
    ${padded ? 'if (ih < 0 || ih >= i32(p.H)) { continue; }' : ''}
    let xr = ((n * p.C + c) * p.H + u32(ih)) * p.W;
    ${T.map((tt) => `let dr${tt} = ((n * p.O + o_${tt}) * p.OH + oh) * p.OW;`).join('\n    ')}
    for (var ow = 0u; ow < p.OW; ow++) {
      let iw0 = i32(ow * ${S}u) - p.pad;
      ${xs.join('\n      ')}
      ${fmas.join('\n      ')}
    }
  }
  let wbase = ${direct ? '0u' : 'wid.z * p.O * p.C * ' + KH * KW + 'u'} + ((o0 * p.C + c) * ${KH}u + kh) * ${KW}u;
  ${stores.join('\n  ')}
}`,
  };
});

// v3 (GPUs): a workgroup of WG_R threads per (o, c, kh); thread j sums the KW taps over reduction positions
// j, j + WG_R, ...; then a tree reduction in workgroup memory.
const WG_R = 64;
const bwdWeightV3Kernel = memoKernel((KH: number, KW: number, S: number, accumulate: boolean): Kernel => ({
  name: 'conv2d_bwd_weight_v3',
  wgsl: /* wgsl */ `
struct Params { ${BWD_W_PARAMS} }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'x', 'read')}
${binding(2, 'dy', 'read')}
${binding(3, 'dw', 'read_write')}
var<workgroup> red: array<f32, ${WG_R * KW}>;
@compute @workgroup_size(${WG_R}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let c = wid.x / ${KH}u;
  let kh = wid.x % ${KH}u;
  let o = wid.y;
  var acc: array<f32, ${KW}>;
  let plane = p.OH * p.OW;
  for (var r = lid.x; r < p.N * plane; r += ${WG_R}u) {
    let n = r / plane;
    let oh = (r % plane) / p.OW;
    let ow = r % p.OW;
    let ih = i32(oh * ${S}u + kh) - p.pad;
    if (ih < 0 || ih >= i32(p.H)) { continue; }
    let g = dy[(n * p.O + o) * plane + oh * p.OW + ow];
    let xr = ((n * p.C + c) * p.H + u32(ih)) * p.W;
    for (var kw = 0u; kw < ${KW}u; kw++) {
      let iw = i32(ow * ${S}u + kw) - p.pad;
      if (iw >= 0 && iw < i32(p.W)) { acc[kw] = fma(g, x[xr + u32(iw)], acc[kw]); }
    }
  }
  for (var kw = 0u; kw < ${KW}u; kw++) { red[lid.x * ${KW}u + kw] = acc[kw]; }
  ${treeReduce(WG_R, KW)}
  if (lid.x < ${KW}u) {
    let i = ((o * p.C + c) * ${KH}u + kh) * ${KW}u + lid.x;
    dw[i] = ${accumulate ? 'dw[i] + red[lid.x]' : 'red[lid.x]'};
  }
}`,
}));

export type Conv2dBackwardWeightSizes = Conv2dSizes & { accumulate?: boolean };

// dw (+)= Σ_{n,oh,ow} dy[n,o,oh,ow] · x[n,c,oh·s+kh−pad,ow·s+kw−pad]
export function conv2dBackwardWeight(gpu: Gpu, x: GPUBuffer, dy: GPUBuffer, dw: GPUBuffer, sizes: Conv2dBackwardWeightSizes): void {
  conv2dBackwardWeightWithTile(gpu, x, dy, dw, sizes);
}

/** conv2dBackwardWeight with an explicit v2 tile (benchmarks compare tilings through it). */
export function conv2dBackwardWeightWithTile(gpu: Gpu, x: GPUBuffer, dy: GPUBuffer, dw: GPUBuffer, sizes: Conv2dBackwardWeightSizes, tile?: TileW): void {
  const g = geometry(gpu, 'conv2dBackwardWeight', sizes);
  const acc = sizes.accumulate ?? false;
  const M = g.O * g.C * g.KH * g.KW;
  if (g.variant === 'v1') {
    gpu.dispatch({ kernel: bwdWeightV1Kernel(g.KH, g.KW, g.S, acc), params: uniforms(...bwdWParams(g)), buffers: [x, dy, dw], workgroups: grid1d(M, WG_V1) });
  } else if (g.variant === 'v3') {
    gpu.dispatch({ kernel: bwdWeightV3Kernel(g.KH, g.KW, g.S, acc), params: uniforms(...bwdWParams(g)), buffers: [x, dy, dw], workgroups: [g.C * g.KH, g.O] });
  } else {
    const t = tile ?? conv2dTileW(g.O);
    const groups = Math.ceil((g.C * g.KH) / t.WG) * Math.ceil(g.O / t.OT);
    const rows = g.N * g.OH;
    const slices = Math.min(rows, Math.max(1, Math.round(t.targetGroups / groups)), 65535);
    const rowsPerSlice = Math.ceil(rows / slices);
    const used = Math.ceil(rows / rowsPerSlice);
    const padded = g.pad !== 0;
    const workgroups: [number, number, number] = [Math.ceil((g.C * g.KH) / t.WG), Math.ceil(g.O / t.OT), used];
    if (used === 1) {
      gpu.dispatch({ kernel: bwdWeightV2Kernel(g.KH, g.KW, g.S, padded, true, acc, t), params: uniforms(...bwdWParams(g), rowsPerSlice), buffers: [x, dy, dw], workgroups });
      return;
    }
    const part = gpu.pool.acquire(4 * used * M, 'conv2d dw partial sums');
    gpu.dispatch({ kernel: bwdWeightV2Kernel(g.KH, g.KW, g.S, padded, false, acc, t), params: uniforms(...bwdWParams(g), rowsPerSlice), buffers: [x, dy, part], workgroups });
    sumPartials(gpu, part, dw, M, used, acc);
    gpu.pool.release(part); // safe: the queue runs the recorded dispatches before any later reuse
  }
}

export const conv2dBackwardWeightCost = (s: Conv2dSizes): Cost => {
  const { OH, OW } = conv2dOutputSize(s);
  return { flops: 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW, bytes: 4 * (s.N * s.C * s.H * s.W + s.N * s.O * OH * OW + s.O * s.C * s.KH * s.KW) };
};

// ---------------------------------------------------------------------------------------------------------
// Backward bias: db[o] (+)= Σ_{n,oh,ow} dy[n,o,oh,ow]

const bwdBiasV1Kernel = memoKernel((accumulate: boolean): Kernel => ({
  name: 'conv2d_bwd_bias_v1',
  wgsl: /* wgsl */ `
struct Params { N: u32, O: u32, plane: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'dy', 'read')}
${binding(2, 'db', 'read_write')}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let o = ${FLAT_INDEX(WG_V1)};
  if (o >= p.O) { return; }
  var acc = 0.0;
  for (var n = 0u; n < p.N; n++) {
    let base = (n * p.O + o) * p.plane;
    for (var i = 0u; i < p.plane; i++) { acc += dy[base + i]; }
  }
  db[o] = ${accumulate ? 'db[o] + acc' : 'acc'};
}`,
}));

// v2 (llvmpipe) first pass: part[n·O + o] = Σ over the (n, o) plane.
const bwdBiasPlanesKernel = memoKernel((): Kernel => ({
  name: 'conv2d_bwd_bias_v2',
  wgsl: /* wgsl */ `
struct Params { total: u32, plane: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'dy', 'read')}
${binding(2, 'part', 'read_write')}
@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
  let j = ${FLAT_INDEX(WG_V1)};
  if (j >= p.total) { return; }
  let base = j * p.plane;
  var acc = 0.0;
  for (var i = 0u; i < p.plane; i++) { acc += dy[base + i]; }
  part[j] = acc;
}`,
}));

const bwdBiasV3Kernel = memoKernel((accumulate: boolean): Kernel => ({
  name: 'conv2d_bwd_bias_v3',
  wgsl: /* wgsl */ `
struct Params { N: u32, O: u32, plane: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${binding(1, 'dy', 'read')}
${binding(2, 'db', 'read_write')}
var<workgroup> red: array<f32, ${WG_R}>;
@compute @workgroup_size(${WG_R}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let o = wid.x;
  var acc = 0.0;
  for (var r = lid.x; r < p.N * p.plane; r += ${WG_R}u) {
    acc += dy[((r / p.plane) * p.O + o) * p.plane + r % p.plane];
  }
  red[lid.x] = acc;
  ${treeReduce(WG_R, 1)}
  if (lid.x == 0u) { db[o] = ${accumulate ? 'db[o] + red[0]' : 'red[0]'}; }
}`,
}));

// db (+)= Σ_{n,oh,ow} dy[n,o,oh,ow]
export function conv2dBackwardBias(gpu: Gpu, dy: GPUBuffer, db: GPUBuffer, sizes: Conv2dBackwardBiasSizes): void {
  const { N, O, OH, OW } = sizes;
  if (![N, O, OH, OW].every((d) => Number.isInteger(d) && d >= 1)) {
    throw new ShapeError(`conv2dBackwardBias: bad sizes N=${N} O=${O} OH=${OH} OW=${OW}; all must be positive integers.`);
  }
  const acc = sizes.accumulate ?? false;
  const variant = sizes.variant ?? (gpu.isSoftware ? 'v2' : 'v3');
  const plane = OH * OW;
  if (variant === 'v1') {
    gpu.dispatch({ kernel: bwdBiasV1Kernel(acc), params: uniforms(N, O, plane), buffers: [dy, db], workgroups: grid1d(O, WG_V1) });
  } else if (variant === 'v3') {
    gpu.dispatch({ kernel: bwdBiasV3Kernel(acc), params: uniforms(N, O, plane), buffers: [dy, db], workgroups: [O] });
  } else {
    const part = gpu.pool.acquire(4 * N * O, 'conv2d db partial sums');
    gpu.dispatch({ kernel: bwdBiasPlanesKernel(), params: uniforms(N * O, plane), buffers: [dy, part], workgroups: grid1d(N * O, WG_V1) });
    sumPartials(gpu, part, db, O, N, acc);
    gpu.pool.release(part);
  }
}

export const conv2dBackwardBiasCost = (s: { N: number; O: number; OH: number; OW: number }): Cost => ({
  flops: s.N * s.O * s.OH * s.OW,
  bytes: 4 * (s.N * s.O * s.OH * s.OW + s.O),
});
