// 2-D convolution, PyTorch semantics (cross-correlation, zero padding, equal stride and padding on both axes).
// Layout: x[N,C,H,W], w[O,C,KH,KW], bias[O], y[N,O,OH,OW], all row-major float32;
// OH = floor((H + 2·pad − KH) / stride) + 1, likewise OW.
//
//   y[n,o,oh,ow] = bias[o] + Σ_{c,kh,kw} x[n,c,oh·s+kh−pad,ow·s+kw−pad] · w[o,c,kh,kw]
//   dx = full correlation of dy with the flipped kernel; dw[o,c,kh,kw] = Σ_{n,oh,ow} dy·x; db[o] = Σ dy[n,o,·,·]
//
// Cost (the cost functions below; bytes count each operand read once and the result written once):
//   forward          2·N·O·OH·OW·C·KH·KW flops, 4·(N·C·H·W + O·C·KH·KW + O + N·O·OH·OW) bytes
//   backward-input   2·N·O·OH·OW·C·KH·KW flops, 4·(N·O·OH·OW + O·C·KH·KW + N·C·H·W) bytes
//   backward-weight  2·N·O·OH·OW·C·KH·KW flops, 4·(N·C·H·W + N·O·OH·OW + O·C·KH·KW) bytes
//   backward-bias    N·O·OH·OW flops, 4·(N·O·OH·OW + O) bytes
//   pool-relu: the forward's flops, its output counted pooled with the argmax (4 bytes an output) or the window
//   codes (1); pool-relu.backward-weight and pool-relu.backward-input: backward-weight's and backward-input's
//   flops, dy counted pooled with the argmax or codes
//
// Seven ops, each with its registry of variants (the `variant` field of its sizes forces one; the tests run
// every one this adapter can). The WGSL is in direct.ts (forward and backward-input, pooled or not), patch.ts (the
// pooled forward's patch tile), backward-weight.ts and backward-weight-patch.ts (its image-lane tile, also behind
// the pool) and backward-bias.ts; sum-partials.ts adds the partial sums of the split reductions.
//
// CONV2D_FORWARD and CONV2D_BACKWARD_INPUT ("direct" convolutions: at stride 1, dx is the convolution of dy,
// padded by KH−1−pad, with the kernel flipped and its channel axes swapped, so the forward kernels compute it)
//   v1  forward: one output per invocation, loops over c, kh, kw. backward-input: one dx element per
//       invocation, gathering the taps that read it, at any stride. The fallback.
//   v2  register tile, no barriers (software adapters): an invocation computes OT output channels × PT
//       adjacent output columns of one row; the workgroup's OT channels come from workgroup_id.z, so its weight
//       addresses are uniform, and each loaded input value feeds up to OT·KW FMAs. Lanes run over (n, oh,
//       column block). Tile: conv2dTileV2. Backward-input: stride 1 only.
//   v3  workgroup memory (GPUs): a workgroup computes 8 channels × an 8×8 output patch of one image, staging
//       the input patch and the weights for a chunk of input channels in workgroup memory. Not for kernels too
//       large to stage one input channel; backward-input: stride 1 only.
//   v4  v2 with subgroups (software adapters with fixed-size subgroups): a workgroup is one subgroup whose sg
//       lanes are sg images; the workgroup picks the output row (or RT rows: 2 for backward-input), a column
//       block (≤ 12 columns) and OT output channels (up to 120 accumulators per lane per row). The weights of
//       each (ic, kh) step are loaded once per subgroup, a slice per lane, and shared with subgroupBroadcast
//       (every per-lane load is a gather on llvmpipe); with row and block uniform, padding rows are skipped by
//       the loop bounds and each kind of column block (edges, interior, tail) is compiled without the padding
//       taps. It gains most on backward-input, where with 8×8 dy and k5 over half the taps of the padded
//       convolution are padding. Rows are loaded as vec4s where they can be; with several rows per lane at
//       stride 1 and no row padding, each kh step loads one input row and the lane's other rows slide over from
//       the step before. Tile: conv2dTileV4. Backward-input: stride 1 only.
// CONV2D_BACKWARD_WEIGHT (every variant also computes the bias gradient when given db: no dispatch of its own)
//   v1  one dw element per invocation, looping over N·OH·OW. The fallback.
//   v2  register tile, no barriers (software adapters): an invocation owns OT output channels × KW taps of one
//       (c, kh) and sums over a slice of the N·OH rows, PT columns per step (lanes run over (c, kh), so dy
//       addresses are uniform); slices write partial sums that conv2d_sum_partials adds (and accumulates) into
//       dw. Tile: conv2dWeightTileV2.
//   v3  workgroup tree reduction (GPUs): a workgroup per weight element splits the N·OH·OW reduction over its
//       threads (consecutive threads, consecutive addresses) and tree-reduces in workgroup memory.
//   v4  v2 with subgroups (software adapters with fixed-size subgroups): one subgroup per workgroup, steps of
//       sg columns, and the dy values (the same in every lane) loaded one column per lane and shared with
//       subgroupBroadcast: OT loads per step instead of OT·sg; tiles may load x rows (VX) and dy rows (DV) as
//       vec4s (VX by default, where rows allow). Tile: conv2dWeightTileV4. With few taps per input channel the
//       tuner is also offered the image-lane tile (IL, backward-weight-patch.ts): lanes over images, a patch
//       per lane, a loop over output channels, the lanes' sums reduce-scattered; another summation order, so
//       never the heuristics' choice.
// CONV2D_POOL_RELU (the seed's conv blocks: relu(max_pool2d(conv2d(x), 2)), with the pool's argmax, or in its
// place its window codes: a byte per window saying where its maximum lies, pool.ts; the seed's network saves
// codes where a tuner may choose the weight gradient that reads them, poolCodesUseful)
//   v1  conv2d.forward, then max_pool2d with its ReLU: two dispatches and the convolution's output in between.
//       The fallback.
//   v4  the forward v4 with 2 rows per lane (or another even number), sliding at stride 1, pooling each 2×2
//       window of its sums in the epilogue, so the convolution's output is never stored (software adapters with
//       fixed-size subgroups; even output sizes). With few input channels (the seed's conv1) the patch tile
//       instead: each lane loads its whole input patch once and loops over the output channels (patch.ts),
//       optionally (UW, a tuner's choice) reading x as uniform windows of the batch. Tile: conv2dPoolTileV4.
//       Both write window codes in their epilogue, a word per four windows, where a lane's windows are whole
//       words (the patch tile always); other tiles write the argmax and max_pool2d_codes converts it.
// CONV2D_POOL_RELU_BACKWARD_WEIGHT (the weight and bias gradient behind that pool, from the pooled gradient and
// the argmax or window codes: conv2dMaxPool2dRelu's backward)
//   v1  max_pool2d's backward with its ReLU into the convolution's gradient (unless the caller has made it for dx:
//       then that), then conv2d.backward-weight: the fallback, and the heuristics' choice.
//   v4  backward-weight's image-lane tile reading the pooled gradient and the argmax themselves: a position's dy
//       is its window's value where the argmax names it, else 0, what max_pool2d's backward writes, so the sums
//       are the IL tile's on the scattered gradient bit for bit; a lane loads 16 values per output channel
//       instead of 32 (on llvmpipe every load of its own costs about as much as the multiply-adds it feeds), and
//       where the input needs no gradient (the seed's conv1) the step loses max_pool2d's backward and its round
//       trip through memory. Its tiles take AM (a window's value against the taps at its maximum only, the same
//       sums) and may read x as uniform windows (UW). From window codes a lane loads one word per four windows
//       instead of a vec4 of their argmax, and picks a window's row and column from its code: 1.07–1.20× as fast
//       on the seed's layers. A tuner's choice only (IL sums in another order than the heuristics' v4 tiles).
// CONV2D_POOL_RELU_BACKWARD_INPUT (the input gradient behind that pool, from the pooled gradient and the argmax or
// window codes)
//   v1  max_pool2d's backward with its ReLU into the convolution's gradient, then conv2d.backward-input: the
//       fallback, and the heuristics' choice.
//   v4  backward-input's v4 reading the pooled gradient and its window codes instead of the convolution's
//       gradient: a row's 8 columns from a vec4 and a word, each column its window's value where the code names
//       it, else 0, so the sums are v4's on the scattered gradient bit for bit; the scatter's dispatch and its
//       round trip through memory are gone (codes only; vec4 rows, one column block per output row). A tuner's
//       choice, where the autograd op saves codes.
// CONV2D_BACKWARD_BIAS (on its own: for a bias whose weight needs no gradient)
//   v1  one db element per invocation. The fallback.
//   v2  one invocation per (n, o) plane, then conv2d_sum_partials over n (software adapters).
//   v3  a workgroup per o, tree reduction in workgroup memory (GPUs).
//
// Preferred: on software adapters v4 (where subgroups have a fixed size), else v2, else v1 (backward-input
// at stride ≠ 1); on GPUs v3, else v2 (a kernel too large to stage), else v1 (backward-input at stride ≠ 1).
// Backward-bias has no v4: v2 on software adapters, v3 on GPUs. On llvmpipe the v2 and v4 kernels run the
// seed's layers many times faster than v1 and v3, because a barrier there stops a workgroup's SIMD loop
// (README, "Machines"), and v4 beats v2 by sharing loads; `npm run bench:kernels -- --filter conv` measures
// them. The v2 and v4 kernels take their sizes as compile-time constants, so llvmpipe compiles one per layer
// (Mesa caches them on disk); v1 and v3 compile once for all shapes.
import { ShapeError, UsageError } from '../../errors.js';
import { fixedSubgroupSize } from '../../gpu/capabilities.js';
import type { Gpu } from '../../gpu/runtime.js';
import { type Cost, defineOp } from '../op.js';
import {
  MAX_POOL2D,
  MAX_POOL2D_BACKWARD,
  maxPool2dBackwardCodes,
  maxPool2dCodes,
  poolCodes,
  poolCodeWords,
  poolOutputSize,
} from '../pool.js';
import { backwardBiasV1, backwardBiasV2, backwardBiasV3 } from './backward-bias.js';
import {
  backwardWeightTiled,
  backwardWeightV1,
  backwardWeightV3,
  type Conv2dWeightTile,
  conv2dWeightTilesV2,
  conv2dWeightTilesV4,
} from './backward-weight.js';
import { backwardWeightImageLanes, imageLanesPooled, imageLanesTile, imageLanesTiles } from './backward-weight-patch.js';
import {
  backwardInputV1,
  type Conv2dTile,
  conv2dPoolTilesV4,
  conv2dTilesV2,
  conv2dTilesV4,
  type DirectArgs,
  type DirectBuffers,
  directV1,
  directV2,
  directV3,
  directV4,
  directV4PooledInput,
  directV4PoolRelu,
  v3Chunk,
  v4PooledInput,
  v4PoolRelu,
} from './direct.js';
import { type Conv2dSizes, type Conv2dVariant, conv2dOutputSize, geometry } from './sizes.js';

export type { Conv2dWeightTile } from './backward-weight.js';
export { conv2dWeightTilesV2, conv2dWeightTilesV4, conv2dWeightTileV2, conv2dWeightTileV4 } from './backward-weight.js';
export type { Conv2dTile } from './direct.js';
export { conv2dPoolTilesV4, conv2dTilesV2, conv2dTilesV4, conv2dTileV2, conv2dTileV4 } from './direct.js';
export { type Conv2dSizes, type Conv2dVariant, conv2dOutputSize } from './sizes.js';

/** Forward and backward-input sizes; `tile` overrides the v2 or v4 register tile (benchmarks, tests). */
export type Conv2dForwardSizes = Conv2dSizes & { tile?: Conv2dTile };
/**
 * `accumulate`: dw += … instead of dw = …; `tile` overrides the v2 or v4 tile (benchmarks, tests); `withBias` is
 * set by conv2dBackwardWeight when it computes db too (the tuner keys its choices on it).
 */
export type Conv2dBackwardWeightSizes = Conv2dSizes & { accumulate?: boolean; tile?: Conv2dWeightTile; withBias?: boolean };

export type Conv2dBiasVariant = 'v1' | 'v2' | 'v3';
export interface Conv2dBackwardBiasSizes {
  N: number;
  O: number;
  OH: number;
  OW: number;
  /** db += Σ dy instead of db = Σ dy. */
  accumulate?: boolean;
  /** Forces a variant (tests, benchmarks); by default CONV2D_BACKWARD_BIAS chooses. */
  variant?: Conv2dBiasVariant;
}

export interface Conv2dBuffers {
  x: GPUBuffer;
  w: GPUBuffer;
  bias: GPUBuffer | null;
  y: GPUBuffer;
}
export interface Conv2dBackwardInputBuffers {
  dy: GPUBuffer;
  w: GPUBuffer;
  dx: GPUBuffer;
}
export interface Conv2dBackwardWeightBuffers {
  x: GPUBuffer;
  dy: GPUBuffer;
  dw: GPUBuffer;
  /** The bias gradient db[o] (+)= Σ dy[n,o,·,·], computed in the same dispatch; null or absent: no bias. */
  db?: GPUBuffer | null;
}
export interface Conv2dBackwardBiasBuffers {
  dy: GPUBuffer;
  db: GPUBuffer;
}

/** Elements of x, w and y for these sizes (what each op's buffers must hold). */
function extents(s: Conv2dSizes): { x: number; w: number; y: number } {
  const { OH, OW } = conv2dOutputSize(s);
  return { x: s.N * s.C * s.H * s.W, w: s.O * s.C * s.KH * s.KW, y: s.N * s.O * OH * OW };
}

// ---- the direct convolutions: forward, and backward-input as a flipped forward at stride 1 -----------------

function forwardArgs(s: Conv2dSizes, hasBias: boolean): DirectArgs & { flip: false } {
  const g = geometry('conv2d', s);
  return {
    N: g.N,
    Cin: g.C,
    Hin: g.H,
    Win: g.W,
    Cout: g.O,
    Hout: g.OH,
    Wout: g.OW,
    S: g.S,
    padH: g.pad,
    padW: g.pad,
    KH: g.KH,
    KW: g.KW,
    flip: false,
    hasBias,
  };
}

// At stride 1, dx is the convolution of dy (padded by KH−1−pad) with the flipped, channel-swapped kernel.
function backwardInputArgs(s: Conv2dSizes): DirectArgs {
  const g = geometry('conv2dBackwardInput', s);
  return {
    N: g.N,
    Cin: g.O,
    Hin: g.OH,
    Win: g.OW,
    Cout: g.C,
    Hout: g.H,
    Wout: g.W,
    S: 1,
    padH: g.KH - 1 - g.pad,
    padW: g.KW - 1 - g.pad,
    KH: g.KH,
    KW: g.KW,
    flip: true,
    hasBias: false,
  };
}

const forwardBuffers = ({ x, w, bias, y }: Conv2dBuffers): DirectBuffers => ({ x, w, bias: bias ?? w, y });
const backwardInputBuffers = ({ dy, w, dx }: Conv2dBackwardInputBuffers): DirectBuffers => ({ x: dy, w, bias: w, y: dx });

const stride1 = (s: Conv2dSizes) => ((s.stride ?? 1) === 1 ? null : `computes stride 1 only (these sizes have stride ${s.stride})`);
const stageable = (KH: number, KW: number, S: number) =>
  v3Chunk(KH, KW, S) ? null : `cannot stage a ${KH}x${KW} kernel at stride ${S} in workgroup memory`;

// The tiles a tuner times for v2 and v4 (the defaults first).
const TUNED_TILES = 5;
const tilesV2 = (a: DirectArgs) => conv2dTilesV2(a.Cout, a.Wout, a.KW, a.S, a.flip, TUNED_TILES);
const tilesV4 = (a: DirectArgs) => conv2dTilesV4(a);

/** Software adapters: v4 where subgroups have a fixed size, else v2; GPUs: v3, else v2 (kernels too large to stage); v1 last. */
const preferDirect = (gpu: Gpu): Conv2dVariant[] => (gpu.isSoftware ? ['v4', 'v2', 'v1'] : ['v3', 'v2', 'v1']);

export const CONV2D_FORWARD = defineOp<Conv2dForwardSizes, Conv2dBuffers, Conv2dVariant>({
  name: 'conv2d.forward',
  variants: {
    v1: {
      summary: 'one output per invocation: the fallback',
      run: (gpu, b, s) => directV1(gpu, forwardArgs(s, b.bias !== null), forwardBuffers(b)),
    },
    v2: {
      summary: 'register tile of channels x columns, no barriers: software adapters',
      configs: (_gpu, s) => tilesV2(forwardArgs(s, false)),
      run: (gpu, b, s, c) => directV2(gpu, forwardArgs(s, b.bias !== null), forwardBuffers(b), s.tile ?? (c as Conv2dTile | undefined)),
    },
    v3: {
      summary: 'input patch and weights staged in workgroup memory: GPUs',
      rejects: (s) => stageable(s.KH, s.KW, s.stride ?? 1),
      run: (gpu, b, s) => directV3(gpu, forwardArgs(s, b.bias !== null), forwardBuffers(b)),
    },
    v4: {
      summary: 'register tiles over a subgroup of images sharing the weight loads, rows sliding down the kernel: software adapters',
      requires: ['fixed-subgroups'],
      configs: (_gpu, s) => tilesV4(forwardArgs(s, false)),
      run: (gpu, b, s, c) => directV4(gpu, forwardArgs(s, b.bias !== null), forwardBuffers(b), s.tile ?? (c as Conv2dTile | undefined)),
    },
  },
  prefer: preferDirect,
  cost: (s: Conv2dSizes): Cost => {
    const { OH, OW } = conv2dOutputSize(s);
    return {
      flops: 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW,
      bytes: 4 * (s.N * s.C * s.H * s.W + s.O * s.C * s.KH * s.KW + s.O + s.N * s.O * OH * OW),
    };
  },
  needs: (s, { x, w, bias, y }) => {
    const e = extents(s);
    return { x: [x, e.x], w: [w, e.w], bias: [bias, s.O], y: [y, e.y] };
  },
});

export const CONV2D_BACKWARD_INPUT = defineOp<Conv2dForwardSizes, Conv2dBackwardInputBuffers, Conv2dVariant>({
  name: 'conv2d.backward-input',
  variants: {
    v1: {
      summary: 'one dx element per invocation, any stride: the fallback',
      run: (gpu, b, s) => backwardInputV1(gpu, geometry('conv2dBackwardInput', s), b),
    },
    v2: {
      summary: 'the forward v2 on the flipped kernel: software adapters, stride 1',
      rejects: stride1,
      configs: (_gpu, s) => tilesV2(backwardInputArgs(s)),
      run: (gpu, b, s, c) => directV2(gpu, backwardInputArgs(s), backwardInputBuffers(b), s.tile ?? (c as Conv2dTile | undefined)),
    },
    v3: {
      summary: 'the forward v3 on the flipped kernel: GPUs, stride 1',
      rejects: (s) => stride1(s) ?? stageable(s.KH, s.KW, 1),
      run: (gpu, b, s) => directV3(gpu, backwardInputArgs(s), backwardInputBuffers(b)),
    },
    v4: {
      summary: 'the forward v4 on the flipped kernel, padding taps skipped: software adapters, stride 1',
      requires: ['fixed-subgroups'],
      rejects: stride1,
      configs: (_gpu, s) => tilesV4(backwardInputArgs(s)),
      run: (gpu, b, s, c) => directV4(gpu, backwardInputArgs(s), backwardInputBuffers(b), s.tile ?? (c as Conv2dTile | undefined)),
    },
  },
  prefer: preferDirect,
  cost: (s: Conv2dSizes): Cost => {
    const { OH, OW } = conv2dOutputSize(s);
    return {
      flops: 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW,
      bytes: 4 * (s.N * s.O * OH * OW + s.O * s.C * s.KH * s.KW + s.N * s.C * s.H * s.W),
    };
  },
  needs: (s, { dy, w, dx }) => {
    const e = extents(s);
    return { dy: [dy, e.y], w: [w, e.w], dx: [dx, e.x] };
  },
});

/** The sizes, validated, with stride and padding spelt out (so equal problems have equal tuning keys). */
function explicit<S extends Conv2dSizes>(op: string, s: S): S {
  const g = geometry(op, s);
  return { ...s, stride: g.S, padding: g.pad };
}

/** y = conv2d(x, w) + bias, bias optional (null). y[N,O,OH,OW]. */
export function conv2d(gpu: Gpu, x: GPUBuffer, w: GPUBuffer, bias: GPUBuffer | null, y: GPUBuffer, sizes: Conv2dForwardSizes): void {
  CONV2D_FORWARD.run(gpu, { x, w, bias, y }, explicit('conv2d', sizes));
}

// dx[n,c,ih,iw] = Σ_{o,kh,kw: ih = oh·s+kh−pad, iw = ow·s+kw−pad} dy[n,o,oh,ow] · w[o,c,kh,kw]
export function conv2dBackwardInput(gpu: Gpu, dy: GPUBuffer, w: GPUBuffer, dx: GPUBuffer, sizes: Conv2dForwardSizes): void {
  CONV2D_BACKWARD_INPUT.run(gpu, { dy, w, dx }, explicit('conv2dBackwardInput', sizes));
}

export const conv2dCost = CONV2D_FORWARD.cost;
export const conv2dBackwardInputCost = CONV2D_BACKWARD_INPUT.cost;

// ---- the forward with a 2×2 max pool and a ReLU: relu(max_pool2d(conv2d(x), 2)) ---------------------------

export interface Conv2dPoolReluBuffers {
  x: GPUBuffer;
  w: GPUBuffer;
  bias: GPUBuffer | null;
  /** The pooled output [N, O, ⌊OH/2⌋, ⌊OW/2⌋]. */
  y: GPUBuffer;
  /**
   * Where each pooled value came from, as max_pool2d's argmax (an index into its OH×OW plane, −1 where the ReLU
   * zeroed it); null where `codes` are given instead.
   */
  argmax: GPUBuffer | null;
  /** The same as window codes (pool.ts: [N, O, ⌊OH/2⌋, ⌊OW/2⌋ / 4] u32 words), instead of the argmax; sizes.codes says so. */
  codes?: GPUBuffer | null;
}

export type Conv2dPoolReluVariant = 'v1' | 'v4';
/** The convolution's sizes; `variant` forces one of the fused op's, `tile` its v4 tile (benchmarks, tests). */
export type Conv2dPoolReluSizes = Omit<Conv2dForwardSizes, 'variant'> & {
  variant?: Conv2dPoolReluVariant;
  /** Window codes are written instead of the argmax: a key of its own for the tuner (set by conv2dMaxPool2dRelu). */
  codes?: boolean;
};

/** The convolution's output sizes as the pool's input. */
const poolOfConv = (s: Conv2dSizes) => {
  const { OH, OW } = conv2dOutputSize(s);
  return { N: s.N, C: s.O, H: OH, W: OW, relu: true };
};

export const CONV2D_POOL_RELU = defineOp<Conv2dPoolReluSizes, Conv2dPoolReluBuffers, Conv2dPoolReluVariant>({
  name: 'conv2d.pool-relu',
  variants: {
    v1: {
      summary: 'conv2d.forward, then max_pool2d with its ReLU: two dispatches, the fallback',
      // The two ops run their own choices (choose: a tuned one if cached, else the heuristics'), but not as calls
      // a tuner observes: it tunes this variant as a whole, and a call seen only once this variant is chosen
      // would otherwise be tuned on the next run, and the next.
      run: (gpu, b, s) => {
        const conv = gpu.pool.acquire(4 * extents(s).y, 'conv2d output before its pool');
        const { variant: _, tile: __, codes: ___, ...sizes } = s;
        CONV2D_FORWARD.runChoice(gpu, { x: b.x, w: b.w, bias: b.bias, y: conv }, sizes, CONV2D_FORWARD.choose(gpu, sizes));
        const pool = poolOfConv(s);
        const argmax = b.argmax ?? gpu.pool.acquire(4 * poolCodeWords(pool) * 4, 'argmax before its window codes');
        MAX_POOL2D.runChoice(gpu, { x: conv, y: b.y, argmax }, pool, MAX_POOL2D.choose(gpu, pool));
        if (b.codes) maxPool2dCodes(gpu, argmax, b.codes, pool);
        gpu.pool.release(conv); // safe: the queue runs the recorded dispatches before any later use
        if (!b.argmax) gpu.pool.release(argmax);
      },
    },
    v4: {
      summary: 'the forward v4, 2 sliding rows per lane, pooling its sums before it stores them: software adapters, even outputs',
      requires: ['fixed-subgroups'],
      rejects: (s) => v4PoolRelu(forwardArgs(s, false)),
      configs: (gpu, s) => conv2dPoolTilesV4(forwardArgs(s, false), gpu),
      run: (gpu, b, s, c) =>
        directV4PoolRelu(
          gpu,
          forwardArgs(s, b.bias !== null),
          { ...forwardBuffers(b), argmax: b.argmax, codes: b.codes },
          s.tile ?? (c as Conv2dTile | undefined),
        ),
    },
  },
  prefer: (gpu) => (gpu.isSoftware ? ['v4', 'v1'] : ['v1']),
  cost: (s: Conv2dSizes & { codes?: boolean }): Cost => {
    const conv = CONV2D_FORWARD.cost(s);
    const pooled = poolOutputSize(poolOfConv(s));
    const np = s.N * s.O * pooled.OH * pooled.OW;
    // (y, and the argmax or the window codes: a byte an output)
    return { flops: conv.flops, bytes: conv.bytes - 4 * extents(s).y + 4 * np + (s.codes ? np : 4 * np) };
  },
  needs: (s, { x, w, bias, y, argmax, codes }) => {
    const e = extents(s);
    const pooled = poolOutputSize(poolOfConv(s));
    const np = s.N * s.O * pooled.OH * pooled.OW;
    return { x: [x, e.x], w: [w, e.w], bias: [bias, s.O], y: [y, np], argmax: [argmax, np], codes: [codes ?? null, np / 4] };
  },
  exact: ['argmax', 'codes'],
});

/**
 * y = relu(max_pool2d(conv2d(x, w) + bias, 2)) and the pool's argmax, as conv2d then maxPool2d with relu
 * compute them (the same values; v4 never stores the convolution's output). y and argmax are [N, O, ⌊OH/2⌋, ⌊OW/2⌋].
 * Given `codes` (and a null argmax), the argmax as window codes instead (pool.ts, where poolCodes allows them),
 * which conv2dPoolReluBackwardWeight and maxPool2dBackwardCodes read in its place.
 */
export function conv2dMaxPool2dRelu(
  gpu: Gpu,
  x: GPUBuffer,
  w: GPUBuffer,
  bias: GPUBuffer | null,
  y: GPUBuffer,
  argmax: GPUBuffer | null,
  sizes: Omit<Conv2dPoolReluSizes, 'codes'>,
  codes: GPUBuffer | null = null,
): void {
  const s = explicit('conv2dMaxPool2dRelu', { ...sizes, ...(codes ? { codes: true } : {}) });
  checkPooled('conv2dMaxPool2dRelu', s, argmax, codes);
  CONV2D_POOL_RELU.run(gpu, { x, w, bias, y, argmax, codes }, s);
}

/**
 * A backward op's cost behind the pool: `base` (on the convolution's gradient) with that gradient read pooled, 4
 * bytes a value, and with the argmax (4 bytes) or the window codes (1).
 */
function fromPooled(base: Cost, s: Conv2dSizes & { codes?: boolean }): Cost {
  const pooled = poolOutputSize(poolOfConv(s));
  const np = s.N * s.O * pooled.OH * pooled.OW;
  return { flops: base.flops, bytes: base.bytes - 4 * extents(s).y + (s.codes ? 5 : 8) * np };
}

/**
 * That the convolution's output holds a 2×2 window, that exactly one of the argmax and the window codes is given,
 * and codes only where the pool has them.
 */
function checkPooled(op: string, s: Conv2dSizes, argmax: GPUBuffer | null, codes: GPUBuffer | null | undefined): void {
  const { OH, OW } = conv2dOutputSize(s);
  if (OH < 2 || OW < 2) throw new ShapeError(`${op}: the convolution's ${OH}x${OW} output is smaller than the 2x2 pooling window`);
  if (!argmax === !codes)
    throw new UsageError(`${op}: pass the pool's argmax or its window codes (${argmax ? 'not both' : 'neither was given'})`);
  const why = codes ? poolCodes(poolOfConv(s)) : null;
  if (why) throw new ShapeError(`${op}: ${why}; pass the argmax instead`);
}

export const conv2dMaxPool2dReluCost = CONV2D_POOL_RELU.cost;

// ---- backward-weight ---------------------------------------------------------------------------------------

const weightGeometry = (s: Conv2dSizes) => geometry('conv2dBackwardWeight', s);

export const CONV2D_BACKWARD_WEIGHT = defineOp<Conv2dBackwardWeightSizes, Conv2dBackwardWeightBuffers, Conv2dVariant>({
  name: 'conv2d.backward-weight',
  variants: {
    v1: {
      summary: 'one dw element per invocation: the fallback',
      run: (gpu, b, s) => backwardWeightV1(gpu, weightGeometry(s), b, !!s.accumulate),
    },
    v2: {
      summary: 'register tiles over row slices, no barriers: software adapters',
      configs: (_gpu, s) => conv2dWeightTilesV2(s.O, weightGeometry(s).OW),
      run: (gpu, b, s, c) =>
        backwardWeightTiled(gpu, weightGeometry(s), b, !!s.accumulate, false, s.tile ?? (c as Conv2dWeightTile | undefined)),
    },
    v3: {
      summary: 'a workgroup per weight, tree reduction: GPUs',
      run: (gpu, b, s) => backwardWeightV3(gpu, weightGeometry(s), b, !!s.accumulate),
    },
    v4: {
      summary: 'v2 sharing the dy loads across a subgroup: software adapters',
      requires: ['fixed-subgroups'],
      configs: (gpu, s) => conv2dWeightTilesV4(weightGeometry(s), fixedSubgroupSize(gpu)!),
      run: (gpu, b, s, c) =>
        backwardWeightTiled(gpu, weightGeometry(s), b, !!s.accumulate, true, s.tile ?? (c as Conv2dWeightTile | undefined)),
    },
  },
  prefer: (gpu) => (gpu.isSoftware ? ['v4', 'v2', 'v1'] : ['v3', 'v1']),
  cost: (s: Conv2dSizes): Cost => {
    const { OH, OW } = conv2dOutputSize(s);
    return {
      flops: 2 * s.N * s.O * OH * OW * s.C * s.KH * s.KW,
      bytes: 4 * (s.N * s.C * s.H * s.W + s.N * s.O * OH * OW + s.O * s.C * s.KH * s.KW),
    };
  },
  needs: (s, { x, dy, dw }) => {
    const e = extents(s);
    return { x: [x, e.x], dy: [dy, e.y], dw: [dw, e.w] };
  },
});

// dw (+)= Σ_{n,oh,ow} dy[n,o,oh,ow] · x[n,c,oh·s+kh−pad,ow·s+kw−pad]; with db, also db[o] (+)= Σ_{n,oh,ow} dy[n,o,oh,ow]
export function conv2dBackwardWeight(
  gpu: Gpu,
  x: GPUBuffer,
  dy: GPUBuffer,
  dw: GPUBuffer,
  sizes: Conv2dBackwardWeightSizes,
  db: GPUBuffer | null = null,
): void {
  CONV2D_BACKWARD_WEIGHT.run(gpu, { x, dy, dw, db }, { ...explicit('conv2dBackwardWeight', sizes), withBias: db !== null });
}

export const conv2dBackwardWeightCost = CONV2D_BACKWARD_WEIGHT.cost;

// ---- backward-weight from the pooled gradient: the weight gradient of relu(max_pool2d(conv2d(x), 2)) -------

export interface Conv2dPoolReluBackwardWeightBuffers {
  x: GPUBuffer;
  /** The gradient of the pooled output, [N, O, ⌊OH/2⌋, ⌊OW/2⌋]. */
  dy: GPUBuffer;
  /** The pool's argmax (conv2dMaxPool2dRelu's), −1 where the ReLU cut a window; null where `codes` are given. */
  argmax: GPUBuffer | null;
  /** Or its window codes (conv2dMaxPool2dRelu's, pool.ts) instead. */
  codes?: GPUBuffer | null;
  /** max_pool2d's backward of dy (the convolution's gradient), where the caller has it for dx; else null. */
  dconv: GPUBuffer | null;
  dw: GPUBuffer;
  /** db[o] (+)= Σ of the convolution's gradient over n, oh, ow, in the same dispatch; null: no bias. */
  db: GPUBuffer | null;
}

/**
 * `scattered`: dconv is given (the fallback then reads it instead of scattering dy); `codes`: the window codes are
 * given instead of the argmax. Each a key of its own for the tuner.
 */
export type Conv2dPoolReluBackwardWeightSizes = Omit<Conv2dBackwardWeightSizes, 'variant'> & {
  scattered: boolean;
  codes?: boolean;
  variant?: Conv2dPoolReluBackwardWeightVariant;
};
export type Conv2dPoolReluBackwardWeightVariant = 'v1' | 'v4';

const pooledGeometry = (s: Conv2dSizes) => geometry('conv2dPoolReluBackwardWeight', s);

export const CONV2D_POOL_RELU_BACKWARD_WEIGHT = defineOp<
  Conv2dPoolReluBackwardWeightSizes,
  Conv2dPoolReluBackwardWeightBuffers,
  Conv2dPoolReluBackwardWeightVariant
>({
  name: 'conv2d.pool-relu.backward-weight',
  variants: {
    v1: {
      summary: "max_pool2d's backward with its ReLU (unless given), then conv2d.backward-weight: the fallback",
      // as CONV2D_POOL_RELU's v1: the two ops run their own choices, not as calls a tuner observes
      run: (gpu, b, s) => {
        const { variant: _, tile: __, scattered: ___, codes: ____, ...sizes } = s;
        const dconv = b.dconv ?? gpu.pool.acquire(4 * extents(s).y, 'conv2d gradient from its pool');
        if (!b.dconv) {
          const pool = poolOfConv(s);
          if (b.codes) maxPool2dBackwardCodes(gpu, b.dy, b.codes, dconv, pool);
          else {
            const scatter = { dy: b.dy, argmax: b.argmax!, dx: dconv }; // (checkPooled: one is given)
            MAX_POOL2D_BACKWARD.runChoice(gpu, scatter, pool, MAX_POOL2D_BACKWARD.choose(gpu, pool));
          }
        }
        const weight = { x: b.x, dy: dconv, dw: b.dw, db: b.db };
        CONV2D_BACKWARD_WEIGHT.runChoice(gpu, weight, sizes, CONV2D_BACKWARD_WEIGHT.choose(gpu, sizes));
        if (!b.dconv) gpu.pool.release(dconv); // safe: the queue runs the recorded dispatches before any later use
      },
    },
    v4: {
      summary: 'the image-lane tile reading the pooled gradient and its argmax or codes, not the scattered one: software adapters',
      requires: ['fixed-subgroups'],
      rejects: (s) => imageLanesPooled(pooledGeometry(s), imageLanesTile(true), 1), // (the subgroup size: at run)
      configs: (gpu, s) => imageLanesTiles(pooledGeometry(s), fixedSubgroupSize(gpu)!, true, gpu),
      run: (gpu, b, s, c) =>
        backwardWeightImageLanes(
          gpu,
          pooledGeometry(s),
          { x: b.x, dy: b.dy, argmax: b.argmax, codes: b.codes, dw: b.dw, db: b.db },
          !!s.accumulate,
          s.tile ?? (c as Conv2dWeightTile | undefined) ?? imageLanesTile(true),
        ),
    },
  },
  // v4 sums in another order than the heuristics' backward-weight (the IL tile's): a tuner's choice only
  prefer: () => ['v1'],
  // (the pooled gradient, and the argmax or with codes the window codes, a byte a window)
  cost: (s: Conv2dSizes & { codes?: boolean }): Cost => fromPooled(CONV2D_BACKWARD_WEIGHT.cost(s), s),
  needs: (s, { x, dy, argmax, codes, dconv, dw, db }) => {
    const e = extents(s);
    const pooled = poolOutputSize(poolOfConv(s));
    const np = s.N * s.O * pooled.OH * pooled.OW;
    return {
      x: [x, e.x],
      dy: [dy, np],
      argmax: [argmax, np],
      codes: [codes ?? null, np / 4],
      dconv: [dconv, e.y],
      dw: [dw, e.w],
      db: [db, s.O],
    };
  },
});

/**
 * The weight (and bias) gradient of y = relu(max_pool2d(conv2d(x, w) + bias, 2)) from dy = ∂L/∂y and the pool's
 * argmax: conv2dBackwardWeight of max_pool2d's backward of dy. `dconv`, where the caller has that backward (for
 * dx), is read by the fallback instead of scattering dy again; the v4 tile reads dy and the argmax (or the window codes, where given) themselves.
 */
export function conv2dPoolReluBackwardWeight(
  gpu: Gpu,
  buffers: Conv2dPoolReluBackwardWeightBuffers,
  sizes: Omit<Conv2dPoolReluBackwardWeightSizes, 'scattered' | 'withBias' | 'codes'>,
): void {
  const codes = buffers.codes ? { codes: true } : {};
  const s = explicit('conv2dPoolReluBackwardWeight', {
    ...sizes,
    scattered: buffers.dconv !== null,
    withBias: buffers.db !== null,
    ...codes,
  });
  checkPooled('conv2dPoolReluBackwardWeight', s, buffers.argmax, buffers.codes);
  CONV2D_POOL_RELU_BACKWARD_WEIGHT.run(gpu, buffers, s);
}

export const conv2dPoolReluBackwardWeightCost = CONV2D_POOL_RELU_BACKWARD_WEIGHT.cost;

// ---- the input gradient behind the pool, from the pooled gradient ------------------------------------------

export interface Conv2dPoolReluBackwardInputBuffers {
  /** The gradient of the pooled output, [N, O, ⌊OH/2⌋, ⌊OW/2⌋]. */
  dy: GPUBuffer;
  /** The pool's argmax (conv2dMaxPool2dRelu's); null where `codes` are given. */
  argmax: GPUBuffer | null;
  /** Or its window codes (pool.ts) instead. */
  codes?: GPUBuffer | null;
  w: GPUBuffer;
  dx: GPUBuffer;
}

/** The convolution's sizes; `codes`: the window codes are given instead of the argmax (a key of its own for the tuner). */
export type Conv2dPoolReluBackwardInputSizes = Omit<Conv2dForwardSizes, 'variant'> & {
  codes?: boolean;
  variant?: Conv2dPoolReluBackwardWeightVariant;
};

/** Why no v4 tile can read the pooled gradient for these sizes (each tile's reason, once), or null. */
function pooledInputTiles(s: Conv2dSizes): string | null {
  const a = backwardInputArgs(s);
  const why = tilesV4(a).map((t) => v4PooledInput(a, t));
  return why.includes(null) ? null : `has no tile for these sizes: ${[...new Set(why)].join('; ')}`;
}

export const CONV2D_POOL_RELU_BACKWARD_INPUT = defineOp<
  Conv2dPoolReluBackwardInputSizes,
  Conv2dPoolReluBackwardInputBuffers,
  Conv2dPoolReluBackwardWeightVariant
>({
  name: 'conv2d.pool-relu.backward-input',
  variants: {
    v1: {
      summary: "max_pool2d's backward with its ReLU into the convolution's gradient, then conv2d.backward-input: the fallback",
      // as CONV2D_POOL_RELU's v1: the two ops run their own choices, not as calls a tuner observes
      run: (gpu, b, s) => {
        const { variant: _, tile: __, codes: ___, ...sizes } = s;
        const dconv = gpu.pool.acquire(4 * extents(s).y, 'conv2d gradient from its pool');
        const pool = poolOfConv(s);
        if (b.codes) maxPool2dBackwardCodes(gpu, b.dy, b.codes, dconv, pool);
        else {
          const scatter = { dy: b.dy, argmax: b.argmax!, dx: dconv }; // (checkPooled: one is given)
          MAX_POOL2D_BACKWARD.runChoice(gpu, scatter, pool, MAX_POOL2D_BACKWARD.choose(gpu, pool));
        }
        const input = { dy: dconv, w: b.w, dx: b.dx };
        CONV2D_BACKWARD_INPUT.runChoice(gpu, input, sizes, CONV2D_BACKWARD_INPUT.choose(gpu, sizes));
        gpu.pool.release(dconv); // safe: the queue runs the recorded dispatches before any later use
      },
    },
    v4: {
      summary: 'the backward-input v4 reading the pooled gradient and its window codes, not the scattered one: software adapters',
      requires: ['fixed-subgroups'],
      rejects: (s) => (!s.codes ? 'reads window codes, not the argmax' : (stride1(s) ?? pooledInputTiles(s))),
      configs: (_gpu, s) => tilesV4(backwardInputArgs(s)).filter((t) => v4PooledInput(backwardInputArgs(s), t) === null),
      run: (gpu, b, s, c) => {
        const a = backwardInputArgs(s);
        const t = s.tile ?? (c as Conv2dTile | undefined) ?? tilesV4(a).find((u) => v4PooledInput(a, u) === null)!;
        directV4PooledInput(gpu, a, { x: b.dy, codes: b.codes!, w: b.w, bias: b.w, y: b.dx }, t);
      },
    },
  },
  // v4 sums as conv2d.backward-input's v4 does on the scattered gradient, but reads codes: a tuner's choice, where
  // the autograd op saves them
  prefer: () => ['v1'],
  cost: (s: Conv2dSizes & { codes?: boolean }): Cost => fromPooled(CONV2D_BACKWARD_INPUT.cost(s), s),
  needs: (s, { dy, argmax, codes, w, dx }) => {
    const e = extents(s);
    const pooled = poolOutputSize(poolOfConv(s));
    const np = s.N * s.O * pooled.OH * pooled.OW;
    return { dy: [dy, np], argmax: [argmax, np], codes: [codes ?? null, np / 4], w: [w, e.w], dx: [dx, e.x] };
  },
});

/**
 * dx of y = relu(max_pool2d(conv2d(x, w) + bias, 2)) from dy = ∂L/∂y and the pool's argmax or window codes:
 * conv2dBackwardInput of max_pool2d's backward of dy; the v4 reads dy and the codes themselves.
 */
export function conv2dPoolReluBackwardInput(
  gpu: Gpu,
  buffers: Conv2dPoolReluBackwardInputBuffers,
  sizes: Omit<Conv2dPoolReluBackwardInputSizes, 'codes'>,
): void {
  const s = explicit('conv2dPoolReluBackwardInput', { ...sizes, ...(buffers.codes ? { codes: true } : {}) });
  checkPooled('conv2dPoolReluBackwardInput', s, buffers.argmax, buffers.codes);
  CONV2D_POOL_RELU_BACKWARD_INPUT.run(gpu, buffers, s);
}

/**
 * Whether conv2dMaxPool2dRelu should save window codes instead of the argmax for its backward: where a tuner may
 * choose conv2dPoolReluBackwardWeight's v4 (which reads them 1.1× as fast as the argmax; the heuristics never
 * choose it) and the pooled rows are whole words.
 */
export function poolCodesUseful(gpu: Gpu, sizes: Conv2dForwardSizes): boolean {
  const { variant: _, tile: __, ...s } = explicit('conv2dMaxPool2dRelu', sizes);
  return (
    gpu.tuning !== null &&
    poolCodes(poolOfConv(s)) === null &&
    CONV2D_POOL_RELU_BACKWARD_WEIGHT.candidates(gpu, { ...s, scattered: false, codes: true }).includes('v4')
  );
}

// ---- backward-bias -----------------------------------------------------------------------------------------

const biasArgs = (s: Conv2dBackwardBiasSizes) => ({ N: s.N, O: s.O, plane: s.OH * s.OW, accumulate: !!s.accumulate });

export const CONV2D_BACKWARD_BIAS = defineOp<Conv2dBackwardBiasSizes, Conv2dBackwardBiasBuffers, Conv2dBiasVariant>({
  name: 'conv2d.backward-bias',
  variants: {
    v1: { summary: 'one db element per invocation: the fallback', run: (gpu, b, s) => backwardBiasV1(gpu, biasArgs(s), b) },
    v2: {
      summary: 'a sum per (n, o) plane, then a sum over n: software adapters',
      run: (gpu, b, s) => backwardBiasV2(gpu, biasArgs(s), b),
    },
    v3: { summary: 'a workgroup per channel, tree reduction: GPUs', run: (gpu, b, s) => backwardBiasV3(gpu, biasArgs(s), b) },
  },
  prefer: (gpu) => (gpu.isSoftware ? ['v2', 'v1'] : ['v3', 'v1']),
  cost: (s: Conv2dBackwardBiasSizes): Cost => ({ flops: s.N * s.O * s.OH * s.OW, bytes: 4 * (s.N * s.O * s.OH * s.OW + s.O) }),
  needs: (s, { dy, db }) => ({ dy: [dy, s.N * s.O * s.OH * s.OW], db: [db, s.O] }),
});

// db (+)= Σ_{n,oh,ow} dy[n,o,oh,ow]
export function conv2dBackwardBias(gpu: Gpu, dy: GPUBuffer, db: GPUBuffer, sizes: Conv2dBackwardBiasSizes): void {
  const { N, O, OH, OW } = sizes;
  if (![N, O, OH, OW].every((d) => Number.isInteger(d) && d >= 1)) {
    throw new ShapeError(`conv2dBackwardBias: bad sizes N=${N} O=${O} OH=${OH} OW=${OW}; all must be positive integers.`);
  }
  CONV2D_BACKWARD_BIAS.run(gpu, { dy, db }, sizes);
}

export const conv2dBackwardBiasCost = CONV2D_BACKWARD_BIAS.cost;
