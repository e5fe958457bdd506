// The "direct" convolution kernels: the forward pass, and at stride 1 the backward-input pass, which is the
// same convolution with the kernel flipped (see index.ts for which variant is for what).
//
// They read a[N,Cin,Hin,Win] and write b[N,Cout,Hout,Wout]. flip = false: tap (oc, ic, kh, kw) is
// w[oc, ic, kh, kw] (forward). flip = true: the input is dy, the output dx, and tap (oc, ic, kh, kw) is
// w[ic, oc, KH−1−kh, KW−1−kw]. Buffers x, w, bias, y; without a bias, w is bound in its place and hasBias = 0.
// Only v2 and v4 take sizes as compile-time constants (their tiles are unrolled into registers, which is what
// makes them fast on llvmpipe); v1 and v3 read every size from the uniform, so one pipeline serves all shapes
// (llvmpipe compiles a constant-bound loop nest by unrolling it, which costs seconds per shape).
import { VariantError } from '../../errors.js';
import { fixedSubgroupSize, unitWorkgroups } from '../../gpu/capabilities.js';
import { declareKernel, launch, type ParamType } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { maxPool2dCodes, POOL_CODE_CUT } from '../pool.js';
import { CELL_PARAMS, cellLaunch, FLAT_BUILTINS, FLAT_INDEX, grid1d, IS_NAN, memoKernel, range, TICKETS, takeCells } from '../wgsl.js';
import { patchPoolRelu, patchTile, patchV4PoolRelu, patchWalkTiles, patchWindowTiles, windowMaxRelu } from './patch.js';
import type { Geometry } from './sizes.js';

/** One direct convolution: its sizes, the input padding on each axis, and whether the kernel is flipped. */
export interface DirectArgs {
  N: number;
  Cin: number;
  Hin: number;
  Win: number;
  Cout: number;
  Hout: number;
  Wout: number;
  S: number;
  padH: number;
  padW: number;
  KH: number;
  KW: number;
  flip: boolean;
  hasBias: boolean;
}

export interface DirectBuffers {
  x: GPUBuffer;
  w: GPUBuffer;
  /** Bound only when hasBias; pass w otherwise. */
  bias: GPUBuffer;
  y: GPUBuffer;
}

/** Register tile of a v2 or v4 invocation. */
export interface Conv2dTile {
  /** Output channels per invocation. */
  OT: number;
  /** Adjacent output columns per invocation. */
  PT: number;
  /** Invocations per workgroup (v2; a v4 workgroup is one subgroup). */
  WG: number;
  /** v4 only: 1 loads the input row as vec4s (needs rows and column blocks on vec4 boundaries: v4VecRows). */
  VX?: number;
  /** v4 only: output rows per lane (default 1): each weight a lane broadcasts then serves RT·PT outputs. */
  RT?: number;
  /** Pooled v4 only: 1 loads the lane's whole input patch once and loops over its OT output channels (patch.ts). */
  OL?: number;
  /** The patch tile only: reads x as uniform windows of UW images each (patch.ts), not as a storage buffer. */
  UW?: number;
  /** The patch tile only: row blocks a workgroup walks down a column, loading RT new rows a block. */
  SL?: number;
  /**
   * v4 only: DU workgroups take the grid's cells from a counter (takeCells; 0: each its own cell). By default one
   * a thread on llvmpipe (unitWorkgroups), else 0.
   */
  DU?: number;
}

const BUFFERS = { x: 'read', w: 'read', bias: 'read', y: 'read_write' } as const;
const DIRECT_PARAMS = {
  Cin: 'u32',
  Hin: 'u32',
  Win: 'u32',
  Cout: 'u32',
  Hout: 'u32',
  Wout: 'u32',
  padH: 'i32',
  padW: 'i32',
  hasBias: 'u32',
} as const satisfies Record<string, ParamType>;
const directParams = (a: DirectArgs) => ({
  Cin: a.Cin,
  Hin: a.Hin,
  Win: a.Win,
  Cout: a.Cout,
  Hout: a.Hout,
  Wout: a.Wout,
  padH: a.padH,
  padW: a.padW,
  hasBias: +a.hasBias,
});

/** WGSL index of w for tap (oc, ic, kh, kw); KH, KW are WGSL expressions (constants or uniforms). */
function weightIndex(flip: boolean, KH: string, KW: string, oc: string, ic: string, kh: string, kw: string): string {
  return flip
    ? `((${ic}) * p.Cout + (${oc})) * ${KH} * ${KW} + (${KH} - 1u - (${kh})) * ${KW} + (${KW} - 1u - (${kw}))`
    : `((${oc}) * p.Cin + (${ic})) * ${KH} * ${KW} + (${kh}) * ${KW} + (${kw})`;
}

const biasOf = (oc: string) => `select(0.0, bias[${oc}], p.hasBias != 0u)`;

// ---- v1: one output per invocation (the forward; backward-input v1 gathers its taps, at any stride) -------

export const WG_V1 = 64;

const directV1Kernel = memoKernel(() =>
  declareKernel({
    name: 'conv2d_v1',
    params: { ...DIRECT_PARAMS, KH: 'u32', KW: 'u32', S: 'u32', total: 'u32' },
    buffers: BUFFERS,
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
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
        acc += x[row + u32(iw)] * w[${weightIndex(false, 'p.KH', 'p.KW', 'oc', 'ic', 'kh', 'kw')}];
      }
    }
  }
  y[i] = acc;
}`,
  }),
);

export function directV1(gpu: Gpu, a: DirectArgs & { flip: false }, buffers: DirectBuffers): void {
  const total = a.N * a.Cout * a.Hout * a.Wout;
  launch(gpu, directV1Kernel(), {
    params: { ...directParams(a), KH: a.KH, KW: a.KW, S: a.S, total },
    buffers: { ...buffers },
    workgroups: grid1d(total, WG_V1),
  });
}

// Backward-input v1, any stride: one dx element per invocation; the forward taps that read x[n,c,ih,iw] are
// oh = (ih + pad − kh) / s where that divides.
const backwardInputV1Kernel = memoKernel(() =>
  declareKernel({
    name: 'conv2d_bwd_input_v1',
    params: { total: 'u32', C: 'u32', H: 'u32', W: 'u32', O: 'u32', OH: 'u32', OW: 'u32', pad: 'u32', KH: 'u32', KW: 'u32', S: 'u32' },
    buffers: { dy: 'read', w: 'read', dx: 'read_write' },
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG_V1}) fn main(${FLAT_BUILTINS}) {
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
  }),
);

export function backwardInputV1(gpu: Gpu, g: Geometry, buffers: { dy: GPUBuffer; w: GPUBuffer; dx: GPUBuffer }): void {
  const total = g.N * g.C * g.H * g.W;
  launch(gpu, backwardInputV1Kernel(), {
    params: { total, C: g.C, H: g.H, W: g.W, O: g.O, OH: g.OH, OW: g.OW, pad: g.pad, KH: g.KH, KW: g.KW, S: g.S },
    buffers: { ...buffers },
    workgroups: grid1d(total, WG_V1),
  });
}

// ---- v2: register tile, no barriers (software adapters) ---------------------------------------------------
//
// A tile of OT output channels × PT output columns, unrolled over (kw, t, p) so the tile lives in registers;
// the kh and ic loops stay loops. Lanes run over (n, oh, column block) and the workgroup's OT channels come
// from workgroup_id.z, so its weight addresses are uniform. Per (ic, kh) an invocation loads (PT−1)·S + KW
// input values and OT·KW weights for OT·PT·KW FMAs.

const directV2Kernel = memoKernel((KH: number, KW: number, S: number, padded: boolean, flip: boolean, t: Conv2dTile) => {
  const { OT, PT, WG } = t;
  const span = (PT - 1) * S + KW; // input columns one tile row touches
  const body: string[] = range(span).map(
    (j) =>
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
  return declareKernel({
    name: flip ? 'conv2d_bwd_input_v2' : 'conv2d_v2',
    params: { ...DIRECT_PARAMS, lanes: 'u32', nPB: 'u32' },
    buffers: BUFFERS,
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let lane = ${FLAT_INDEX(WG)};
  if (lane >= p.lanes) { return; }
  let pb = lane % p.nPB;
  let row = lane / p.nPB;
  let oh = row % p.Hout;
  let n = row / p.Hout;
  let ow0 = pb * ${PT}u;
  let oc0 = wid.z * ${OT}u;
  ${range(OT)
    .map((tt) => `let oc_${tt} = min(oc0 + ${tt}u, p.Cout - 1u);`)
    .join('\n  ')}
  ${range(OT)
    .map((tt) => `let b${tt} = ${biasOf(`oc_${tt}`)};`)
    .join('\n  ')}
  ${range(OT)
    .flatMap((tt) => range(PT).map((pp) => `var a${tt}_${pp} = b${tt};`))
    .join('\n  ')}
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
  });
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
  return conv2dTilesV2(Cout, Wout, KW, S, flip)[0];
}

/** The `count` v2 tiles the model above scores best, best first (conv2dTileV2's choice): what a tuner times. */
export function conv2dTilesV2(Cout: number, Wout: number, KW: number, S: number, flip: boolean, count = 1): Conv2dTile[] {
  const maxPT = flip ? 14 : 8;
  const maxAcc = flip ? 24 : 40;
  const scored: { tile: Conv2dTile; score: number }[] = [];
  for (let OT = 1; OT <= Math.min(Cout, 5); OT++) {
    for (let PT = 1; PT <= Math.min(Wout, maxPT) && OT * PT <= maxAcc; PT++) {
      const waste = ((Math.ceil(Cout / OT) * OT) / Cout) * ((Math.ceil(Wout / PT) * PT) / Wout);
      const score = waste * (1 + (8 * ((PT - 1) * S + KW + OT * KW)) / (OT * PT * KW));
      scored.push({ tile: { OT, PT, WG: 16 }, score });
    }
  }
  // A stable sort keeps the first of equal scores first, as the model always chose.
  return scored
    .sort((a, b) => a.score - b.score)
    .slice(0, count)
    .map((t) => t.tile);
}

export function directV2(gpu: Gpu, a: DirectArgs, buffers: DirectBuffers, tile?: Conv2dTile): void {
  const t = tile ?? conv2dTileV2(a.Cout, a.Wout, a.KW, a.S, a.flip);
  const nPB = Math.ceil(a.Wout / t.PT);
  const lanes = a.N * a.Hout * nPB;
  const padded = a.padH !== 0 || a.padW !== 0;
  const [gx, gy] = grid1d(lanes, t.WG);
  launch(gpu, directV2Kernel(a.KH, a.KW, a.S, padded, a.flip, t), {
    params: { ...directParams(a), lanes, nPB },
    buffers: { ...buffers },
    workgroups: [gx, gy, Math.ceil(a.Cout / t.OT)],
  });
}

// ---- v3: input patch and weights staged in workgroup memory (GPUs) ----------------------------------------
//
// A workgroup computes TO output channels × an 8×8 output patch of one image, one thread per output pixel.
// Per chunk of ICT input channels the threads stage the input patch (zero outside the image) and the chunk's
// weights (zero past Cout) in workgroup memory, then every thread reads its taps from there.

const TO = 8;
const TILE = 8;
const XS = 2048; // floats of staged input
const WS = 1024; // floats of staged weights: 12 KiB in all, within the 16 KiB every adapter offers

/** The staged patch (PH × PW) and input channels per chunk for a kernel, or null when one channel does not fit. */
export function v3Chunk(KH: number, KW: number, S: number): { PH: number; PW: number; ICT: number } | null {
  const PH = (TILE - 1) * S + KH;
  const PW = (TILE - 1) * S + KW;
  const ICT = Math.min(8, Math.floor(XS / (PH * PW)), Math.floor(WS / (TO * KH * KW)));
  return ICT >= 1 ? { PH, PW, ICT } : null;
}

const directV3Kernel = memoKernel((flip: boolean) =>
  declareKernel({
    name: flip ? 'conv2d_bwd_input_v3' : 'conv2d_v3',
    params: {
      ...DIRECT_PARAMS,
      KH: 'u32',
      KW: 'u32',
      S: 'u32',
      ICT: 'u32',
      PH: 'u32',
      PW: 'u32',
      tilesW: 'u32',
      tilesPerImage: 'u32',
      N: 'u32',
    },
    buffers: BUFFERS,
    wgsl: /* wgsl */ `var<workgroup> xs: array<f32, ${XS}>;  // [icl][PH][PW]
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
  }),
);

export function directV3(gpu: Gpu, a: DirectArgs, buffers: DirectBuffers): void {
  const chunk = v3Chunk(a.KH, a.KW, a.S);
  if (!chunk)
    throw new VariantError(
      `${a.flip ? 'conv2d_bwd_input_v3' : 'conv2d_v3'}: a ${a.KH}x${a.KW} kernel at stride ${a.S} is too large to stage`,
    );
  const tilesW = Math.ceil(a.Wout / TILE);
  const tilesPerImage = tilesW * Math.ceil(a.Hout / TILE);
  const [gx, gy] = grid1d(a.N * tilesPerImage, 1);
  launch(gpu, directV3Kernel(a.flip), {
    params: { ...directParams(a), KH: a.KH, KW: a.KW, S: a.S, ICT: chunk.ICT, PH: chunk.PH, PW: chunk.PW, tilesW, tilesPerImage, N: a.N },
    buffers: { ...buffers },
    workgroups: [gx, gy, Math.ceil(a.Cout / TO)],
  });
}

// ---- v4: v2 with one subgroup of images per workgroup (software adapters with subgroups) ------------------
//
// One subgroup per workgroup, its sg lanes over sg images; workgroup (gx, gy) picks the output row and column
// block, wid.z OT output channels, and each lane computes OT channels × PT columns of that row for its image.
// Everything but the image is uniform, which buys three things:
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

const directV4Kernel = memoKernel(
  // vy: outputs stored as vec4s (v4VecStores, which directV4 decides: it depends on Cin, not a compile-time size)
  (
    KH: number,
    KW: number,
    S: number,
    flip: boolean,
    t: Conv2dTile,
    sg: number,
    Win: number,
    Wout: number,
    padW: number,
    vy: boolean,
    Hout: number,
    pool: boolean,
    unpaddedCin: number,
    codes: boolean,
    saveArgmax: boolean,
    pooledIn: boolean,
  ) => {
    // unpadded rows (unpaddedCin > 0): every lane's kh runs over 0..KH, and the input channels are compile-time;
    // padded rows: with several rows per lane, a row outside the image is skipped (padRows)
    const padRows = unpaddedCin === 0;
    const cin = unpaddedCin > 0 ? `${unpaddedCin}u` : 'p.Cin';
    const { OT, PT } = t;
    const RT = t.RT ?? 1;
    const RS = range(RT);
    // names of per-row values and sums: with one row per lane, the names (and so the WGSL) of the one-row kernel
    const xn = (base: string, r: number, j?: number) => `${base}${RT > 1 ? `${r}_` : ''}${j ?? ''}`.replace(/_$/, '');
    const acc = (tt: number, r: number, pp: number) => (RT > 1 ? `a${tt}_${r}_${pp}` : `a${tt}_${pp}`);
    const vx = !!t.VX; // x is bound as vec4s: each block's valid columns come in ceil(…/4) loads instead of one per column
    const span = (PT - 1) * S + KW;
    const nPB = Math.ceil(Wout / PT);
    const nRB = Math.ceil(Hout / RT);
    const NT = OT * KW;
    const G = range(Math.ceil(NT / sg));
    const pre = G.flatMap((g) => [
      `let j${g} = min(${g * sg}u + sid, ${NT - 1}u);`,
      `let jc${g} = min(oc0 + j${g} / ${KW}u, p.Cout - 1u);`,
      flip
        ? `let wl${g} = jc${g} * ${KH * KW}u + ${KW - 1}u - j${g} % ${KW}u;`
        : `let wl${g} = jc${g} * ${cin} * ${KH * KW}u + j${g} % ${KW}u;`,
    ]);
    const wo = flip ? `ic * p.Cout * ${KH * KW}u + (${KH - 1}u - kh) * ${KW}u` : `(ic * ${KH}u + kh) * ${KW}u`;
    // a last round short of sg taps loads in its first lanes only (the others would load duplicates)
    const wloads = [
      `let wo = ${wo};`,
      ...G.map((g) =>
        NT - g * sg < sg ? `var wg${g} = 0.0; if (sid < ${NT - g * sg}u) { wg${g} = w[wl${g} + wo]; }` : `let wg${g} = w[wl${g} + wo];`,
      ),
    ];
    const wtap = (tt: number, kw: number) => `subgroupBroadcast(wg${Math.floor((tt * KW + kw) / sg)}, ${(tt * KW + kw) % sg}u)`;
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
      // With vx, column iw0 + x0 sits at offset off of its vec4 (the same in every block: PT·S % 4 == 0), and
      // the block's columns come from ceil((off + count) / 4) vec4 loads; lanes past the last valid column
      // read the next row's first values, which no FMA uses.
      const off = (((x0 - padW) % 4) + 4) % 4;
      const last = xs[xs.length - 1] ?? x0;
      // a row's loads: the values fetched (vec4s with vx, else the columns; their names, loads and types) and the
      // columns unpacked from them. Pooled input (backward-input behind a 2×2 pool, directV4PooledInput: the row
      // starts on a word): each 8 columns are 4 windows, a vec4 of their pooled gradient and a word of their codes,
      // unpacked into windows, not columns (windowValue, windowChannel below).
      const fetched = (r: number): [string, string, string][] =>
        pooledIn
          ? range(Math.ceil((last - x0 + 1) / 8)).flatMap((q): [string, string, string][] => [
              [xn('gv', r, q), `x[${xn('xr', r)} + ${q}u]`, 'vec4f'],
              [xn('gc', r, q), `codes[${xn('xr', r)} + ${q}u]`, 'u32'],
            ])
          : vx
            ? range(Math.ceil((off + last - x0 + 1) / 4)).map((q) => [
                xn('xv', r, q),
                `x[(${xn('xr', r)} - ${off}u) / 4u + ${q}u]`,
                'vec4f',
              ])
            : xs.map((j) => [xn('x', r, j), `x[${xn('xr', r)} + ${j - x0}u]`, 'f32']);
      // A pooled row is unpacked into its windows (whole in the row, xs starting on a word): a window's value where
      // its code puts the maximum in this row (else 0), and whether in its odd column.
      const windows = range((last - x0 + 1) >> 1);
      const windowValue = (r: number, wi: number): [string, string, string][] => {
        const [gv, word] = [xn('gv', r, wi >> 2), `(${xn('gc', r, wi >> 2)} >> ${8 * (wi & 3)}u)`];
        return [
          [xn('gw', r, wi), 'f32', `select(0.0, ${gv}[${wi & 3}], (${word} & 254u) == ${xn('par', r)})`],
          [xn('od', r, wi), 'bool', `(${word} & 1u) != 0u`],
        ];
      };
      // the values a pooled row's sums read: their names, types and how they are unpacked from what it fetched
      const unpacked = (r: number): [string, string, string][] => windows.flatMap((wi) => windowValue(r, wi));
      // (assign: into variables declared before, not as new lets)
      const unpack = (r: number, assign = false) =>
        pooledIn
          ? [
              `let ${xn('par', r)} = (u32(${xn('ih0', r)} + i32(kh)) & 1u) * 2u;`,
              ...unpacked(r).map(([v, , e]) => `${assign ? '' : 'let '}${v} = ${e};`),
            ]
          : vx
            ? xs.map((j) => `let ${xn('x', r, j)} = ${xn('xv', r, (j - x0 + off) >> 2)}[${(j - x0 + off) & 3}];`)
            : [];
      const loads = (r: number) => [...fetched(r).map(([v, e]) => `let ${v} = ${e};`), ...unpack(r)];
      // channel by channel: a channel's PT sums stay in registers over its KW taps, where tap by tap cycles all
      // OT·PT sums (more than a CPU's vector registers) through memory; each sum adds its taps in kw order either way
      const denseChannel = (tt: number, r: number) =>
        range(KW).flatMap((kw) => {
          const used = ps.filter((pp) => xs.includes(pp * S + kw));
          if (used.length === 0) return [];
          const sums = used.map((pp) => `  ${acc(tt, r, pp)} = fma(wt, ${xn('x', r, pp * S + kw)}, ${acc(tt, r, pp)});`);
          return [`{ let wt = ${wtap(tt, kw)};`, ...sums, '}'];
        });
      // Pooled input: an output's taps over a window's two columns meet its value once, with the weight of its
      // maximum's column (a select), and a window with one column among the taps, with that column's value, where
      // the dense sums multiply both columns, one of them 0 (max_pool2d's backward). Windows in column order are taps
      // in kw order, so the sums are the dense ones (directV4 on the scattered gradient) bit for bit; only where a
      // weight is ∞ or NaN do they differ (0 × ∞). On the seed's conv2 (OT 5, 3 rows a lane) 1.11–1.15× as fast as
      // the dense sums on the same pooled rows (625fca3; alternating in one process, llvmpipe, AMD EPYC, 2026-12-01,
      // three runs of 21–41 rounds; 1.14× on one llvmpipe thread).
      const windowChannel = (tt: number, r: number) => [
        `{ ${range(KW)
          .map((kw) => `let wt${kw} = ${wtap(tt, kw)};`)
          .join(' ')}`,
        ...ps.flatMap((pp) =>
          windows.flatMap((wi) => {
            const kwE = x0 + 2 * wi - pp * S;
            const [inE, inO] = [kwE >= 0 && kwE < KW, kwE + 1 >= 0 && kwE + 1 < KW];
            const [gw, od, a] = [xn('gw', r, wi), xn('od', r, wi), acc(tt, r, pp)];
            if (inE && inO) return [`  ${a} = fma(select(wt${kwE}, wt${kwE + 1}, ${od}), ${gw}, ${a});`];
            if (inE) return [`  ${a} = fma(wt${kwE}, select(${gw}, 0.0, ${od}), ${a});`];
            return inO ? [`  ${a} = fma(wt${kwE + 1}, select(0.0, ${gw}, ${od}), ${a});`] : [];
          }),
        ),
        '}',
      ];
      const channel = pooledIn ? windowChannel : denseChannel;
      const xr = (r: number) =>
        pooledIn
          ? `let ${xn('xr', r)} = ((n * ${cin} + ic) * (p.Hin / 2u) + u32(${xn('ih0', r)} + i32(kh)) / 2u) * ${Win / 8}u + u32(iw0 + ${x0}) / 8u;`
          : `let ${xn('xr', r)} = ((n * ${cin} + ic) * p.Hin + u32(${xn('ih0', r)} + i32(kh))) * ${Win}u + u32(iw0 + ${x0});`;
      // Several rows per lane: unpadded, every row's loads and then the sums channel by channel, row by row
      // within a channel; with padded rows, row by row, a row outside the image (the same in every lane) skipped
      // as khLo..khHi skip them for one row. Measured on the seed's layers: the other order ran 1.13-1.16x slower
      // in each case (conv2 forward, conv2 backward-input).
      // Sliding rows (stride 1, whole row blocks): row r at kernel row kh is row r + 1 at kh − 1, so each kh
      // step loads only its last row and carries the others over from the step before (c-prefixed registers),
      // loaded before the kh loop for its first kh: RT − 1 + KH row loads per input channel, not RT·KH. With
      // padded rows, a row outside the image (the same in every lane) is neither loaded nor summed.
      const slide = RT > 1 && S === 1 && Hout % RT === 0;
      const inside = (r: number) => `u32(${xn('ih0', r)} + i32(kh)) < p.Hin`;
      // What a row carries to the next kh step: the values it fetched or, from a pooled gradient, what it unpacked
      // from them, so that each row's codes are unpacked once rather than at each of its RT kh steps. On the seed's
      // conv2 (3 rows a lane, unpacked into columns then; llvmpipe, AMD EPYC, 2026-12-01, alternating in one process,
      // five runs of 31–41 rounds) 0.99–1.06× as fast as carrying the fetched values, the same tile against itself
      // 0.99–1.02×.
      const carryUnpacked = pooledIn;
      const kept = (r: number): [string, string][] =>
        carryUnpacked ? unpacked(r).map(([v, type]) => [v, type]) : fetched(r).map(([v, , type]) => [v, type]);
      const prologue = slide
        ? [
            ...range(RT - 1).flatMap((r) => kept(r).map(([v, type]) => `var c${v}: ${type};`)),
            `{ let kh = khLo;`,
            ...range(RT - 1).flatMap((r) => {
              const load = carryUnpacked
                ? ['{', xr(r), ...loads(r), ...kept(r).map(([v]) => `c${v} = ${v};`), '}']
                : [xr(r), ...fetched(r).map(([v, e]) => `c${v} = ${e};`)];
              return padRows ? [`if (${inside(r)}) {`, ...load, '}'] : load;
            }),
            '}',
          ]
        : [];
      const lastRow = RT - 1;
      const slid = [
        ...range(RT - 1).flatMap((r) => kept(r).map(([v]) => `let ${v} = c${v};`)),
        ...(padRows
          ? [
              ...kept(lastRow).map(([v, type]) => `var ${v}: ${type};`),
              `if (${inside(lastRow)}) {`,
              xr(lastRow),
              ...(carryUnpacked
                ? [...fetched(lastRow).map(([v, e]) => `let ${v} = ${e};`), ...unpack(lastRow, true)]
                : fetched(lastRow).map(([v, e]) => `${v} = ${e};`)),
              '}',
              ...RS.flatMap((r) => [
                `if (${inside(r)}) {`,
                ...(carryUnpacked ? [] : unpack(r)),
                ...range(OT).flatMap((tt) => channel(tt, r)),
                '}',
              ]),
            ]
          : [
              xr(lastRow),
              ...loads(lastRow),
              ...(carryUnpacked ? [] : range(RT - 1).flatMap((r) => unpack(r))),
              ...range(OT).flatMap((tt) => RS.flatMap((r) => channel(tt, r))),
            ]),
        ...range(RT - 1).flatMap((r) => kept(r).map(([v], q) => `c${v} = ${kept(r + 1)[q][0]};`)),
      ];
      const body =
        RT === 1
          ? [...loads(0), ...range(OT).flatMap((tt) => channel(tt, 0))]
          : slide
            ? slid
            : padRows
              ? RS.flatMap((r) => [`if (${inside(r)}) {`, xr(r), ...loads(r), ...range(OT).flatMap((tt) => channel(tt, r)), '}'])
              : [...RS.flatMap((r) => [xr(r), ...loads(r)]), ...range(OT).flatMap((tt) => RS.flatMap((r) => channel(tt, r)))];
      const cond = blocks.map((b) => `pb == ${b}u`).join(' || ');
      nests.push(`if (${cond}) {
    for (var ic = 0u; ic < ${cin}; ic++) {
      ${prologue.join('\n      ')}
      for (var kh = khLo; kh < khHi; kh++) {
        ${wloads.join('\n        ')}
        ${RT === 1 ? `${xr(0)}\n        ` : ''}${body.join('\n        ')}
      }
    }
  }`);
    }
    const stores = RS.flatMap((r) =>
      vy
        ? range(OT).flatMap((tt) =>
            range(PT / 4).map((q) => {
              const v = range(4).map((e) => acc(tt, r, 4 * q + e));
              return `if (${xn('live', r)} && oc0 + ${tt}u < p.Cout) { y[(${xn('ybase', r)} + ${tt}u * plane) / 4u + ${q}u] = vec4f(${v.join(', ')}); }`;
            }),
          )
        : range(OT).flatMap((tt) =>
            range(PT).map(
              (pp) =>
                `if (${xn('live', r)} && oc0 + ${tt}u < p.Cout && ow0 + ${pp}u < ${Wout}u) { y[${xn('ybase', r)} + ${tt}u * plane + ${pp}u] = ${acc(tt, r, pp)}; }`,
            ),
          ),
    );
    // With pool (2 rows per lane, PT even, even output sizes: directV4PoolRelu checks), the 2×2 max of each
    // window, then a ReLU, as max_pool2d_v2 with relu computes them from stored outputs (windowMaxRelu); y and
    // argmax are the pooled [N, Cout, Hout/2, Wout/2], argmax the window's maximum as a row-major index into its
    // Hout×Wout plane, −1 where the ReLU zeroed it.
    // A lane with RT = 2·PR rows pools PR window rows (pooled row rb·PR + pr from its rows 2·pr and 2·pr + 1).
    const PR = RT >> 1;
    const pn = (base: string, pr: number) => `${base}${PR > 1 ? pr : ''}`;
    // With codes (PT a multiple of 8 and whole blocks: launchV4 checks), each four windows' window codes
    // (pool.ts) as one word, gathered in kc from each window's maximum's offset from its top-left.
    const pooled = range(PR).flatMap((pr) =>
      range(OT).flatMap((tt) => {
        const live = `${PR > 1 ? `live${2 * pr}` : 'live'} && oc0 + ${tt}u < p.Cout`;
        const at0 = (q: number) => `${pn('pbase', pr)} + ${tt}u * pplane + ${q}u`;
        const windows = range(PT / 2).map((q) => {
          const c = [acc(tt, 2 * pr, 2 * q), acc(tt, 2 * pr, 2 * q + 1), acc(tt, 2 * pr + 1, 2 * q), acc(tt, 2 * pr + 1, 2 * q + 1)];
          const at = [2 * q, 2 * q + 1, Wout + 2 * q, Wout + 2 * q + 1].map((d) => `${pn('jw', pr)} + ${d}`);
          const code = codes
            ? `
    { let off = j - (${pn('jw', pr)} + ${2 * q}); let bottom = off >= ${Wout};
      kc |= select(select(0u, 2u, bottom) + u32(select(off, off - ${Wout}, bottom)), ${POOL_CODE_CUT}u, j < 0) << ${8 * (q & 3)}u; }`
            : '';
          return `{ ${windowMaxRelu(c, at, 'v', 'j')}
    if (${live} && ow0 + ${2 * q}u < ${Wout}u) { y[${at0(q)}] = v;${saveArgmax ? ` argmax[${at0(q)}] = j;` : ''} }${code} }`;
        });
        if (!codes) return windows;
        return range(PT / 8).map(
          (q4) => `{ var kc = 0u;
    ${windows.slice(4 * q4, 4 * q4 + 4).join('\n    ')}
    if (${live}) { codes[(${at0(4 * q4)}) / 4u] = kc; } }`,
        );
      }),
    );
    const poolEpilogue = `let pplane = ${(Hout / 2) * (Wout / 2)}u;
  ${range(PR)
    .map((pr) =>
      PR > 1
        ? `let pbase${pr} = ((n * p.Cout + oc0) * ${Hout / 2}u + rb * ${PR}u + ${pr}u) * ${Wout / 2}u + ow0 / 2u;
  let jw${pr} = i32((rb * ${RT}u + ${2 * pr}u) * ${Wout}u + ow0);`
        : `let pbase = ((n * p.Cout + oc0) * ${Hout / 2}u + rb) * ${Wout / 2}u + ow0 / 2u;
  let jw = i32(2u * rb * ${Wout}u + ow0);`,
    )
    .join('\n  ')}
  ${pooled.join('\n  ')}`;
    const units = !!t.DU;
    return declareKernel({
      name: `${flip ? 'conv2d_bwd_input_v4' : 'conv2d_v4'}${vx ? '_vx' : ''}${vy ? '_vy' : ''}${RT > 1 ? `_r${RT}` : ''}${pool ? '_pool_relu' : ''}${codes ? '_codes' : ''}${pool && !saveArgmax ? '_noidx' : ''}${pooledIn ? '_pooled_in' : ''}${units ? '_du' : ''}`,
      enable: ['subgroups'],
      params: { ...DIRECT_PARAMS, N: 'u32', nNB: 'u32', ...(units ? CELL_PARAMS : {}) },
      buffers: {
        ...(units ? TICKETS : {}),
        ...BUFFERS,
        ...(vx ? { x: { read: 'vec4f' } } : {}),
        ...(vy ? { y: { read_write: 'vec4f' } } : {}),
        ...(pool && saveArgmax ? { argmax: { read_write: 'i32' } } : {}),
        ...(codes ? { codes: { read_write: 'u32' } } : {}),
        ...(pooledIn ? { codes: { read: 'u32' } } : {}),
      },
      wgsl: takeCells(
        units,
        /* wgsl */ `${pool ? `${IS_NAN}\n` : ''}@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sid: u32) {
  let gidx = wid.y * nwg.x + wid.x;  // (${RT > 1 ? 'row block' : 'oh'}, pb, image block); past the end only at grid rounding
  let nb = gidx % p.nNB;
  let pb = (gidx / p.nNB) % ${nPB}u;
  ${
    RT > 1
      ? `let rb = gidx / (p.nNB * ${nPB}u);
  ${RS.map((r) => `let oh${r} = min(rb * ${RT}u + ${r}u, p.Hout - 1u);`).join(' ')}
  let nl = nb * ${sg}u + sid;
  let live = nl < p.N && gidx < p.nNB * ${nPB}u * ${nRB}u;
  ${RS.map((r) => `let live${r} = live && rb * ${RT}u + ${r}u < p.Hout;`).join(' ')}`
      : `let oh = min(gidx / (p.nNB * ${nPB}u), p.Hout - 1u);
  let nl = nb * ${sg}u + sid;
  let live = nl < p.N && gidx < p.nNB * ${nPB}u * p.Hout;`
  }
  let n = min(nl, p.N - 1u);
  let ow0 = pb * ${PT}u;
  let oc0 = wid.z * ${OT}u;
  ${pre.join('\n  ')}
  ${range(OT)
    .map((tt) => `let b${tt} = ${biasOf(`min(oc0 + ${tt}u, p.Cout - 1u)`)};`)
    .join('\n  ')}
  ${range(OT)
    .flatMap((tt) => RS.flatMap((r) => range(PT).map((pp) => `var ${acc(tt, r, pp)} = b${tt};`)))
    .join('\n  ')}
  ${RS.map((r) => `let ${xn('ih0', r)} = i32(${xn('oh', r)} * ${S}u) - p.padH;`).join(' ')}
  let iw0 = i32(ow0 * ${S}u) - ${padW};
  ${
    unpaddedCin > 0
      ? `let khLo = 0u;
  let khHi = ${KH}u;`
      : `let khLo = u32(max(-${xn('ih0', RT - 1)}, 0));
  let khHi = u32(clamp(i32(p.Hin) - ${xn('ih0', 0)}, 0, ${KH}));`
  }
  ${nests.join(' else ')}
  ${
    pool
      ? poolEpilogue
      : `let plane = p.Hout * ${Wout}u;
  ${RS.map((r) => `let ${xn('ybase', r)} = ((n * p.Cout + oc0) * p.Hout + ${xn('oh', r)}) * ${Wout}u + ow0;`).join('\n  ')}
  ${stores.join('\n  ')}`
  }
}`,
      ),
    });
  },
);

/** Why directV4PoolRelu cannot pool this convolution's output, or null: a forward whose output tiles into 2×2 windows. */
export function v4PoolRelu(a: Pick<DirectArgs, 'Hout' | 'Wout' | 'flip'>): string | null {
  if (a.flip) return 'only forward convolutions are pooled';
  if (a.Hout % 2 !== 0 || a.Wout % 2 !== 0) return `an output of ${a.Hout}x${a.Wout} does not tile into 2x2 windows`;
  return null;
}

/** Why a pooling lane cannot use this tile, or null: it computes whole window rows (an even number of rows) and whole column pairs. */
function poolTile(t: Conv2dTile): string | null {
  if ((t.RT ?? 1) % 2 !== 0) return `a pooling lane computes whole window rows (an even number of rows), not ${t.RT ?? 1}`;
  return t.PT % 2 !== 0 ? `column blocks of ${t.PT} split 2x2 windows` : null;
}

/**
 * The v4 tile of a pooled convolution: the patch tile where it runs (patch.ts: on the seed's conv1, 1.7× faster
 * than the tile below), else conv2dTileV4's columns (made even) and half its channels, with 2 rows
 * per lane (whose rows slide at stride 1). With sliding rows, on the seed's layers (alternating in one process,
 * medians of 21; llvmpipe, AMD EPYC, 2026-11-30): conv2 with 5 channels ran 1.05–1.11× faster than with 10 and
 * 1.31–1.33× faster than with 20; conv1 with 5 ran 1.03–1.19× faster than with 10. 4 rows per lane ran slower.
 */
export function conv2dPoolTileV4(a: PoolSizes): Conv2dTile {
  return conv2dPoolTilesV4(a)[0];
}

/** What a pooled v4 tile is chosen from. */
export type PoolSizes = V4Sizes & Pick<DirectArgs, 'Cin' | 'KH' | 'KW' | 'padH' | 'padW'>;

/**
 * Pooled v4 tiles a tuner may time: where the convolution has few enough input channels, the patch tile first
 * (patch.ts), and given the batch and the adapter, the patch tile reading x as uniform windows, each of them
 * also walking whole columns of row blocks; then
 * conv2dTileV4's columns (made even) with half its channels, with conv2dTileV4's channels, and with all of them
 * (at most 20).
 */
export function conv2dPoolTilesV4(a: PoolSizes & Partial<Pick<DirectArgs, 'N' | 'Hin'>>, gpu?: Gpu): Conv2dTile[] {
  const d = scalarTileV4(a.Cout, a.Wout);
  const PT = d.PT % 2 === 0 ? d.PT : d.PT + 1;
  const OTs = [...new Set([Math.ceil(d.OT / 2), d.OT, ...(a.Cout <= 20 ? [a.Cout] : [])])];
  const patch = patchTile(a);
  const { N, Hin } = a; // with the adapter, for the patch tile reading x as uniform windows
  const windowed = gpu && N && Hin ? patchWindowTiles(gpu, { ...a, N, Hin }, patch) : [];
  const patches = patchPoolRelu(a, patch) === null ? [patch, ...windowed].flatMap((t) => [t, ...patchWalkTiles(a, t)]) : [];
  return [...patches, ...OTs.map((OT) => withRows(a, withVecRows(a, { OT, PT, WG: 0 }), 2))];
}

/**
 * The forward convolution (v4) with a 2×2, stride-2 max pool and a ReLU fused into its epilogue: y and argmax
 * are the pooled output and its argmax as max_pool2d with relu writes them from the convolution's output,
 * which is never stored. The sums are the convolution's, in its order. With `codes`, the window codes too or
 * (a null argmax) instead: in the epilogue where the tile's windows are whole words, else by max_pool2d_codes
 * from the argmax (a pooled buffer of it where none is given).
 */
export function directV4PoolRelu(gpu: Gpu, a: DirectArgs, buffers: PoolReluBuffers, tile?: Conv2dTile): void {
  const t = tile ?? conv2dPoolTileV4(a);
  if (t.OL) {
    patchV4PoolRelu(gpu, a, buffers, t);
    return;
  }
  const why = v4PoolRelu(a) ?? poolTile(t) ?? (t.VX ? v4VecRows(a, t.PT) : null);
  if (why) throw new VariantError(`conv2d_v4_pool_relu: ${why}`);
  const { argmax, codes, ...rest } = buffers;
  // window codes in the epilogue where a lane's windows are whole words of four, else from an argmax after it
  if (codes && (t.PT % 8 !== 0 || a.Wout % t.PT !== 0)) {
    // (4 bytes for each of the N·Cout·Hout·Wout/4 pooled outputs)
    const indices = argmax ?? gpu.pool.acquire(a.N * a.Cout * a.Hout * a.Wout, 'argmax before its window codes');
    launchV4(gpu, a, { ...rest, argmax: indices }, t, true);
    maxPool2dCodes(gpu, indices, codes, { N: a.N, C: a.Cout, H: a.Hout, W: a.Wout });
    if (!argmax) gpu.pool.release(indices); // safe: the queue runs the recorded dispatches before any later use
    return;
  }
  launchV4(gpu, a, { ...rest, ...(argmax ? { argmax } : {}), ...(codes ? { codes } : {}) }, t, true, !!codes, !!argmax);
}

/**
 * Why the v4 backward-input cannot read a pooled gradient and its window codes with this tile, or null: vec4 rows
 * (VX), stride 1, the gradient's rows whole words of codes (8 columns each) and an even number of them, and one
 * column block per output row, so that each loaded row starts at its first column.
 */
export function v4PooledInput(a: Pick<DirectArgs, 'flip' | 'S' | 'Hin' | 'Win' | 'Wout'>, t: Conv2dTile): string | null {
  if (!a.flip) return 'only the backward-input reads a pooled gradient';
  if (a.S !== 1) return `the pooled gradient is read at stride 1, not ${a.S}`;
  if (a.Win % 8 !== 0 || a.Hin % 2 !== 0) return `a ${a.Hin}x${a.Win} gradient is not whole 2x2 windows in words of four`;
  if (!t.VX) return 'the pooled gradient is read as vec4s (VX: 1)';
  return t.PT < a.Wout ? `column blocks of ${t.PT} split output rows of ${a.Wout}` : null;
}

/**
 * The backward-input (v4 on the flipped kernel) of a convolution behind a 2×2 max pool and its ReLU, reading the
 * pooled gradient (buffers.x, [N, Cin, Hin/2, Win/2]) and its window codes instead of the convolution's gradient
 * (see directV4Kernel's pooled input): the same values in the same order as directV4 on max_pool2d's backward of
 * them, without it.
 */
export function directV4PooledInput(gpu: Gpu, a: DirectArgs, buffers: DirectBuffers & { codes: GPUBuffer }, t: Conv2dTile): void {
  const why = v4PooledInput(a, t) ?? v4VecRows(a, t.PT);
  if (why) throw new VariantError(`conv2d_bwd_input_v4_pooled_in: ${why}`);
  launchV4(gpu, a, buffers, t, false, false, false, true);
}

/** The pooled forward's buffers: the pool's argmax or its window codes (pool.ts), or both. */
export type PoolReluBuffers = DirectBuffers & { argmax: GPUBuffer | null; codes?: GPUBuffer | null };

/** What a v4 tile is chosen from. */
export type V4Sizes = Pick<DirectArgs, 'Cout' | 'Hout' | 'Wout' | 'Win' | 'S' | 'flip'>;

/**
 * The v4 tile (measured on the seed's layers with bench/kernels-conv2d.ts): a whole output row, or a column
 * block of at most 12, per lane (fewest column-tail FMAs), and as many output channels as fit 120
 * accumulators with the fewest channel-tail ones. On conv1, 10 channels ran faster than 5; on conv2, 20
 * channels ran no faster than 10 and took llvmpipe much longer to compile. Rows are loaded as vec4s where
 * v4VecRows allows (fewer, wider per-lane loads; the same values, so the same results). Rows per lane:
 * v4RowsPerLane.
 */
export function conv2dTileV4(a: V4Sizes): Conv2dTile {
  return withRows(a, withVecRows(a, scalarTileV4(a.Cout, a.Wout)), v4RowsPerLane(a));
}

/**
 * Output rows per v4 lane: 2 for backward-input (flipped) kernels, 1 for the forward. Two rows share each
 * (ic, kh) step's weight loads; on the seed's conv2 backward-input, whose rows are padded by 4 (KH − 1 − pad),
 * that ran 1.14–1.27× faster, and on its conv1 and conv2 forward no faster (alternating in one process,
 * medians of 15; llvmpipe, AMD EPYC, 2026-11-30). The same sums in the same order either way.
 */
export function v4RowsPerLane(a: Pick<DirectArgs, 'Hout' | 'flip'>): number {
  return a.flip && a.Hout >= 2 ? 2 : 1;
}

const withVecRows = (a: Pick<DirectArgs, 'Win' | 'S'>, t: Conv2dTile): Conv2dTile => (v4VecRows(a, t.PT) === null ? { ...t, VX: 1 } : t);
const withRows = (a: Pick<DirectArgs, 'Hout'>, t: Conv2dTile, RT: number): Conv2dTile => {
  const { RT: _, ...one } = t;
  return RT > 1 && a.Hout >= RT ? { ...one, RT } : one;
};

function scalarTileV4(Cout: number, Wout: number): Conv2dTile {
  let PT = Wout;
  if (Wout > 12) {
    PT = 12;
    for (let pt = 12; pt >= 6; pt--) if (Math.ceil(Wout / pt) * pt < Math.ceil(Wout / PT) * PT) PT = pt;
  }
  let OT = 1;
  for (let ot = 2; ot <= Math.min(Cout, Math.floor(120 / PT)); ot++)
    if (Math.ceil(Cout / ot) * ot - Cout <= Math.ceil(Cout / OT) * OT - Cout) OT = ot;
  return { OT, PT, WG: 0 }; // WG: unused, a v4 workgroup is one subgroup
}

/**
 * v4 tiles a tuner may time: conv2dTileV4's first, then half as many columns per lane and/or half as many
 * channels (fewer accumulators: less register spilling on CPUs with fewer vector registers), each with its rows
 * loaded as vec4s where they can be, and as scalars, all with v4RowsPerLane's rows; then the first with the
 * other row count (1 or 2); last, for backward-input, the half-channel tile with 3 rows.
 */
export function conv2dTilesV4(a: V4Sizes): Conv2dTile[] {
  const d = scalarTileV4(a.Cout, a.Wout);
  const PTs = [...new Set([d.PT, Math.ceil(d.PT / 2)])];
  const OTs = [...new Set([d.OT, Math.ceil(d.OT / 2), Math.min(a.Cout, 4)])];
  const tiles = PTs.flatMap((PT) => OTs.map((OT) => ({ OT, PT, WG: 0 })));
  const scalar = tiles.filter((t, i) => tiles.findIndex((u) => u.OT === t.OT && u.PT === t.PT) === i).slice(0, 5);
  // the same tiles loading their rows as vec4s, where rows and blocks allow it (first, as conv2dTileV4 does)
  const vx = scalar.filter((t) => v4VecRows(a, t.PT) === null).map((t) => ({ ...t, VX: 1 }));
  const rows = v4RowsPerLane(a);
  const all = (v4VecRows(a, d.PT) === null ? [...vx, ...scalar] : [...scalar, ...vx]).map((t) => withRows(a, t, rows));
  const other = withRows(a, all[0], rows > 1 ? 1 : 2);
  const withOther = (other.RT ?? 1) === (all[0].RT ?? 1) ? all : [...all, other];
  // backward-input: also the half-channel tile with 3 rows (on the seed's conv2, with sliding rows, it ran
  // 1.09-1.10x faster than with 2; alternating in one process, medians of 21; llvmpipe, AMD EPYC, 2026-11-30)
  const half = all.find((t) => t.OT === Math.ceil(d.OT / 2) && t.PT === d.PT);
  return rows > 1 && half && a.Hout >= 3 ? [...withOther, withRows(a, half, 3)] : withOther;
}

/** Why v4 cannot load these input rows as vec4s with this tile, or null: rows and column blocks must sit on vec4 boundaries. */
export function v4VecRows(a: Pick<DirectArgs, 'Win' | 'S'>, PT: number): string | null {
  if (a.Win % 4 !== 0) return `input rows of ${a.Win} floats are not whole vec4s`;
  if ((PT * a.S) % 4 !== 0) return `column blocks of ${PT} at stride ${a.S} do not start on vec4 boundaries`;
  return null;
}

/**
 * Whether a v4 lane stores its PT outputs per channel as PT/4 vec4s: where output rows of whole vec4s are cut into
 * whole blocks of whole vec4s, and each output sums at most 64 products. A per-lane store is a loop over the
 * lanes on llvmpipe, as a load is, so with conv1's 25 multiply-adds per output the stores weigh: vec4 stores
 * ran conv1 forward 1.10–1.15× faster, and conv2 forward (250 per output) and backward-input (500) 0.98× and
 * 0.95× (alternating in one process, medians of 21; llvmpipe, AMD EPYC, 2026-11-30). The same values either way.
 */
export function v4VecStores(a: Pick<DirectArgs, 'Cin' | 'KH' | 'KW' | 'Wout'>, PT: number): boolean {
  return a.Wout % 4 === 0 && PT % 4 === 0 && a.Wout % PT === 0 && a.Cin * a.KH * a.KW <= 64;
}

export function directV4(gpu: Gpu, a: DirectArgs, buffers: DirectBuffers, tile?: Conv2dTile): void {
  const t = tile ?? conv2dTileV4(a);
  const why = t.VX ? v4VecRows(a, t.PT) : null;
  if (why) throw new VariantError(`${a.flip ? 'conv2d_bwd_input_v4' : 'conv2d_v4'}: vec4 rows (VX) impossible here: ${why}`);
  launchV4(gpu, a, buffers, t, false);
}

/**
 * Records the v4 kernel for a checked tile; `pool`: with the pool and ReLU epilogue, writing the argmax
 * (`saveArgmax`) and the window codes (`codes`), whose buffers are then given.
 */
function launchV4(
  gpu: Gpu,
  a: DirectArgs,
  buffers: DirectBuffers & { argmax?: GPUBuffer; codes?: GPUBuffer },
  t: Conv2dTile,
  pool: boolean,
  codes = false,
  saveArgmax = pool,
  pooledIn = false,
): void {
  const sg = fixedSubgroupSize(gpu)!; // the registry checked the requirement
  // on llvmpipe one workgroup per thread, taking the cells of the grid from a counter (takeCells)
  const DU = t.DU ?? unitWorkgroups(gpu);
  const RT = t.RT ?? 1;
  const nPB = Math.ceil(a.Wout / t.PT);
  const nNB = Math.ceil(a.N / sg);
  const cells = nNB * nPB * Math.ceil(a.Hout / RT);
  // Hout is compile-time only with several rows per lane (one-row kernels stay shared across heights). Unpadded
  // rows make the kh loop's bounds (0..KH) and Cin compile-time, for every row count: llvmpipe then runs the
  // seed's conv2 forward 1.09-1.13x faster (alternating in one process, medians of 21; AMD EPYC, 2026-11-30), with
  // the same sums. Padded rows keep them uniforms: on conv2's backward-input a compile-time Cin ran no faster.
  const kernel = directV4Kernel(
    a.KH,
    a.KW,
    a.S,
    a.flip,
    { ...t, WG: sg, DU: DU ? 1 : 0 },
    sg,
    a.Win,
    a.Wout,
    a.padW,
    !pool && v4VecStores(a, t.PT),
    RT > 1 ? a.Hout : 0,
    pool,
    a.padH === 0 ? a.Cin : 0,
    codes,
    saveArgmax,
    pooledIn,
  );
  const cl = cellLaunch(gpu.ticketBuffer, DU, cells, Math.ceil(a.Cout / t.OT), grid1d(cells, 1));
  launch(gpu, kernel, {
    params: { ...directParams(a), N: a.N, nNB, ...cl.params },
    buffers: { ...cl.buffers, ...buffers },
    workgroups: cl.workgroups,
  });
}
