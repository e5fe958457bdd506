// 2-D max pooling, NCHW, no padding, floor output size as PyTorch: OH = ⌊(H − k)/s⌋ + 1, OW likewise.
// y[n,c,oh,ow] = max over the k×k window at (oh·s, ow·s); argmax[n,c,oh,ow] = ih·W + iw of the maximum in
// its input H·W plane (i32), the first one in row-major window order on ties (strict >), NaN taken as the
// maximum (as PyTorch). Backward: dx[n,c,i] = Σ over windows o containing i with argmax[o] = i of dy[o].
// Cost: forward k²·outputs compares, 4·(inputs + 2·outputs) bytes; backward 4·(2·inputs·w + inputs) bytes,
// w = windows per input (1 when s ≥ k).
//
// Variants (the MAX_POOL2D and MAX_POOL2D_BACKWARD registries):
// max_pool2d_v1        one invocation per output row, scalar loads; any k, s (compile-time), any H, W.
// max_pool2d_v2        k = s = 2 and W % 8 = 0 (so rows are whole vec4s and OW % 4 = 0): one invocation per 4
//                      outputs of a row, reading the 2×8 input block as four vec4 and writing y and argmax as
//                      one vec4 each. Barrier-free, for llvmpipe and GPUs alike.
// max_pool2d_grad_v1   a gather (no atomics), one invocation per input row: when s ≥ k an element lies in at
//                      most one window, found by division (branch-free); otherwise it visits the windows that
//                      contain it (⌈(ih−k+1)/s⌉..⌊ih/s⌋ by rows, likewise by columns: one when s ≥ k, up to
//                      ⌈k/s⌉² when windows overlap) and sums dy where the window's argmax is itself.
// max_pool2d_grad_v2   k = s = 2 and W % 8 = 0: one invocation per 2×8 input block, reading dy and argmax as
//                      one vec4 each and writing four vec4 of dx.
// Preferred: v2 wherever the shape allows it (v2 rejects the others), else the fallback v1; `variant` forces
// one, and forcing v2 on a shape it rejects is a VariantError.
// `relu: true` fuses a ReLU into either forward (the seed's maxpool → ReLU): y = max(pool, 0) and argmax −1
// where the maximum is ≤ 0, which the backward kernels, unchanged, read as "no input gets this gradient".
//
// Window codes (2×2 windows at stride 2, pooled rows of whole words of four: poolCodes): the argmax in a byte per
// window, where its maximum lies in it or POOL_CODE_CUT where the ReLU cut it. max_pool2d_codes makes them from
// the argmax; max_pool2d_grad_codes is the backward from them; the fused convolution (conv2d.pool-relu) writes
// them in its epilogue, and its weight gradient reads them (see below).
import { ShapeError } from '../errors.js';
import { declareKernel, launch } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import { defineOp } from './op.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, IS_NAN, memoKernel } from './wgsl.js';

export type PoolVariant = 'v1' | 'v2';

export interface PoolSizes {
  N: number;
  C: number;
  H: number;
  W: number;
  /** Window size (default 2). */
  kernel?: number;
  /** Step between windows (default: the window size). */
  stride?: number;
  /** Force a variant; by default v2 where the shape allows it (k = s = 2, W % 8 = 0), else v1. */
  variant?: PoolVariant;
  /**
   * Fuse a ReLU after the pool: y = max(pool, 0), with argmax −1 where the window's maximum is ≤ 0, so the
   * unchanged backward sends those windows no gradient, exactly relu's dx = dy·(y > 0). A NaN maximum stays, with
   * its argmax, so its gradient passes as through F.relu (PyTorch's NaN semantics, fused or not).
   */
  relu?: boolean;
}

const WG = 64;

/** Output height and width of a max pool, PyTorch's floor rule. */
export function poolOutputSize(s: PoolSizes): { OH: number; OW: number } {
  const k = s.kernel ?? 2;
  const st = s.stride ?? k;
  return { OH: Math.floor((s.H - k) / st) + 1, OW: Math.floor((s.W - k) / st) + 1 };
}

function checkSizes(op: string, s: PoolSizes): void {
  const k = s.kernel ?? 2;
  const st = s.stride ?? k;
  for (const [name, v] of Object.entries({ N: s.N, C: s.C, H: s.H, W: s.W, kernel: k, stride: st })) {
    if (!Number.isInteger(v) || v < (name === 'N' || name === 'C' ? 0 : 1)) {
      throw new ShapeError(
        `${op}: ${name} = ${v} must be a positive integer (N=${s.N} C=${s.C} H=${s.H} W=${s.W} kernel=${k} stride=${st})`,
      );
    }
  }
  if (s.H < k || s.W < k)
    throw new ShapeError(`${op}: input ${s.H}x${s.W} is smaller than the ${k}x${k} window; pad it or use a smaller kernel`);
}

/** Why the vec4 kernels (v2) cannot pool these sizes: they need 2×2 windows, stride 2, a multiple of 4 outputs per row. */
function rejectsV2(s: PoolSizes): string | null {
  const k = s.kernel ?? 2;
  const st = s.stride ?? k;
  return k === 2 && st === 2 && s.W % 8 === 0 && s.H >= 2
    ? null
    : `needs kernel = stride = 2, W % 8 = 0 and H ≥ 2, got kernel=${k} stride=${st} ${s.H}x${s.W}`;
}

const PARAMS = { planes: 'u32', H: 'u32', W: 'u32', OH: 'u32', OW: 'u32' } as const;
const params = (s: PoolSizes) => {
  const { OH, OW } = poolOutputSize(s);
  return { planes: s.N * s.C, H: s.H, W: s.W, OH, OW };
};

// The window scan shared by both forward versions: best value and its plane index for the window at (h0, w0).
// `v > best || isNan(v)`: strict > keeps the first maximum; a NaN is taken as the maximum (the last NaN, as
// PyTorch's CPU kernel), tested by its bits since the compiler may assume `v != v` false.
const SCAN = /* wgsl */ `${IS_NAN}
fn scan(base: u32, h0: u32, w0: u32) -> Best {
  var b = Best(x[base + h0 * p.W + w0], i32(h0 * p.W + w0));
  for (var kh = 0u; kh < K; kh++) {
    for (var kw = 0u; kw < K; kw++) {
      let j = (h0 + kh) * p.W + w0 + kw;
      let v = x[base + j];
      if (v > b.v || isNan(v)) { b = Best(v, i32(j)); }
    }
  }
  return b;
}`;

const forwardV1 = memoKernel((k: number, s: number, saveArgmax: boolean, relu: boolean) =>
  declareKernel({
    name: `max_pool2d_v1_k${k}s${s}${saveArgmax ? '' : '_noidx'}${relu ? '_relu' : ''}`,
    params: PARAMS,
    buffers: saveArgmax ? { x: 'read', y: 'read_write', argmax: { read_write: 'i32' } } : { x: 'read', y: 'read_write' },
    wgsl: /* wgsl */ `
const K = ${k}u;
const S = ${s}u;
struct Best { v: f32, j: i32 }
${SCAN}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let t = ${FLAT_INDEX(WG)}; // output row (plane, oh)
  if (t >= p.planes * p.OH) { return; }
  let plane = t / p.OH;
  let h0 = (t - plane * p.OH) * S;
  let base = plane * p.H * p.W;
  for (var ow = 0u; ow < p.OW; ow++) {
    ${relu ? 'var' : 'let'} b = scan(base, h0, ow * S);
    ${relu ? 'if (b.v <= 0.0 && !isNan(b.v)) { b = Best(0.0, -1); }' : ''}
    y[t * p.OW + ow] = b.v;
    ${saveArgmax ? 'argmax[t * p.OW + ow] = b.j;' : ''}
  }
}`,
  }),
);

// v2 forward and backward share their invocation layout: g → (plane, oh, q) over planes × OH × OW/4.
const V2_INDEX = /* wgsl */ `let g = ${FLAT_INDEX(WG)};
  let Q = p.OW / 4u;
  if (g >= p.planes * p.OH * Q) { return; }
  let q = g % Q;
  let t = g / Q;
  let oh = t % p.OH;
  let plane = t / p.OH;`;

// v2: invocation (plane, oh, q) computes outputs ow = 4q..4q+3 from input rows 2oh, 2oh+1, columns 8q..8q+7.
// Column pairs (a, b) of a row are (v.x, v.y), (v.z, v.w) of its two vec4s; the window order is row 0 a, b,
// row 1 a, b, so ties keep the earliest as in v1.
const forwardV2 = memoKernel((saveArgmax: boolean, relu: boolean) =>
  declareKernel({
    name: `max_pool2d_v2${saveArgmax ? '' : '_noidx'}${relu ? '_relu' : ''}`,
    params: PARAMS,
    buffers: {
      x: { read: 'vec4<f32>' },
      y: { read_write: 'vec4<f32>' },
      ...(saveArgmax ? { argmax: { read_write: 'vec4<i32>' } } : {}),
    },
    wgsl: /* wgsl */ `${IS_NAN}
fn pick(b: ptr<function, vec4<f32>>, bj: ptr<function, vec4<i32>>, v: vec4<f32>, j: vec4<i32>) {
  let take = (v > *b) | isNan4(v);
  *b = select(*b, v, take);
  *bj = select(*bj, j, take);
}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  ${V2_INDEX}
  let r0 = (plane * p.H + 2u * oh) * (p.W / 4u) + 2u * q; // vec4 index of row 2oh, column 8q
  let r1 = r0 + p.W / 4u;
  let a0 = x[r0]; let a1 = x[r0 + 1u]; let b0 = x[r1]; let b1 = x[r1 + 1u];
  // Plane index of the left column of each output's window in row 2oh.
  let j0 = vec4<i32>(i32(2u * oh * p.W + 8u * q)) + vec4<i32>(0, 2, 4, 6);
  let W = i32(p.W);
  var best = vec4<f32>(a0.x, a0.z, a1.x, a1.z);
  var bj = j0;
  pick(&best, &bj, vec4<f32>(a0.y, a0.w, a1.y, a1.w), j0 + 1);
  pick(&best, &bj, vec4<f32>(b0.x, b0.z, b1.x, b1.z), j0 + W);
  pick(&best, &bj, vec4<f32>(b0.y, b0.w, b1.y, b1.w), j0 + W + 1);
  ${relu ? 'let dead = (best <= vec4<f32>()) & !isNan4(best); best = select(best, vec4<f32>(), dead); bj = select(bj, vec4<i32>(-1), dead);' : ''}
  y[g] = best;
  ${saveArgmax ? 'argmax[g] = bj;' : ''}
}`,
  }),
);

export interface PoolBuffers {
  x: GPUBuffer;
  y: GPUBuffer;
  /** Null for inference: then no argmax is written. */
  argmax: GPUBuffer | null;
}

const poolBuffers = ({ x, y, argmax }: PoolBuffers): Record<string, GPUBuffer> => (argmax ? { x, y, argmax } : { x, y });

export const MAX_POOL2D = defineOp<PoolSizes, PoolBuffers, PoolVariant>({
  name: 'max_pool2d',
  variants: {
    v1: {
      summary: 'one invocation per output row, scalar loads: any window and stride',
      run: (gpu, b, s) => {
        const u = params(s);
        const k = s.kernel ?? 2;
        launch(gpu, forwardV1(k, s.stride ?? k, !!b.argmax, !!s.relu), {
          params: u,
          buffers: poolBuffers(b),
          workgroups: grid1d(u.planes * u.OH, WG),
        });
      },
    },
    v2: {
      summary: 'one invocation per 4 outputs of a row, vec4 loads and stores: 2x2 windows, stride 2',
      rejects: rejectsV2,
      run: (gpu, b, s) => {
        const u = params(s);
        launch(gpu, forwardV2(!!b.argmax, !!s.relu), {
          params: u,
          buffers: poolBuffers(b),
          workgroups: grid1d((u.planes * u.OH * u.OW) / 4, WG),
        });
      },
    },
  },
  prefer: () => ['v2'],
  cost: (s) => {
    const k = s.kernel ?? 2;
    const { OH, OW } = poolOutputSize(s);
    const inputs = s.N * s.C * s.H * s.W,
      outputs = s.N * s.C * OH * OW;
    return { flops: k * k * outputs, bytes: 4 * (inputs + 2 * outputs) };
  },
  needs: (s, { x, y, argmax }) => {
    const { OH, OW } = poolOutputSize(s);
    const outputs = s.N * s.C * OH * OW;
    return { x: [x, s.N * s.C * s.H * s.W], y: [y, outputs], argmax: [argmax, outputs] };
  },
  exact: ['argmax'],
});

/**
 * y = max-pool(x); argmax (i32, index ih·W + iw into the input plane) is what the backward needs, and may be
 * null for inference. x: [N,C,H,W], y and argmax: [N,C,OH,OW].
 */
export function maxPool2d(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, argmax: GPUBuffer | null, sizes: PoolSizes): void {
  checkSizes('maxPool2d', sizes);
  if (sizes.N * sizes.C === 0) return;
  MAX_POOL2D.run(gpu, { x, y, argmax }, sizes);
}

// ---- window codes: a 2×2 pool's argmax in a byte per window ---------------------------------------------------
// Where a pooled output's maximum lies in its 2×2 window, 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right,
// or POOL_CODE_CUT where the fused ReLU cut the window (argmax −1): a byte per output, four outputs of a pooled row
// per u32 word, the first in the lowest byte, so [N, C, OH, OW/4] words. The image-lane weight gradient behind the
// pool (conv2d.pool-relu.backward-weight's v4) reads a lane's windows as two words instead of two vec4s of argmax.

/** The code of a window the fused ReLU cut (its argmax −1). */
export const POOL_CODE_CUT = 255;

/** Why a 2×2, stride-2 pool with these sizes has no window codes, or null: pooled rows must be whole words of four. */
export function poolCodes(s: PoolSizes): string | null {
  const k = s.kernel ?? 2;
  if (k !== 2 || (s.stride ?? k) !== 2) return `window codes are for 2x2 windows at stride 2, not ${k}x${k} at stride ${s.stride ?? k}`;
  const { OW } = poolOutputSize(s);
  return OW % 4 === 0 ? null : `pooled rows of ${OW} outputs are not whole words of four codes`;
}

/** u32 words of the window codes of a 2×2, stride-2 pool over [N, C, H, W]. */
export function poolCodeWords(s: PoolSizes): number {
  const { OH, OW } = poolOutputSize(s);
  return (s.N * s.C * OH * OW) / 4;
}

// One invocation per word (the layout of max_pool2d_v2: g → plane, oh, q), reading its four argmax as a vec4.
const codesKernel = memoKernel(() =>
  declareKernel({
    name: 'max_pool2d_codes',
    params: PARAMS,
    buffers: { argmax: { read: 'vec4<i32>' }, codes: { read_write: 'u32' } },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  ${V2_INDEX}
  let W = i32(p.W);
  let j = argmax[g];
  let off = j - (vec4<i32>(i32(2u * oh * p.W + 8u * q)) + vec4<i32>(0, 2, 4, 6)); // from each window's top-left
  let bottom = off >= vec4<i32>(W);
  let k = select(select(vec4<u32>(0u), vec4<u32>(2u), bottom) + vec4<u32>(select(off, off - W, bottom)), vec4<u32>(${POOL_CODE_CUT}u), j < vec4<i32>(0));
  codes[g] = k.x | (k.y << 8u) | (k.z << 16u) | (k.w << 24u);
}`,
  }),
);

/**
 * The window codes (see above) of a 2×2, stride-2 pool from its argmax: [N, C, OH, OW] argmax into poolCodeWords
 * words. `sizes` are the pool's (its input's).
 */
export function maxPool2dCodes(gpu: Gpu, argmax: GPUBuffer, codes: GPUBuffer, sizes: PoolSizes): void {
  checkSizes('maxPool2dCodes', sizes);
  const why = poolCodes(sizes);
  if (why) throw new ShapeError(`maxPool2dCodes: ${why}`);
  const u = params(sizes);
  if (u.planes === 0) return;
  launch(gpu, codesKernel(), { params: u, buffers: { argmax, codes }, workgroups: grid1d((u.planes * u.OH * u.OW) / 4, WG) });
}

const backwardV1 = memoKernel((k: number, s: number) =>
  declareKernel({
    name: `max_pool2d_grad_v1_k${k}s${s}`,
    params: PARAMS,
    buffers: { dy: 'read', argmax: { read: 'i32' }, dx: 'read_write' },
    wgsl: /* wgsl */ `
const K = ${k}u;
const S = ${s}u;
${
  s < k
    ? `// Windows o with o·S ≤ i < o·S + K, clipped to [0, count): first and one-past-last.
fn windows(i: u32, count: u32) -> vec2<u32> {
  let lo = select(0u, (i - K) / S + 1u, i >= K);
  return vec2<u32>(lo, min(i / S + 1u, count));
}`
    : ''
}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let t = ${FLAT_INDEX(WG)}; // input row (plane, ih)
  if (t >= p.planes * p.H) { return; }
  let plane = t / p.H;
  let ih = t - plane * p.H;
  ${
    s >= k
      ? `// Windows do not overlap: at most one contains (ih, iw); no loops, so no divergent trip counts.
  let oh = ih / S;
  let rowOk = ih - oh * S < K && oh < p.OH;
  let orow = (plane * p.OH + min(oh, p.OH - 1u)) * p.OW;
  for (var iw = 0u; iw < p.W; iw++) {
    let ow = iw / S;
    let o = orow + min(ow, p.OW - 1u);
    let hit = rowOk && iw - ow * S < K && ow < p.OW && argmax[o] == i32(ih * p.W + iw);
    dx[t * p.W + iw] = select(0.0, dy[o], hit);
  }`
      : `let rows = windows(ih, p.OH);
  for (var iw = 0u; iw < p.W; iw++) {
    let cols = windows(iw, p.OW);
    let j = i32(ih * p.W + iw);
    var g = 0.0;
    for (var oh = rows.x; oh < rows.y; oh++) {
      for (var ow = cols.x; ow < cols.y; ow++) {
        let o = (plane * p.OH + oh) * p.OW + ow;
        if (argmax[o] == j) { g += dy[o]; }
      }
    }
    dx[t * p.W + iw] = g;
  }`
  }
}`,
  }),
);

// v2: invocation (plane, oh, q) owns input rows 2oh, 2oh+1, columns 8q..8q+7, i.e. the windows of outputs
// 4q..4q+3 of row oh. Input rows past 2·OH (odd H) get zeros from the same invocations of the last row.
const backwardV2 = memoKernel(() =>
  declareKernel({
    name: 'max_pool2d_grad_v2',
    params: PARAMS,
    buffers: { dy: { read: 'vec4<f32>' }, argmax: { read: 'vec4<i32>' }, dx: { read_write: 'vec4<f32>' } },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  ${V2_INDEX}
  let d = dy[g];
  let a = argmax[g];
  let j0 = vec4<i32>(i32(2u * oh * p.W + 8u * q)) + vec4<i32>(0, 2, 4, 6);
  let W = i32(p.W);
  let z = vec4<f32>();
  let r0 = (plane * p.H + 2u * oh) * (p.W / 4u) + 2u * q;
  let r1 = r0 + p.W / 4u;
  let tl = select(z, d, a == j0);          // top-left of each window
  let tr = select(z, d, a == j0 + 1);
  let bl = select(z, d, a == j0 + W);
  let br = select(z, d, a == j0 + W + 1);
  dx[r0] = vec4<f32>(tl.x, tr.x, tl.y, tr.y);
  dx[r0 + 1u] = vec4<f32>(tl.z, tr.z, tl.w, tr.w);
  dx[r1] = vec4<f32>(bl.x, br.x, bl.y, br.y);
  dx[r1 + 1u] = vec4<f32>(bl.z, br.z, bl.w, br.w);
  if (oh == p.OH - 1u && p.H > 2u * p.OH) { dx[r1 + p.W / 4u] = z; dx[r1 + p.W / 4u + 1u] = z; }
}`,
  }),
);

export interface PoolBackwardBuffers {
  dy: GPUBuffer;
  argmax: GPUBuffer;
  dx: GPUBuffer;
}

export const MAX_POOL2D_BACKWARD = defineOp<PoolSizes, PoolBackwardBuffers, PoolVariant>({
  name: 'max_pool2d.backward',
  variants: {
    v1: {
      summary: 'a gather, one invocation per input row: any window and stride',
      run: (gpu, { dy, argmax, dx }, s) => {
        const u = params(s);
        const k = s.kernel ?? 2;
        launch(gpu, backwardV1(k, s.stride ?? k), { params: u, buffers: { dy, argmax, dx }, workgroups: grid1d(u.planes * s.H, WG) });
      },
    },
    v2: {
      summary: 'one invocation per 2x8 input block, vec4 loads and stores: 2x2 windows, stride 2',
      rejects: rejectsV2,
      run: (gpu, { dy, argmax, dx }, s) => {
        const u = params(s);
        launch(gpu, backwardV2(), { params: u, buffers: { dy, argmax, dx }, workgroups: grid1d((u.planes * u.OH * u.OW) / 4, WG) });
      },
    },
  },
  prefer: () => ['v2'],
  cost: (s) => {
    const { OH, OW } = poolOutputSize(s);
    const inputs = s.N * s.C * s.H * s.W,
      outputs = s.N * s.C * OH * OW;
    return { flops: outputs, bytes: 4 * (inputs + 2 * outputs) };
  },
  needs: (s, { dy, argmax, dx }) => {
    const { OH, OW } = poolOutputSize(s);
    const outputs = s.N * s.C * OH * OW;
    return { dy: [dy, outputs], argmax: [argmax, outputs], dx: [dx, s.N * s.C * s.H * s.W] };
  },
});

// dx[n,c,i] = Σ_{o : argmax[n,c,o] = i} dy[n,c,o]   (dx is overwritten, every element)
export function maxPool2dBackward(gpu: Gpu, dy: GPUBuffer, argmax: GPUBuffer, dx: GPUBuffer, sizes: PoolSizes): void {
  checkSizes('maxPool2dBackward', sizes);
  if (sizes.N * sizes.C === 0) return;
  MAX_POOL2D_BACKWARD.run(gpu, { dy, argmax, dx }, sizes);
}

// The backward from window codes (a 2×2, stride-2 pool's, see above): one invocation per code word, its four
// windows' dy as a vec4, each input of a window getting the window's dy where the code names it, else 0; where H
// or W is odd, the row or column past the windows gets zeros from the invocations beside it. With W % 8 = 0 the
// four windows' two input rows are written as vec4s (as max_pool2d_grad_v2), else element by element.
const backwardCodesKernel = memoKernel((vec: boolean) =>
  declareKernel({
    name: `max_pool2d_grad_codes${vec ? '' : '_scalar'}`,
    params: PARAMS,
    buffers: { dy: { read: 'vec4<f32>' }, codes: { read: 'u32' }, dx: vec ? { read_write: 'vec4<f32>' } : 'read_write' },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  ${V2_INDEX}
  let d = dy[g];
  let k = (vec4<u32>(codes[g]) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(255u);
  let z = vec4<f32>();
  let tl = select(z, d, k == vec4<u32>(0u)); // each window's top-left, top-right, bottom-left, bottom-right
  let tr = select(z, d, k == vec4<u32>(1u));
  let bl = select(z, d, k == vec4<u32>(2u));
  let br = select(z, d, k == vec4<u32>(3u));
  ${
    vec
      ? `let r0 = (plane * p.H + 2u * oh) * (p.W / 4u) + 2u * q;
  let r1 = r0 + p.W / 4u;
  dx[r0] = vec4<f32>(tl.x, tr.x, tl.y, tr.y);
  dx[r0 + 1u] = vec4<f32>(tl.z, tr.z, tl.w, tr.w);
  dx[r1] = vec4<f32>(bl.x, br.x, bl.y, br.y);
  dx[r1 + 1u] = vec4<f32>(bl.z, br.z, bl.w, br.w);
  if (oh == p.OH - 1u && p.H > 2u * p.OH) { dx[r1 + p.W / 4u] = z; dx[r1 + p.W / 4u + 1u] = z; }`
      : `let r0 = (plane * p.H + 2u * oh) * p.W + 8u * q;
  let r1 = r0 + p.W;
  for (var e = 0u; e < 4u; e++) {
    dx[r0 + 2u * e] = tl[e]; dx[r0 + 2u * e + 1u] = tr[e]; dx[r1 + 2u * e] = bl[e]; dx[r1 + 2u * e + 1u] = br[e];
  }
  let lastRow = oh == p.OH - 1u && p.H > 2u * p.OH;
  if (lastRow) { for (var c = 0u; c < 8u; c++) { dx[r1 + p.W + c] = 0.0; } }
  if (q == p.OW / 4u - 1u && p.W > 2u * p.OW) {
    dx[r0 + 8u] = 0.0; dx[r1 + 8u] = 0.0;
    if (lastRow) { dx[r1 + p.W + 8u] = 0.0; }
  }`
  }
}`,
  }),
);

/**
 * dx = max_pool2d's backward of dy from the window codes of a 2×2, stride-2 pool (see maxPool2dCodes) instead of its
 * argmax: the same values. `sizes` are the pool's (its input's); dx is overwritten, every element.
 */
export function maxPool2dBackwardCodes(gpu: Gpu, dy: GPUBuffer, codes: GPUBuffer, dx: GPUBuffer, sizes: PoolSizes): void {
  checkSizes('maxPool2dBackwardCodes', sizes);
  const why = poolCodes(sizes);
  if (why) throw new ShapeError(`maxPool2dBackwardCodes: ${why}`);
  const u = params(sizes);
  if (u.planes === 0) return;
  launch(gpu, backwardCodesKernel(sizes.W % 8 === 0), {
    params: u,
    buffers: { dy, codes, dx },
    workgroups: grid1d((u.planes * u.OH * u.OW) / 4, WG),
  });
}

export const maxPool2dCost = MAX_POOL2D.cost;
export const maxPool2dBackwardCost = MAX_POOL2D_BACKWARD.cost;
