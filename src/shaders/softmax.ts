// Row-wise log-softmax and the classification losses on a [rows, cols] float32 matrix (row-major), targets i32.
//   logSoftmax:     y[r,j] = x[r,j] − m_r − log Σ_k exp(x[r,k] − m_r), m_r = max_k x[r,k] (stable for any |x|)
//   nllLoss:        L = −s·Σ_r logp[r, t_r], s = 1/rows (reduction 'mean', PyTorch's default) or 1 ('sum')
//   fused CE:       L = s·Σ_r (lse_r − x[r, t_r]) from logits, optionally writing logp, dlogits and the
//                   correct count in the same pass
//   correctCount:   #{r : argmax_j x[r,j] = t_r}, first maximum on ties (torch.argmax)
// Losses and counts can accumulate (+=) into their one-element buffers, so a training loop sums them over an
// epoch on the GPU and reads them back once. A target outside [0, cols) adds nothing to the loss, gradient
// or count (PyTorch raises instead); the mean still divides by rows.
// Cost: ~4 flops per element (one exp), 8 bytes per element for log-softmax; losses read 4 bytes per row.
//
// log_softmax_v1       one invocation per row, three scalar passes over its cols (cols is 10 in the seed).
// log_softmax_v2       one workgroup of 64 per row: strided passes, max and sum as tree reductions (for GPUs
//                      and wide rows, cols ≥ 256; llvmpipe always takes v1).
// log_softmax_grad_v1  dx = dy − exp(y)·Σ_row dy, one invocation per row.
// <loss>_v1            (nll_loss, cross_entropy, correct_count) a single invocation looping over the rows: the
//                      simplest-correct fallback.
// <loss>_v2            one workgroup of 64, rows strided over invocations, a tree reduction (6 barriers). Also
//                      the faster on llvmpipe: fused cross-entropy at 64x10 took 10 µs against v1's 21-23 µs
//                      (serial loops run one SIMD lane), and 256 invocations were slower (18 µs).
// nll_loss_grad_v1     dlogp = −g at each target, 0 elsewhere; one invocation per element.
// cross_entropy_grad_v1  dlogits = g·(exp(logp) − onehot); one invocation per element.
//   (g = scale·dy[0]·s, dy the upstream gradient of L when given.)
// Chosen: log-softmax v1 except on GPUs with cols ≥ 256; the losses v2 everywhere; `variant` forces one (the
// tests run both).
import { ShapeError } from '../errors.js';
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, f32, grid1d, memoKernel, uniforms } from './common.js';

export type SoftmaxVariant = 'v1' | 'v2';
export const SOFTMAX_VARIANTS: readonly SoftmaxVariant[] = ['v1', 'v2'];

export interface SoftmaxSizes {
  rows: number;
  cols: number;
  /** Force a kernel version; by default log-softmax takes v1 (v2 on GPUs for cols ≥ 256), the losses v2. */
  variant?: SoftmaxVariant;
}

export interface LossSizes extends SoftmaxSizes {
  /** 'mean' (default) divides the summed loss by rows, as PyTorch; 'sum' does not. */
  reduction?: 'mean' | 'sum';
  /** loss[0] += L and correct[0] += count instead of overwriting them. */
  accumulate?: boolean;
}

export interface LossGradSizes extends SoftmaxSizes {
  reduction?: 'mean' | 'sum';
  /** Multiplies the gradient (with dy[0] when an upstream gradient buffer is given). Default 1. */
  scale?: number;
}

/** Extra outputs of the fused forward: the loss's gradient wrt the logits (times `scale`) and the correct count. */
export interface CrossEntropyOutputs {
  dlogits?: GPUBuffer;
  correct?: GPUBuffer;
  /** Multiplies dlogits (default 1). */
  scale?: number;
}

const ROW_WG = 64;
const RED_WG = 64;
const V2_ROW_WG = 64;

function check(op: string, s: SoftmaxSizes): void {
  if (!Number.isInteger(s.rows) || s.rows < 0 || !Number.isInteger(s.cols) || s.cols < 1) {
    throw new ShapeError(`${op}: rows = ${s.rows}, cols = ${s.cols} must be integers with cols ≥ 1`);
  }
}
const lossScale = (s: { rows: number; reduction?: 'mean' | 'sum' }) => (s.reduction === 'sum' || s.rows === 0 ? 1 : 1 / s.rows);

const PARAMS = 'struct Params { rows: u32, cols: u32, scale: f32, gscale: f32 }';

// ---- log-softmax -------------------------------------------------------------------------------------------

const logSoftmaxV1 = memoKernel(() => ({
  name: 'log_softmax_v1',
  wgsl: /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${ROW_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  var m = x[base];
  for (var j = 1u; j < p.cols; j++) { m = max(m, x[base + j]); }
  var s = 0.0;
  for (var j = 0u; j < p.cols; j++) { s += exp(x[base + j] - m); }
  let lse = m + log(s);
  for (var j = 0u; j < p.cols; j++) { y[base + j] = x[base + j] - lse; }
}`,
}));

const logSoftmaxV2 = memoKernel(() => ({
  name: 'log_softmax_v2',
  wgsl: /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
var<workgroup> red: array<f32, ${V2_ROW_WG}>;
@compute @workgroup_size(${V2_ROW_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                             @builtin(local_invocation_index) t: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= p.rows) { return; } // uniform per workgroup
  let base = r * p.cols;
  var m = x[base];
  for (var j = t; j < p.cols; j += ${V2_ROW_WG}u) { m = max(m, x[base + j]); }
  red[t] = m;
  for (var h = ${V2_ROW_WG / 2}u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { red[t] = max(red[t], red[t + h]); }
  }
  workgroupBarrier();
  m = red[0];
  workgroupBarrier();
  var s = 0.0;
  for (var j = t; j < p.cols; j += ${V2_ROW_WG}u) { s += exp(x[base + j] - m); }
  red[t] = s;
  for (var h = ${V2_ROW_WG / 2}u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { red[t] += red[t + h]; }
  }
  workgroupBarrier();
  let lse = m + log(red[0]);
  for (var j = t; j < p.cols; j += ${V2_ROW_WG}u) { y[base + j] = x[base + j] - lse; }
}`,
}));

/** y = log_softmax(x) along each row of x [rows, cols]. */
export function logSoftmax(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, sizes: SoftmaxSizes): void {
  check('logSoftmax', sizes);
  if (sizes.rows === 0) return;
  const params = uniforms(sizes.rows, sizes.cols);
  const variant = sizes.variant ?? (!gpu.isSoftware && sizes.cols >= 256 ? 'v2' : 'v1');
  if (variant === 'v2') gpu.dispatch({ kernel: logSoftmaxV2(), params, buffers: [x, y], workgroups: grid1d(sizes.rows, 1) });
  else gpu.dispatch({ kernel: logSoftmaxV1(), params, buffers: [x, y], workgroups: [Math.ceil(sizes.rows / ROW_WG)] });
}

const logSoftmaxGradV1 = memoKernel(() => ({
  name: 'log_softmax_grad_v1',
  wgsl: /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(${ROW_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  var s = 0.0;
  for (var j = 0u; j < p.cols; j++) { s += dy[base + j]; }
  for (var j = 0u; j < p.cols; j++) { dx[base + j] = dy[base + j] - exp(y[base + j]) * s; }
}`,
}));

// dx = dy − exp(y)·Σ_row dy   (saved: y, the forward's output)
export function logSoftmaxBackward(gpu: Gpu, y: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, sizes: SoftmaxSizes): void {
  check('logSoftmaxBackward', sizes);
  if (sizes.rows === 0) return;
  gpu.dispatch({ kernel: logSoftmaxGradV1(), params: uniforms(sizes.rows, sizes.cols), buffers: [y, dy, dx], workgroups: [Math.ceil(sizes.rows / ROW_WG)] });
}

export const logSoftmaxCost = ({ rows, cols }: SoftmaxSizes): Cost => ({ flops: 4 * rows * cols, bytes: 8 * rows * cols });

// ---- losses: one generator for NLL, fused cross-entropy and the correct count --------------------------------

interface LossKernelSpec {
  /** 'nll' reads log-probabilities, 'ce' logits, 'correct' any scores (argmax only). */
  kind: 'nll' | 'ce' | 'correct';
  logp: boolean; // ce: write log-probabilities
  dlogits: boolean; // ce: write the gradient
  correct: boolean; // count argmax hits
  accumulate: boolean;
  variant: SoftmaxVariant;
}

const lossKernel = memoKernel((k: LossKernelSpec) => {
  const hasLoss = k.kind !== 'correct';
  const needArgmax = k.correct;
  let b = 1;
  const decl = [
    `@group(0) @binding(${b++}) var<storage, read> x: array<f32>;`,
    `@group(0) @binding(${b++}) var<storage, read> tgt: array<i32>;`,
    k.logp ? `@group(0) @binding(${b++}) var<storage, read_write> logp: array<f32>;` : '',
    k.dlogits ? `@group(0) @binding(${b++}) var<storage, read_write> dlogits: array<f32>;` : '',
    hasLoss ? `@group(0) @binding(${b++}) var<storage, read_write> loss: array<f32>;` : '',
    k.correct ? `@group(0) @binding(${b++}) var<storage, read_write> correct: array<u32>;` : '',
  ];
  // Per row: the loss term and whether the argmax hit the target.
  const row = /* wgsl */ `
struct Row { loss: f32, hit: u32 }
fn row(r: u32) -> Row {
  let base = r * p.cols;
  let ti = tgt[r];
  let valid = ti >= 0 && u32(ti) < p.cols;
  let t = select(0u, u32(ti), valid);
  var out = Row(0.0, 0u);
  ${needArgmax || k.kind === 'ce' ? `var m = x[base];
  var best = 0u;
  for (var j = 1u; j < p.cols; j++) { let v = x[base + j]; if (v > m) { m = v; best = j; } }
  ${needArgmax ? 'if (valid && best == t) { out.hit = 1u; }' : ''}` : ''}
  ${k.kind === 'nll' ? 'if (valid) { out.loss = -x[base + t]; }' : ''}
  ${k.kind === 'ce' ? `var s = 0.0;
  for (var j = 0u; j < p.cols; j++) { s += exp(x[base + j] - m); }
  let lse = m + log(s);
  if (valid) { out.loss = lse - x[base + t]; }
  ${k.logp ? 'for (var j = 0u; j < p.cols; j++) { logp[base + j] = x[base + j] - lse; }' : ''}
  ${k.dlogits ? 'for (var j = 0u; j < p.cols; j++) { dlogits[base + j] = p.gscale * (exp(x[base + j] - lse) - select(0.0, 1.0, valid && j == t)); }' : ''}` : ''}
  return out;
}`;
  const finish = (L: string, H: string) =>
    [
      hasLoss ? `loss[0] = p.scale * ${L}${k.accumulate ? ' + loss[0]' : ''};` : '',
      k.correct ? `correct[0] = ${H}${k.accumulate ? ' + correct[0]' : ''};` : '',
    ].join(' ');
  const name = `${{ nll: 'nll_loss', ce: 'cross_entropy', correct: 'correct_count' }[k.kind]}_${k.variant}` +
    `${k.logp ? '_logp' : ''}${k.dlogits ? '_grad' : ''}${k.correct && k.kind !== 'correct' ? '_correct' : ''}${k.accumulate ? '_acc' : ''}`;
  const main =
    k.variant === 'v1'
      ? /* wgsl */ `
@compute @workgroup_size(1) fn main() {
  var L = 0.0;
  var H = 0u;
  for (var r = 0u; r < p.rows; r++) { let o = row(r); L += o.loss; H += o.hit; }
  ${finish('L', 'H')}
}`
      : /* wgsl */ `
var<workgroup> redL: array<f32, ${RED_WG}>;
var<workgroup> redH: array<u32, ${RED_WG}>;
@compute @workgroup_size(${RED_WG}) fn main(@builtin(local_invocation_index) tid: u32) {
  var L = 0.0;
  var H = 0u;
  for (var r = tid; r < p.rows; r += ${RED_WG}u) { let o = row(r); L += o.loss; H += o.hit; }
  redL[tid] = L;
  redH[tid] = H;
  for (var h = ${RED_WG / 2}u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (tid < h) { redL[tid] += redL[tid + h]; redH[tid] += redH[tid + h]; }
  }
  if (tid == 0u) { ${finish('redL[0]', 'redH[0]')} }
}`;
  return {
    name,
    wgsl: /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
${decl.filter(Boolean).join('\n')}
${row}
${main}`,
  };
});

function dispatchLoss(gpu: Gpu, spec: Omit<LossKernelSpec, 'variant'>, buffers: GPUBuffer[], s: LossSizes, gscale = 0): void {
  gpu.dispatch({
    kernel: lossKernel({ ...spec, variant: s.variant ?? 'v2' }),
    params: uniforms(s.rows, s.cols, f32(lossScale(s)), f32(gscale)),
    buffers,
    workgroups: [1],
  });
}

/** loss[0] = −s·Σ_r logp[r, target[r]] (s = 1/rows for 'mean'), from log-probabilities [rows, cols]. */
export function nllLoss(gpu: Gpu, logp: GPUBuffer, target: GPUBuffer, loss: GPUBuffer, sizes: LossSizes): void {
  check('nllLoss', sizes);
  dispatchLoss(gpu, { kind: 'nll', logp: false, dlogits: false, correct: false, accumulate: !!sizes.accumulate }, [logp, target, loss], sizes);
}

/**
 * Cross-entropy from logits [rows, cols], fused: loss[0] = s·Σ_r (lse_r − logits[r, t_r]); also writes the
 * log-probabilities when `logp` is given (for logSoftmaxNllLossBackward), and in the same pass the gradient
 * dlogits = scale·s·(softmax − onehot) and the correct count when `out` asks for them.
 */
export function logSoftmaxNllLoss(
  gpu: Gpu,
  logits: GPUBuffer,
  target: GPUBuffer,
  logp: GPUBuffer | null,
  loss: GPUBuffer,
  sizes: LossSizes,
  out: CrossEntropyOutputs = {},
): void {
  check('logSoftmaxNllLoss', sizes);
  const buffers = [logits, target, logp, out.dlogits, loss, out.correct].filter((b): b is GPUBuffer => !!b);
  const spec = { kind: 'ce' as const, logp: !!logp, dlogits: !!out.dlogits, correct: !!out.correct, accumulate: !!sizes.accumulate };
  dispatchLoss(gpu, spec, buffers, sizes, (out.scale ?? 1) * lossScale(sizes));
}

/** correct[0] (u32) = #{r : argmax_j scores[r, j] = target[r]} (+ correct[0] with accumulate). */
export function correctCount(gpu: Gpu, scores: GPUBuffer, target: GPUBuffer, correct: GPUBuffer, sizes: LossSizes): void {
  check('correctCount', sizes);
  dispatchLoss(gpu, { kind: 'correct', logp: false, dlogits: false, correct: true, accumulate: !!sizes.accumulate }, [scores, target, correct], sizes);
}

// Per-element gradient kernels; `dy` (the loss's upstream gradient, one float) is optional.
const gradKernel = memoKernel((kind: 'nll' | 'ce', withDy: boolean) => ({
  name: `${kind === 'nll' ? 'nll_loss' : 'cross_entropy'}_grad_v1${withDy ? '' : '_nody'}`,
  wgsl: /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
${kind === 'ce' ? '@group(0) @binding(1) var<storage, read> logp: array<f32>;' : ''}
@group(0) @binding(${kind === 'ce' ? 2 : 1}) var<storage, read> tgt: array<i32>;
${withDy ? `@group(0) @binding(${kind === 'ce' ? 3 : 2}) var<storage, read> dy: array<f32>;` : ''}
@group(0) @binding(${(kind === 'ce' ? 3 : 2) + (withDy ? 1 : 0)}) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(256) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(256)};
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let ti = tgt[r];
  let on = ti >= 0 && u32(ti) == i - r * p.cols;
  let g = p.gscale${withDy ? ' * dy[0]' : ''};
  dx[i] = ${kind === 'nll' ? 'select(0.0, -g, on)' : 'g * (exp(logp[i]) - select(0.0, 1.0, on))'};
}`,
}));

function dispatchGrad(gpu: Gpu, kind: 'nll' | 'ce', buffers: (GPUBuffer | null)[], s: LossGradSizes): void {
  const n = s.rows * s.cols;
  if (n === 0) return;
  const withDy = buffers.includes(null) ? false : true;
  gpu.dispatch({
    kernel: gradKernel(kind, withDy),
    params: uniforms(s.rows, s.cols, f32(1), f32((s.scale ?? 1) * lossScale(s))),
    buffers: buffers.filter((b): b is GPUBuffer => !!b),
    workgroups: grid1d(n, 256),
  });
}

// dlogp[r, t_r] = −scale·dy[0]·s, 0 elsewhere   (saved: target; dy may be null for dy = 1)
export function nllLossBackward(gpu: Gpu, target: GPUBuffer, dy: GPUBuffer | null, dlogp: GPUBuffer, sizes: LossGradSizes): void {
  check('nllLossBackward', sizes);
  dispatchGrad(gpu, 'nll', [target, dy, dlogp], sizes);
}

// dlogits = scale·dy[0]·s·(exp(logp) − onehot(t))   (saved: logp from the fused forward, target)
export function logSoftmaxNllLossBackward(gpu: Gpu, logp: GPUBuffer, target: GPUBuffer, dy: GPUBuffer | null, dlogits: GPUBuffer, sizes: LossGradSizes): void {
  check('logSoftmaxNllLossBackward', sizes);
  dispatchGrad(gpu, 'ce', [logp, target, dy, dlogits], sizes);
}

export const lossCost = ({ rows, cols }: SoftmaxSizes): Cost => ({ flops: 4 * rows * cols, bytes: 4 * rows * cols + 4 * rows });
