// The functional API, named like torch.nn.functional: each op checks shapes (errors name the op and the
// shapes), records its kernels, and, when gradients are on, a Node whose backward rule sits right under
// the forward. Each rule's comment gives the math and says what the forward saved for it.
import { DataError, ShapeError } from '../errors.js';
import * as bn from '../shaders/batch-norm/index.js';
import * as conv from '../shaders/conv2d/index.js';
import * as drop from '../shaders/dropout.js';
import * as ew from '../shaders/elementwise.js';
import * as mm from '../shaders/matmul/index.js';
import * as lin from '../shaders/matmul/linear.js';
import * as pool from '../shaders/pool.js';
import * as red from '../shaders/reduce.js';
import * as sm from '../shaders/softmax.js';
import { describeValue, expectInteger, expectNumber } from './check.js';
import { checkDtype, installGradHelpers, isGradEnabled, type Node, shapeStr, Tensor } from './tensor.js';

const gpuOf = (t: Tensor) => t.gpu;

/** Attaches a backward rule to `out` when gradients are on and some input needs them (and its rule for dy = 1, if any). */
function record(
  out: Tensor,
  name: string,
  inputs: Tensor[],
  backward: Node['backward'],
  backwardFromOnes?: Node['backwardFromOnes'],
): Tensor {
  if (needsGrad(inputs)) {
    out.requiresGrad = true;
    out.node = { name, inputs, backward, backwardFromOnes };
  }
  return out;
}
const needsGrad = (inputs: Tensor[]) => isGradEnabled() && inputs.some((t) => t.requiresGrad);

function expectShape(op: string, what: string, t: Tensor, ndim: number, hint: string): void {
  expectTensor(op, what, t); // before its shape is read
  if (t.ndim !== ndim) throw new ShapeError(`${op}: ${what} must be ${ndim}-D ${hint}, got ${shapeStr(t.shape)}`);
  expectFloat(op, what, t);
}

function expectFloat(op: string, what: string, t: Tensor): void {
  expectTensor(op, what, t);
  if (t.dtype !== 'float32') throw new DataError(`${op}: ${what} must be float32, got ${t.dtype} ${shapeStr(t.shape)}`);
}

function expectTensor(op: string, what: string, t: unknown): asserts t is Tensor {
  if (!(t instanceof Tensor))
    throw new DataError(`${op}: ${what} must be a Tensor, got ${describeValue(t)}; make one with tensor(data, shape)`);
}

const like = (t: Tensor, label: string) => Tensor.empty(t.shape, { gpu: t.gpu, label });

// ---------------------------------------------------------------- creation

/** A tensor from CPU data (float32 unless dtype is 'int32'). */
export function tensor(
  data: ArrayLike<number>,
  shape: readonly number[] = [data?.length],
  opts: { requiresGrad?: boolean; dtype?: 'float32' | 'int32'; label?: string } = {},
): Tensor {
  const typedArray = ArrayBuffer.isView(data) && !(data instanceof DataView);
  if (!Array.isArray(data) && !typedArray) {
    throw new DataError(`tensor(): data must be an array or a typed array of numbers, got ${describeValue(data)}`);
  }
  if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
    throw new DataError('tensor(): BigInt data is not supported; convert it to numbers (float32 or int32)');
  }
  const dtype = checkDtype('tensor()', opts.dtype ?? 'float32');
  if (Array.isArray(data)) {
    const bad = data.findIndex((v) => typeof v !== 'number');
    if (bad >= 0) throw new DataError(`tensor(): element ${bad} is ${describeValue(data[bad])}, not a number`);
  }
  if (dtype === 'int32') {
    const bad = Array.prototype.findIndex.call(data, (v: number) => !Number.isInteger(v) || v < -(2 ** 31) || v >= 2 ** 31);
    if (bad >= 0) throw new DataError(`tensor(): element ${bad} is ${data[bad]}, not an int32 (an integer in [-2^31, 2^31))`);
    if (opts.requiresGrad) throw new DataError('tensor(): only float32 tensors can require gradients, not int32 ones');
  }
  const n = Array.isArray(shape) ? shape.reduce((a, b) => a * b, 1) : Number.NaN;
  if (data.length !== n) throw new DataError(`tensor(): ${data.length} values do not fill shape ${shapeStr(shape)} (${n} elements)`);
  const t = Tensor.empty(shape, { dtype, label: opts.label });
  const typed = dtype === 'int32' ? Int32Array.from(data) : data instanceof Float32Array ? data : Float32Array.from(data);
  t.gpu.write(t.buffer, typed);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

export function full(shape: readonly number[], value: number, opts: { requiresGrad?: boolean; label?: string } = {}): Tensor {
  if (typeof value !== 'number') throw new DataError(`full(): the fill value must be a number, got ${describeValue(value)}`);
  const t = Tensor.empty(shape, { label: opts.label });
  ew.fill(t.gpu, t.buffer, { n: t.size, value });
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}
export const zeros = (shape: readonly number[], opts: { requiresGrad?: boolean; label?: string } = {}) => full(shape, 0, opts);
export const ones = (shape: readonly number[], opts: { requiresGrad?: boolean; label?: string } = {}) => full(shape, 1, opts);

// ---------------------------------------------------------------- elementwise

function sameShape(op: string, a: Tensor, b: Tensor): void {
  expectFloat(op, 'a', a);
  expectFloat(op, 'b', b);
  if (a.size !== b.size || a.ndim !== b.ndim || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new ShapeError(`${op}: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} differ (broadcasting is not supported)`);
  }
}

export function add(a: Tensor, b: Tensor): Tensor {
  sameShape('add', a, b);
  const y = like(a, 'add');
  ew.add(gpuOf(a), a.buffer, b.buffer, y.buffer, { n: a.size });
  // da = dy, db = dy
  return record(y, 'add', [a, b], (dy) => [dy, dy]);
}

export function sub(a: Tensor, b: Tensor): Tensor {
  sameShape('sub', a, b);
  const y = like(a, 'sub');
  ew.sub(gpuOf(a), a.buffer, b.buffer, y.buffer, { n: a.size });
  // da = dy, db = -dy
  return record(y, 'sub', [a, b], (dy) => [dy, mulScalar(dy, -1)]);
}

export function mul(a: Tensor, b: Tensor): Tensor {
  sameShape('mul', a, b);
  const y = like(a, 'mul');
  ew.mul(gpuOf(a), a.buffer, b.buffer, y.buffer, { n: a.size });
  // da = dy * b, db = dy * a   (saves a and b)
  return record(y, 'mul', [a, b], (dy) => [mul(dy, b), mul(dy, a)]);
}

export function mulScalar(a: Tensor, alpha: number): Tensor {
  expectFloat('mulScalar', 'input', a);
  if (typeof alpha !== 'number') throw new DataError(`mulScalar: alpha must be a number, got ${describeValue(alpha)}`);
  const y = like(a, 'mulScalar');
  ew.scale(gpuOf(a), a.buffer, y.buffer, { n: a.size, alpha });
  // da = alpha * dy
  return record(y, 'mulScalar', [a], (dy) => [mulScalar(dy, alpha)]);
}

export function relu(x: Tensor): Tensor {
  expectFloat('relu', 'input', x);
  const y = like(x, 'relu');
  ew.relu(gpuOf(x), x.buffer, y.buffer, x.size);
  // dx = dy * (x > 0)   (saves x)
  return record(y, 'relu', [x], (dy) => {
    const dx = like(x, 'relu grad');
    ew.reluBackward(gpuOf(x), x.buffer, dy.buffer, dx.buffer, x.size);
    return [dx];
  });
}

export function tanh(x: Tensor): Tensor {
  expectFloat('tanh', 'input', x);
  const y = like(x, 'tanh');
  ew.tanh(gpuOf(x), x.buffer, y.buffer, { n: x.size });
  // dx = dy·(1 − y²)   (saves y)
  return record(y, 'tanh', [x], (dy) => {
    const dx = like(x, 'tanh grad');
    ew.tanhBackward(gpuOf(x), y.buffer, dy.buffer, dx.buffer, { n: x.size });
    return [dx];
  });
}

export function sigmoid(x: Tensor): Tensor {
  expectFloat('sigmoid', 'input', x);
  const y = like(x, 'sigmoid');
  ew.sigmoid(gpuOf(x), x.buffer, y.buffer, { n: x.size });
  // dx = dy·y·(1 − y)   (saves y)
  return record(y, 'sigmoid', [x], (dy) => {
    const dx = like(x, 'sigmoid grad');
    ew.sigmoidBackward(gpuOf(x), y.buffer, dy.buffer, dx.buffer, { n: x.size });
    return [dx];
  });
}

let dropoutCalls = 0;
/**
 * Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1−p); the identity
 * when not training. The mask comes from a counter-based RNG keyed by (seed, step), so backward recomputes
 * it instead of saving it. `step` defaults to a counter that advances at every call.
 */
export function dropout(x: Tensor, p = 0.5, training = true, opts: { seed?: number; step?: number } = {}): Tensor {
  if (!(p >= 0 && p <= 1)) throw new DataError(`dropout: p must be in [0, 1], got ${p}`);
  expectFloat('dropout', 'input', x);
  if (!training || p === 0) return x;
  // The mask stream is keyed by 32-bit seed and step: larger values would alias silently.
  const seed = expectInteger('dropout', 'seed', opts.seed ?? 0x5eed, 0);
  const step = expectInteger('dropout', 'step', opts.step ?? dropoutCalls++, 0);
  if (seed > 0xffffffff || step > 0xffffffff) throw new DataError(`dropout: seed ${seed} and step ${step} must be below 2^32`);
  const y = like(x, 'dropout');
  const sizes = { n: x.size, p, seed, step };
  drop.dropout(gpuOf(x), x.buffer, y.buffer, sizes);
  // dx = dy * mask / (1 - p)   (saves nothing: the mask is recomputed from seed and step)
  return record(y, 'dropout', [x], (dy) => {
    const dx = like(x, 'dropout grad');
    drop.dropoutBackward(gpuOf(x), dy.buffer, dx.buffer, sizes);
    return [dx];
  });
}

// ---------------------------------------------------------------- reductions

export function sum(x: Tensor): Tensor {
  expectFloat('sum', 'input', x);
  const y = Tensor.empty([], { gpu: x.gpu, label: 'sum' });
  red.sum(gpuOf(x), x.buffer, y.buffer, { n: x.size });
  // dx = dy broadcast
  return record(y, 'sum', [x], (dy) => [broadcastScalar(dy, x.shape, 1)]);
}

export function mean(x: Tensor): Tensor {
  expectFloat('mean', 'input', x);
  const y = Tensor.empty([], { gpu: x.gpu, label: 'mean' });
  red.mean(gpuOf(x), x.buffer, y.buffer, { n: x.size });
  // dx = dy / n broadcast
  return record(y, 'mean', [x], (dy) => [broadcastScalar(dy, x.shape, 1 / x.size)]);
}

/** alpha * s broadcast to `shape`, where s is a one-element tensor. */
function broadcastScalar(s: Tensor, shape: readonly number[], alpha: number): Tensor {
  const y = Tensor.empty(shape, { gpu: s.gpu, label: 'broadcast' });
  ew.broadcastScalar(gpuOf(s), s.buffer, y.buffer, { n: y.size, alpha });
  return y;
}

// ---------------------------------------------------------------- matmul and linear

/** a[M,K] · b[K,N]. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  expectShape('matmul', 'a', a, 2, '[M, K]');
  expectShape('matmul', 'b', b, 2, '[K, N]');
  const [M, K] = a.shape;
  const [K2, N] = b.shape;
  if (K !== K2) throw new ShapeError(`matmul: inner sizes differ: a ${shapeStr(a.shape)} · b ${shapeStr(b.shape)}`);
  const y = Tensor.empty([M, N], { gpu: a.gpu, label: 'matmul' });
  mm.matmul(gpuOf(a), a.buffer, b.buffer, y.buffer, { M, N, K });
  // da = dy · bᵀ, db = aᵀ · dy   (saves a and b)
  return record(y, 'matmul', [a, b], (dy) => {
    const da = a.requiresGrad ? Tensor.empty(a.shape, { gpu: a.gpu, label: 'matmul grad a' }) : null;
    const db = b.requiresGrad ? Tensor.empty(b.shape, { gpu: a.gpu, label: 'matmul grad b' }) : null;
    if (da) mm.matmul(gpuOf(a), dy.buffer, b.buffer, da.buffer, { M, N: K, K: N, transB: true });
    if (db) mm.matmul(gpuOf(a), a.buffer, dy.buffer, db.buffer, { M: K, N, K: M, transA: true });
    return [da, db];
  });
}

/** y = x · wᵀ + b, with PyTorch's layout w[out, in]. */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  return linearOp('linear', x, w, b, false);
}

/** relu(linear(x, w, b)) with the ReLU in the product's epilogue, and its backward folded into the gradient products. */
export function linearRelu(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  return linearOp('linearRelu', x, w, b, true);
}

function linearOp(op: string, x: Tensor, w: Tensor, b: Tensor | null, relu: boolean): Tensor {
  expectShape(op, 'input', x, 2, '[batch, in_features]');
  expectShape(op, 'weight', w, 2, '[out_features, in_features]');
  const [batch, inFeatures] = x.shape;
  const [outFeatures, wIn] = w.shape;
  if (wIn !== inFeatures) {
    throw new ShapeError(`${op}: input ${shapeStr(x.shape)} has ${inFeatures} features but weight ${shapeStr(w.shape)} expects ${wIn}`);
  }
  if (b) expectFloat('linear', 'bias', b);
  if (b && (b.ndim !== 1 || b.shape[0] !== outFeatures)) {
    throw new ShapeError(`${op}: bias ${shapeStr(b.shape)} must be [${outFeatures}] for weight ${shapeStr(w.shape)}`);
  }
  const sizes = { batch, inFeatures, outFeatures, relu };
  const y = Tensor.empty([batch, outFeatures], { gpu: x.gpu, label: op });
  lin.linearForward(gpuOf(x), x.buffer, w.buffer, b?.buffer ?? null, y.buffer, sizes);
  // dx = dy'·w, dw = dy'ᵀ·x, db = Σ_batch dy', with dy' = dy, or dy·(y > 0) after the ReLU   (saves x, w, and y with the ReLU)
  const inputs = b ? [x, w, b] : [x, w];
  return record(y, op, inputs, (dy) => {
    const dx = x.requiresGrad ? like(x, `${op} grad x`) : null;
    const dw = w.requiresGrad ? like(w, `${op} grad w`) : null;
    const db = b?.requiresGrad ? like(b, `${op} grad b`) : null;
    lin.linearBackward(gpuOf(x), x.buffer, w.buffer, dy.buffer, dx?.buffer ?? null, dw?.buffer ?? null, db?.buffer ?? null, {
      ...sizes,
      reluOutput: relu ? y.buffer : undefined,
    });
    return [dx, dw, db];
  });
}

// ---------------------------------------------------------------- convolution and pooling

/** 2-D cross-correlation over NCHW input with weight [O, C, KH, KW], as torch.nn.functional.conv2d. */
export function conv2d(x: Tensor, w: Tensor, b: Tensor | null = null, opts: { stride?: number; padding?: number } = {}): Tensor {
  const { sizes, shape } = conv2dSizes('conv2d', x, w, b, opts);
  const y = Tensor.empty(shape, { gpu: x.gpu, label: 'conv2d' });
  conv.conv2d(gpuOf(x), x.buffer, w.buffer, b?.buffer ?? null, y.buffer, sizes);
  return record(y, 'conv2d', b ? [x, w, b] : [x, w], (dy) => conv2dBackward(x, w, b, dy, sizes));
}

/**
 * relu(max_pool2d(conv2d(x, w, b), 2)) in one kernel where the adapter has one (the seed's "F.relu(F.max_pool2d(
 * conv(x), 2))"): the same values, pooled windows and gradients as the three ops, without storing the
 * convolution's output. Its gradient: the pool's scatter of dy (windows the ReLU zeroed get none), then
 * conv2d's backward.
 */
export function conv2dMaxPool2dRelu(
  x: Tensor,
  w: Tensor,
  b: Tensor | null = null,
  opts: { stride?: number; padding?: number } = {},
): Tensor {
  const op = 'conv2dMaxPool2dRelu';
  const { sizes, shape } = conv2dSizes(op, x, w, b, opts);
  const [N, O, OH, OW] = shape;
  if (OH < 2 || OW < 2) throw new ShapeError(`${op}: window 2x2 is larger than the convolution's output ${shapeStr(shape)}`);
  const pooled = [N, O, Math.floor(OH / 2), Math.floor(OW / 2)];
  const y = Tensor.empty(pooled, { gpu: x.gpu, label: op });
  // where the pool was: its argmax, or where a tuner may pick the weight gradient that reads them, window codes
  const codes = conv.poolCodesUseful(gpuOf(x), sizes)
    ? Tensor.empty([N, O, pooled[2], pooled[3] / 4], { gpu: x.gpu, dtype: 'int32', label: `${op} window codes` })
    : null;
  const argmax = codes ? null : Tensor.empty(pooled, { gpu: x.gpu, dtype: 'int32', label: `${op} argmax` });
  conv.conv2dMaxPool2dRelu(gpuOf(x), x.buffer, w.buffer, b?.buffer ?? null, y.buffer, argmax?.buffer ?? null, sizes, codes?.buffer ?? null);
  // (saves x, w and the argmax or codes)
  return record(y, op, b ? [x, w, b] : [x, w], (dy) => {
    const g = gpuOf(x);
    const dx = x.requiresGrad ? like(x, 'conv2d grad x') : null;
    const dw = w.requiresGrad ? like(w, 'conv2d grad w') : null;
    const db = b?.requiresGrad ? like(b, 'conv2d grad b') : null;
    // The convolution's gradient where dx (with the argmax) or a bias without dw needs it; with codes, dx reads dy
    // and the codes itself, as dw reads dy and the argmax or codes (or it).
    const needed = db && !dw ? true : !!dx && !codes;
    const dconv = needed ? Tensor.empty(shape, { gpu: x.gpu, label: `${op} grad of the convolution` }) : null;
    const scatter = { N, C: O, H: OH, W: OW, relu: true };
    if (dconv && codes) pool.maxPool2dBackwardCodes(g, dy.buffer, codes.buffer, dconv.buffer, scatter);
    else if (dconv && argmax) pool.maxPool2dBackward(g, dy.buffer, argmax.buffer, dconv.buffer, scatter);
    const indices = { argmax: argmax?.buffer ?? null, codes: codes?.buffer ?? null };
    if (dx && dconv) conv.conv2dBackwardInput(g, dconv.buffer, w.buffer, dx.buffer, sizes);
    else if (dx) conv.conv2dPoolReluBackwardInput(g, { dy: dy.buffer, ...indices, w: w.buffer, dx: dx.buffer }, sizes);
    if (dw) {
      const buffers = { x: x.buffer, dy: dy.buffer, ...indices, dconv: dconv?.buffer ?? null, dw: dw.buffer };
      conv.conv2dPoolReluBackwardWeight(g, { ...buffers, db: db?.buffer ?? null }, sizes); // db in the same dispatch
    } else if (db && dconv) conv.conv2dBackwardBias(g, dconv.buffer, db.buffer, { N, O, OH, OW });
    return [dx, dw, db];
  });
}

/** conv2d's checked sizes and output shape [N, O, OH, OW]. */
function conv2dSizes(op: string, x: Tensor, w: Tensor, b: Tensor | null, opts: { stride?: number; padding?: number }) {
  expectShape(op, 'input', x, 4, '[N, C, H, W]');
  expectShape(op, 'weight', w, 4, '[out_channels, in_channels, kH, kW]');
  const [N, C, H, W] = x.shape;
  const [O, WC, KH, KW] = w.shape;
  const stride = expectInteger(op, 'stride', opts.stride ?? 1, 1);
  const padding = expectInteger(op, 'padding', opts.padding ?? 0, 0);
  if (WC !== C) throw new ShapeError(`${op}: input ${shapeStr(x.shape)} has ${C} channels but weight ${shapeStr(w.shape)} expects ${WC}`);
  if (b) expectFloat(op, 'bias', b);
  if (b && (b.ndim !== 1 || b.shape[0] !== O)) throw new ShapeError(`${op}: bias ${shapeStr(b.shape)} must be [${O}]`);
  const OH = Math.floor((H + 2 * padding - KH) / stride) + 1;
  const OW = Math.floor((W + 2 * padding - KW) / stride) + 1;
  if (OH < 1 || OW < 1) {
    throw new ShapeError(
      `${op}: kernel ${KH}x${KW} is larger than the padded input ${H + 2 * padding}x${W + 2 * padding} (input ${shapeStr(x.shape)})`,
    );
  }
  return { sizes: { N, C, H, W, O, KH, KW, stride, padding }, shape: [N, O, OH, OW] };
}

// dx = dy ⋆ flip(w) (full correlation), dw = Σ_n,oh,ow dy · x, db = Σ_n,oh,ow dy   (saves x and w)
function conv2dBackward(x: Tensor, w: Tensor, b: Tensor | null, dy: Tensor, sizes: conv.Conv2dSizes): (Tensor | null)[] {
  const g = gpuOf(x);
  const dx = x.requiresGrad ? like(x, 'conv2d grad x') : null;
  const dw = w.requiresGrad ? like(w, 'conv2d grad w') : null;
  const db = b?.requiresGrad ? like(b, 'conv2d grad b') : null;
  if (dx) conv.conv2dBackwardInput(g, dy.buffer, w.buffer, dx.buffer, sizes);
  if (dw)
    conv.conv2dBackwardWeight(g, x.buffer, dy.buffer, dw.buffer, sizes, db?.buffer ?? null); // db in the same dispatch
  else if (db) {
    const [N, O, OH, OW] = dy.shape;
    conv.conv2dBackwardBias(g, dy.buffer, db.buffer, { N, O, OH, OW });
  }
  return [dx, dw, db];
}

/** Max pooling over NCHW, floor of odd sizes as PyTorch. */
export function maxPool2d(x: Tensor, kernel = 2, stride = kernel): Tensor {
  return pool2d('maxPool2d', x, kernel, stride, false);
}

/** relu(maxPool2d(x)) in one kernel each way (the seed's "F.relu(F.max_pool2d(x, 2))"). */
export function maxPool2dRelu(x: Tensor, kernel = 2, stride = kernel): Tensor {
  return pool2d('maxPool2dRelu', x, kernel, stride, true);
}

function pool2d(op: string, x: Tensor, kernel: number, stride: number, relu: boolean): Tensor {
  expectShape(op, 'input', x, 4, '[N, C, H, W]');
  expectInteger(op, 'kernel size', kernel, 1);
  expectInteger(op, 'stride', stride, 1);
  const [N, C, H, W] = x.shape;
  const OH = Math.floor((H - kernel) / stride) + 1;
  const OW = Math.floor((W - kernel) / stride) + 1;
  if (OH < 1 || OW < 1) throw new ShapeError(`${op}: window ${kernel}x${kernel} is larger than input ${shapeStr(x.shape)}`);
  const sizes = { N, C, H, W, kernel, stride, relu };
  const y = Tensor.empty([N, C, OH, OW], { gpu: x.gpu, label: op });
  const argmax = Tensor.empty([N, C, OH, OW], { gpu: x.gpu, dtype: 'int32', label: `${op} argmax` });
  pool.maxPool2d(gpuOf(x), x.buffer, y.buffer, argmax.buffer, sizes);
  // dx = scatter of dy to each window's argmax; with relu, windows whose max was ≤ 0 have argmax −1 and
  // scatter nothing, i.e. dy·(y > 0)   (saves argmax)
  return record(y, op, [x], (dy) => {
    const dx = like(x, `${op} grad`);
    pool.maxPool2dBackward(gpuOf(x), dy.buffer, argmax.buffer, dx.buffer, sizes);
    return [dx];
  });
}

// ---------------------------------------------------------------- batch norm

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
  /** Running variance from the unbiased batch variance (PyTorch's nn.BatchNorm2d, default) or the biased one (the seed's CustomBatchNorm). */
  unbiasedRunningVar?: boolean;
  /**
   * Training only: dropout(batchNorm(x)) in the same kernels, with dropout's mask of (seed, step) (see
   * F.dropout); the result is bit for bit F.dropout(F.batchNorm(x), p, true, { seed, step }).
   */
  dropout?: { p: number; seed: number; step: number };
}

/**
 * Batch normalisation per channel, as torch.nn.functional.batch_norm: over N, H, W of NCHW input, or over N
 * of [N, C] input (BatchNorm1d; the same kernels with H = W = 1).
 * Training: normalises with the batch's mean and biased variance and updates the running statistics in
 * place; evaluation: normalises with the running statistics (and differentiates with them held fixed).
 */
export function batchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor,
  bias: Tensor,
  opts: BatchNormOptions,
): Tensor {
  if (x.ndim !== 2 && x.ndim !== 4) throw new ShapeError(`batchNorm: input must be [N, C] or [N, C, H, W], got ${shapeStr(x.shape)}`);
  expectFloat('batchNorm', 'input', x);
  const [N, C, H, W] = x.ndim === 2 ? [x.shape[0], x.shape[1], 1, 1] : x.shape;
  for (const [name, t] of [
    ['weight', weight],
    ['bias', bias],
    ['running_mean', runningMean],
    ['running_var', runningVar],
  ] as const) {
    if (t && (t.ndim !== 1 || t.shape[0] !== C))
      throw new ShapeError(`batchNorm: ${name} ${shapeStr(t.shape)} must be [${C}] for input ${shapeStr(x.shape)}`);
  }
  const g = gpuOf(x);
  const eps = expectNumber('batchNorm', 'eps', opts.eps ?? 1e-5, 0);
  const momentum = expectNumber('batchNorm', 'momentum', opts.momentum ?? 0.1, 0, 1);
  for (const t of [weight, bias, runningMean, runningVar]) if (t) expectFloat('batchNorm', 'a parameter or statistic', t);
  const d = opts.dropout;
  if (d) expectNumber('batchNorm', 'dropout p', d.p, 0, 1);
  const dropout = opts.training && d && d.p > 0 ? d : undefined;
  const sizes = { N, C, H, W, eps, momentum, unbiasedRunningVar: opts.unbiasedRunningVar ?? true, dropout };
  const y = like(x, 'batchNorm');
  if (!opts.training) {
    if (!runningMean || !runningVar) throw new DataError('batchNorm: evaluation mode needs running_mean and running_var');
    bn.batchNormForwardEval(g, x.buffer, weight.buffer, bias.buffer, runningMean.buffer, runningVar.buffer, y.buffer, sizes);
    // The statistics are constants here: dx = dy·γ/√(r_σ² + ε), dγ = Σ dy·x̂, dβ = Σ dy with
    // x̂ = (x − r_μ)/√(r_σ² + ε)   (saves x; reads the running statistics as they are when backward runs)
    return record(y, 'batchNorm(eval)', [x, weight, bias], (dy) => {
      const dx = like(x, 'batchNorm(eval) grad x');
      const dgamma = like(weight, 'batchNorm(eval) grad weight');
      const dbeta = like(bias, 'batchNorm(eval) grad bias');
      bn.batchNormBackwardEval(
        g,
        x.buffer,
        dy.buffer,
        weight.buffer,
        runningMean.buffer,
        runningVar.buffer,
        dx.buffer,
        dgamma.buffer,
        dbeta.buffer,
        sizes,
      );
      return [dx, dgamma, dbeta];
    });
  }
  if (N * H * W < 2) throw new ShapeError(`batchNorm: training needs more than one value per channel, got input ${shapeStr(x.shape)}`);
  const mean = Tensor.empty([C], { gpu: x.gpu, label: 'batchNorm mean' });
  const invStd = Tensor.empty([C], { gpu: x.gpu, label: 'batchNorm invStd' });
  const running = runningMean && runningVar ? { mean: runningMean.buffer, var: runningVar.buffer } : null;
  bn.batchNormForwardTrain(g, x.buffer, weight.buffer, bias.buffer, y.buffer, mean.buffer, invStd.buffer, sizes, running);
  // dx = γ·invStd/M·(M·dy − Σdy − x̂·Σ(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy   (saves x, mean, invStd); with dropout,
  // dy is the dropout output's gradient times the mask/(1 − p), recomputed from (seed, step) as it is loaded
  return record(y, 'batchNorm', [x, weight, bias], (dy) => {
    const dx = like(x, 'batchNorm grad x');
    const dgamma = like(weight, 'batchNorm grad weight');
    const dbeta = like(bias, 'batchNorm grad bias');
    bn.batchNormBackward(g, x.buffer, dy.buffer, weight.buffer, mean.buffer, invStd.buffer, dx.buffer, dgamma.buffer, dbeta.buffer, sizes);
    return [dx, dgamma, dbeta];
  });
}

// ---------------------------------------------------------------- log-softmax and losses

/** log(softmax(x)) along the last dimension of a [rows, cols] tensor (dim=1 in the seed). */
export function logSoftmax(x: Tensor, dim = 1): Tensor {
  expectShape('logSoftmax', 'input', x, 2, '[batch, classes]');
  if (dim !== 1 && dim !== -1) throw new ShapeError(`logSoftmax: only dim=1 (the class dimension) is supported, got dim=${dim}`);
  const [rows, cols] = x.shape;
  const y = like(x, 'logSoftmax');
  sm.logSoftmax(gpuOf(x), x.buffer, y.buffer, { rows, cols });
  // dx = dy − exp(y)·Σ_row dy   (saves y)
  return record(y, 'logSoftmax', [x], (dy) => {
    const dx = like(x, 'logSoftmax grad');
    sm.logSoftmaxBackward(gpuOf(x), y.buffer, dy.buffer, dx.buffer, { rows, cols });
    return [dx];
  });
}

function checkTarget(op: string, input: Tensor, target: Tensor): void {
  expectTensor(op, 'target', target);
  if (target.dtype !== 'int32' || target.ndim !== 1 || target.shape[0] !== input.shape[0]) {
    throw new ShapeError(
      `${op}: target must be an int32 tensor [${input.shape[0]}] of class indices, got ${target.dtype} ${shapeStr(target.shape)}`,
    );
  }
}

/** Mean negative log-likelihood of the target classes, from log-probabilities [batch, classes]. */
export function nllLoss(logp: Tensor, target: Tensor): Tensor {
  expectShape('nllLoss', 'input', logp, 2, '[batch, classes]');
  checkTarget('nllLoss', logp, target);
  const [rows, cols] = logp.shape;
  const loss = Tensor.empty([], { gpu: logp.gpu, label: 'nllLoss' });
  sm.nllLoss(gpuOf(logp), logp.buffer, target.buffer, loss.buffer, { rows, cols, op: 'nllLoss' });
  // dlogp[r, t_r] = −dy / rows, 0 elsewhere   (saves target)
  return record(loss, 'nllLoss', [logp], (dy) => {
    const dx = like(logp, 'nllLoss grad');
    sm.nllLossBackward(gpuOf(logp), target.buffer, dy.buffer, dx.buffer, { rows, cols, op: 'nllLoss' });
    return [dx];
  });
}

/**
 * Mean cross-entropy of logits [batch, classes] (= nllLoss(logSoftmax(x))), fused into one kernel. With
 * gradients on, the same kernel writes the gradient for `loss.backward()` (dy = 1); `addTo` (a one-element
 * tensor) gets the loss added to it there too: a running sum on the GPU, such as an epoch's.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: { addTo?: Tensor } = {}): Tensor {
  expectShape('crossEntropy', 'input', logits, 2, '[batch, classes]');
  checkTarget('crossEntropy', logits, target);
  if (opts.addTo) expectFloat('crossEntropy', 'addTo', opts.addTo);
  const [rows, cols] = logits.shape;
  const loss = Tensor.empty([], { gpu: logits.gpu, label: 'crossEntropy' });
  const logp = like(logits, 'crossEntropy logp');
  // The gradient for dy = 1 (loss.backward()), written by the forward kernel itself when gradients are on.
  const dlogits = needsGrad([logits]) ? like(logits, 'crossEntropy grad') : null;
  sm.logSoftmaxNllLoss(
    gpuOf(logits),
    logits.buffer,
    target.buffer,
    logp.buffer,
    loss.buffer,
    { rows, cols, op: 'crossEntropy' },
    {
      dlogits: dlogits?.buffer,
      sum: opts.addTo?.buffer,
    },
  );
  // dlogits = dy · (softmax(x) − onehot(t)) / rows   (saves log-probabilities and target; for dy = 1, the
  // forward's own dlogits)
  return record(
    loss,
    'crossEntropy',
    [logits],
    (dy) => {
      const dx = like(logits, 'crossEntropy grad');
      sm.logSoftmaxNllLossBackward(gpuOf(logits), logp.buffer, target.buffer, dy.buffer, dx.buffer, { rows, cols, op: 'crossEntropy' });
      return [dx];
    },
    () => [dlogits],
  );
}

// ---------------------------------------------------------------- autograd plumbing

installGradHelpers(
  (t, value) => {
    const y = Tensor.empty(t.shape, { gpu: t.gpu, label: 'grad seed' });
    ew.fill(t.gpu, y.buffer, { n: y.size, value });
    return y;
  },
  (a, b) => {
    const y = like(a, 'grad sum');
    ew.add(gpuOf(a), a.buffer, b.buffer, y.buffer, { n: a.size });
    return y;
  },
);
