// Row-wise log-softmax and the classification losses on a [rows, cols] float32 matrix (row-major), targets i32.
//   logSoftmax:     y[r,j] = x[r,j] − m_r − log Σ_k exp(x[r,k] − m_r), m_r = max_k x[r,k] (stable for any |x|)
//   nllLoss:        L = −s·Σ_r logp[r, t_r], s = 1/rows (reduction 'mean', PyTorch's default) or 1 ('sum')
//   fused CE:       L = s·Σ_r (lse_r − x[r, t_r]) from logits, optionally writing logp, dlogits and the
//                   correct count in the same pass, and adding L to a running sum (an epoch's loss)
//   correctCount:   #{r : argmax_j x[r,j] = t_r}, first maximum on ties (torch.argmax)
// Losses and counts can accumulate (+=) into their one-element buffers, so a training loop sums them over an
// epoch on the GPU and reads them back once. A target outside [0, cols) adds nothing to the loss, gradient
// or count (the mean still divides by rows), and is recorded in the Gpu's fault word (gpu/fault.ts): the next
// read() or sync() throws a DataError naming the op, the row and the target (PyTorch raises at once; a check on
// the CPU would cost a readback per step).
// Cost: ~4 flops per element (one exp), 8 bytes per element for log-softmax; losses read 4 bytes per row.
//
// log_softmax_v1       one invocation per row, three scalar passes over its cols (cols is 10 in the seed).
// log_softmax_v2       one workgroup of 64 per row: strided passes, max and sum as tree reductions (for GPUs
//                      and wide rows).
//   Chosen (LOG_SOFTMAX): v2 on GPUs with cols ≥ 256, else v1 (llvmpipe always takes v1).
// log_softmax_grad_v1  dx = dy − exp(y)·Σ_row dy, one invocation per row.
// <loss>_v1            (nll_loss, cross_entropy, correct_count) a single invocation looping over the rows: the
//                      simplest-correct fallback.
// <loss>_v2            one workgroup of 64, rows strided over invocations, a tree reduction of (loss, hits).
//                      Also the faster on llvmpipe, where v1's serial loop runs in one SIMD lane (and a
//                      workgroup of 256 was slower there than 64).
//   Chosen (NLL_LOSS, CROSS_ENTROPY, CORRECT_COUNT): v2 everywhere.
// nll_loss_grad_v1     dlogp = −g at each target, 0 elsewhere; one invocation per element.
// cross_entropy_grad_v1  dlogits = g·(exp(logp) − onehot); one invocation per element.
//   (g = scale·dy[0]·s, dy the upstream gradient of L when given.)
// `variant` forces a variant of the op it is given to (the tests run every one).
import { ShapeError } from '../errors.js';
import { FAULT_BUFFER, FAULT_WGSL, targetFault } from '../gpu/fault.js';
import { checkBuffers, declareKernel, launch } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import { defineOp } from './op.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel, treeReduction } from './wgsl.js';

export type SoftmaxVariant = 'v1' | 'v2';

export interface SoftmaxSizes {
  rows: number;
  cols: number;
  /** Force a kernel version; by default log-softmax takes v1 (v2 on GPUs for cols ≥ 256), the losses v2. */
  variant?: SoftmaxVariant;
}

export interface LossSizes extends SoftmaxSizes {
  /** The op a bad target is reported as (default: the function's name, e.g. `nllLoss`). */
  op?: string;
  /** 'mean' (default) divides the summed loss by rows, as PyTorch; 'sum' does not. */
  reduction?: 'mean' | 'sum';
  /** loss[0] += L and correct[0] += count instead of overwriting them. */
  accumulate?: boolean;
}

export interface LossGradSizes extends SoftmaxSizes {
  /** The op a bad target is reported as (default: the function's name). */
  op?: string;
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
  /** sum[0] += the loss (as it is written to `loss`): a running sum kept on the GPU, e.g. over an epoch. */
  sum?: GPUBuffer;
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

const ROWS = { rows: 'u32', cols: 'u32' } as const;

// ---- log-softmax -------------------------------------------------------------------------------------------

const logSoftmaxV1 = memoKernel(() =>
  declareKernel({
    name: 'log_softmax_v1',
    params: ROWS,
    buffers: { x: 'read', y: 'read_write' },
    wgsl: /* wgsl */ `
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
  }),
);

const logSoftmaxV2 = memoKernel(() =>
  declareKernel({
    name: 'log_softmax_v2',
    params: ROWS,
    buffers: { x: 'read', y: 'read_write' },
    wgsl: /* wgsl */ `
${treeReduction({ fn: 'rowMax', type: 'f32', size: V2_ROW_WG, combine: (a, b) => `max(${a}, ${b})` })}
${treeReduction({ fn: 'rowSum', type: 'f32', size: V2_ROW_WG })}
@compute @workgroup_size(${V2_ROW_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u,
                                             @builtin(local_invocation_index) t: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= p.rows) { return; } // uniform per workgroup
  let base = r * p.cols;
  var m = x[base];
  for (var j = t; j < p.cols; j += ${V2_ROW_WG}u) { m = max(m, x[base + j]); }
  m = rowMax(t, m);
  var s = 0.0;
  for (var j = t; j < p.cols; j += ${V2_ROW_WG}u) { s += exp(x[base + j] - m); }
  let lse = m + log(rowSum(t, s));
  for (var j = t; j < p.cols; j += ${V2_ROW_WG}u) { y[base + j] = x[base + j] - lse; }
}`,
  }),
);

type LogSoftmaxBuffers = { x: GPUBuffer; y: GPUBuffer };

export const LOG_SOFTMAX = defineOp<SoftmaxSizes, LogSoftmaxBuffers, SoftmaxVariant>({
  name: 'log_softmax',
  variants: {
    v1: {
      summary: 'one invocation per row, serial passes: the fallback, and narrow rows',
      run: (gpu, buffers, s) =>
        launch(gpu, logSoftmaxV1(), { params: { rows: s.rows, cols: s.cols }, buffers, workgroups: [Math.ceil(s.rows / ROW_WG)] }),
    },
    v2: {
      summary: 'one workgroup per row, tree reductions of max and sum: wide rows on GPUs',
      run: (gpu, buffers, s) =>
        launch(gpu, logSoftmaxV2(), { params: { rows: s.rows, cols: s.cols }, buffers, workgroups: grid1d(s.rows, 1) }),
    },
  },
  prefer: (gpu, s) => (!gpu.isSoftware && s.cols >= 256 ? ['v2'] : ['v1']),
  cost: ({ rows, cols }) => ({ flops: 4 * rows * cols, bytes: 8 * rows * cols }),
  needs: ({ rows, cols }, { x, y }) => ({ x: [x, rows * cols], y: [y, rows * cols] }),
});

/** y = log_softmax(x) along each row of x [rows, cols]. */
export function logSoftmax(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, sizes: SoftmaxSizes): void {
  check('logSoftmax', sizes);
  if (sizes.rows === 0) return;
  LOG_SOFTMAX.run(gpu, { x, y }, sizes);
}

const logSoftmaxGradV1 = memoKernel(() =>
  declareKernel({
    name: 'log_softmax_grad_v1',
    params: ROWS,
    buffers: { y: 'read', dy: 'read', dx: 'read_write' },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${ROW_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let r = gid.x;
  if (r >= p.rows) { return; }
  let base = r * p.cols;
  var s = 0.0;
  for (var j = 0u; j < p.cols; j++) { s += dy[base + j]; }
  for (var j = 0u; j < p.cols; j++) { dx[base + j] = dy[base + j] - exp(y[base + j]) * s; }
}`,
  }),
);

// dx = dy − exp(y)·Σ_row dy   (saved: y, the forward's output)
export function logSoftmaxBackward(gpu: Gpu, y: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, sizes: SoftmaxSizes): void {
  check('logSoftmaxBackward', sizes);
  const n = sizes.rows * sizes.cols;
  checkBuffers('logSoftmaxBackward', { y: [y, n], dy: [dy, n], dx: [dx, n] });
  if (sizes.rows === 0) return;
  launch(gpu, logSoftmaxGradV1(), {
    params: { rows: sizes.rows, cols: sizes.cols },
    buffers: { y, dy, dx },
    workgroups: [Math.ceil(sizes.rows / ROW_WG)],
  });
}

export const logSoftmaxCost = LOG_SOFTMAX.cost;

// ---- losses: one generator for NLL, fused cross-entropy and the correct count --------------------------------

type LossKind = 'nll' | 'ce' | 'correct';

interface LossKernelSpec {
  /** 'nll' reads log-probabilities, 'ce' logits, 'correct' any scores (argmax only). */
  kind: LossKind;
  logp: boolean; // ce: write log-probabilities
  dlogits: boolean; // ce: write the gradient
  correct: boolean; // count argmax hits
  sum: boolean; // also add the loss to sum[0]
  accumulate: boolean;
  variant: SoftmaxVariant;
}

const lossKernel = memoKernel((k: LossKernelSpec) => {
  const hasLoss = k.kind !== 'correct';
  const needArgmax = k.correct;
  // Per row: the loss term and whether the argmax hit the target.
  const row = /* wgsl */ `
struct Row { loss: f32, hit: u32 }
fn row(r: u32) -> Row {
  let base = r * p.cols;
  let ti = tgt[r];
  let valid = ti >= 0 && u32(ti) < p.cols;
  if (!valid) { raiseFault(p.site, r, bitcast<u32>(ti), p.cols); }
  let t = select(0u, u32(ti), valid);
  var out = Row(0.0, 0u);
  ${
    needArgmax || k.kind === 'ce'
      ? `var m = x[base];
  var best = 0u;
  for (var j = 1u; j < p.cols; j++) { let v = x[base + j]; if (v > m) { m = v; best = j; } }
  ${needArgmax ? 'if (valid && best == t) { out.hit = 1u; }' : ''}`
      : ''
  }
  ${k.kind === 'nll' ? 'if (valid) { out.loss = -x[base + t]; }' : ''}
  ${
    k.kind === 'ce'
      ? `var s = 0.0;
  for (var j = 0u; j < p.cols; j++) { s += exp(x[base + j] - m); }
  let lse = m + log(s);
  if (valid) { out.loss = lse - x[base + t]; }
  ${k.logp ? 'for (var j = 0u; j < p.cols; j++) { logp[base + j] = x[base + j] - lse; }' : ''}
  ${k.dlogits ? 'for (var j = 0u; j < p.cols; j++) { dlogits[base + j] = p.gscale * (exp(x[base + j] - lse) - select(0.0, 1.0, valid && j == t)); }' : ''}`
      : ''
  }
  return out;
}`;
  const finish = (L: string, H: string) =>
    [
      hasLoss ? `let l = p.scale * ${L}; loss[0] = l${k.accumulate ? ' + loss[0]' : ''};` : '',
      k.sum ? 'sum[0] = sum[0] + l;' : '',
      k.correct ? `correct[0] = ${H}${k.accumulate ? ' + correct[0]' : ''};` : '',
    ].join(' ');
  const name =
    `${{ nll: 'nll_loss', ce: 'cross_entropy', correct: 'correct_count' }[k.kind]}_${k.variant}` +
    `${k.logp ? '_logp' : ''}${k.dlogits ? '_grad' : ''}${k.correct && k.kind !== 'correct' ? '_correct' : ''}${k.accumulate ? '_acc' : ''}` +
    `${k.sum ? '_sum' : ''}`;
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
${treeReduction({ fn: 'workgroupRows', type: 'Row', size: RED_WG, combine: (a, b) => `Row(${a}.loss + ${b}.loss, ${a}.hit + ${b}.hit)`, to: 'first' })}
@compute @workgroup_size(${RED_WG}) fn main(@builtin(local_invocation_index) tid: u32) {
  var L = 0.0;
  var H = 0u;
  for (var r = tid; r < p.rows; r += ${RED_WG}u) { let o = row(r); L += o.loss; H += o.hit; }
  let total = workgroupRows(tid, Row(L, H));
  if (tid == 0u) { ${finish('total.loss', 'total.hit')} }
}`;
  return declareKernel({
    name,
    params: { rows: 'u32', cols: 'u32', scale: 'f32', gscale: 'f32', site: 'u32' },
    buffers: {
      x: 'read',
      tgt: { read: 'i32' },
      ...(k.logp ? { logp: 'read_write' as const } : {}),
      ...(k.dlogits ? { dlogits: 'read_write' as const } : {}),
      ...(hasLoss ? { loss: 'read_write' as const } : {}),
      ...(k.correct ? { correct: { read_write: 'u32' } } : {}),
      ...(k.sum ? { sum: 'read_write' as const } : {}),
      ...FAULT_BUFFER,
    },
    wgsl: `${FAULT_WGSL}\n${row}\n${main}`,
  });
});

/** Buffers of a loss: scores and targets in, the loss (and for cross-entropy optionally logp, dlogits, the count) out. */
interface LossBuffers {
  x: GPUBuffer;
  tgt: GPUBuffer;
  loss?: GPUBuffer;
  logp?: GPUBuffer;
  dlogits?: GPUBuffer;
  correct?: GPUBuffer;
  sum?: GPUBuffer;
}

/** The registry of one loss kind: v1 a single invocation, v2 a workgroup reduction; v2 preferred everywhere. */
const lossOp = (name: string, kind: LossKind) =>
  defineOp<LossSizes & { gradScale?: number }, LossBuffers, SoftmaxVariant>({
    name,
    variants: {
      v1: { summary: 'one invocation looping over the rows: the fallback', run: (gpu, b, s) => runLoss(gpu, kind, 'v1', b, s) },
      v2: {
        summary: 'rows strided over a workgroup of 64, then a tree reduction: every adapter',
        run: (gpu, b, s) => runLoss(gpu, kind, 'v2', b, s),
      },
    },
    prefer: () => ['v2'],
    cost: ({ rows, cols }) => ({ flops: 4 * rows * cols, bytes: 4 * rows * cols + 4 * rows }),
    needs: ({ rows, cols }, b) => ({
      scores: [b.x, rows * cols],
      target: [b.tgt, rows],
      loss: [b.loss, 1],
      logp: [b.logp, rows * cols],
      dlogits: [b.dlogits, rows * cols],
      correct: [b.correct, 1],
      sum: [b.sum, 1],
    }),
  });

const LOSS_FUNCTION = { nll: 'nllLoss', ce: 'logSoftmaxNllLoss', correct: 'correctCount' } as const;

/** The fault-word site bad targets of `op` are reported under. */
const targetSite = (gpu: Gpu, op: string) => gpu.faultSite(op, targetFault(op));

function runLoss(gpu: Gpu, kind: LossKind, variant: SoftmaxVariant, b: LossBuffers, s: LossSizes & { gradScale?: number }): void {
  if (b.sum && kind === 'correct') throw new ShapeError('correctCount: a running loss sum needs a loss');
  const spec = { kind, logp: !!b.logp, dlogits: !!b.dlogits, correct: !!b.correct, sum: !!b.sum, accumulate: !!s.accumulate, variant };
  const buffers = Object.fromEntries(Object.entries(b).filter(([, v]) => !!v)) as Record<string, GPUBuffer>;
  const site = targetSite(gpu, s.op ?? LOSS_FUNCTION[kind]);
  launch(gpu, lossKernel(spec), {
    params: { rows: s.rows, cols: s.cols, scale: lossScale(s), gscale: s.gradScale ?? 0, site },
    buffers: { ...buffers, fault: gpu.faultBuffer },
    workgroups: [1],
  });
}

export const NLL_LOSS = lossOp('nll_loss', 'nll');
export const CROSS_ENTROPY = lossOp('cross_entropy', 'ce');
export const CORRECT_COUNT = lossOp('correct_count', 'correct');

/** loss[0] = −s·Σ_r logp[r, target[r]] (s = 1/rows for 'mean'), from log-probabilities [rows, cols]. */
export function nllLoss(gpu: Gpu, logp: GPUBuffer, target: GPUBuffer, loss: GPUBuffer, sizes: LossSizes): void {
  check('nllLoss', sizes);
  NLL_LOSS.run(gpu, { x: logp, tgt: target, loss }, sizes);
}

/**
 * Cross-entropy from logits [rows, cols], fused: loss[0] = s·Σ_r (lse_r − logits[r, t_r]); also writes the
 * log-probabilities when `logp` is given (for logSoftmaxNllLossBackward), and in the same pass the gradient
 * dlogits = scale·s·(softmax − onehot), the correct count and sum[0] += loss when `out` asks for them.
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
  const buffers: LossBuffers = {
    x: logits,
    tgt: target,
    loss,
    logp: logp ?? undefined,
    dlogits: out.dlogits,
    correct: out.correct,
    sum: out.sum,
  };
  CROSS_ENTROPY.run(gpu, buffers, { ...sizes, gradScale: (out.scale ?? 1) * lossScale(sizes) });
}

/** correct[0] (u32) = #{r : argmax_j scores[r, j] = target[r]} (+ correct[0] with accumulate). */
export function correctCount(gpu: Gpu, scores: GPUBuffer, target: GPUBuffer, correct: GPUBuffer, sizes: LossSizes): void {
  check('correctCount', sizes);
  CORRECT_COUNT.run(gpu, { x: scores, tgt: target, correct }, sizes);
}

// Per-element gradient kernels (single kernels: no registry); `dy` (the loss's upstream gradient, one float) is optional.
const gradKernel = memoKernel((kind: 'nll' | 'ce', withDy: boolean) =>
  declareKernel({
    name: `${kind === 'nll' ? 'nll_loss' : 'cross_entropy'}_grad_v1${withDy ? '' : '_nody'}`,
    params: { rows: 'u32', cols: 'u32', gscale: 'f32', site: 'u32' },
    buffers: {
      ...(kind === 'ce' ? { logp: 'read' as const } : {}),
      tgt: { read: 'i32' },
      ...(withDy ? { dy: 'read' as const } : {}),
      dx: 'read_write',
      ...FAULT_BUFFER,
    },
    wgsl: /* wgsl */ `${FAULT_WGSL}
@compute @workgroup_size(256) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(256)};
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let ti = tgt[r];
  if (ti < 0 || u32(ti) >= p.cols) { raiseFault(p.site, r, bitcast<u32>(ti), p.cols); }
  let on = ti >= 0 && u32(ti) == i - r * p.cols;
  let g = p.gscale${withDy ? ' * dy[0]' : ''};
  dx[i] = ${kind === 'nll' ? 'select(0.0, -g, on)' : 'g * (exp(logp[i]) - select(0.0, 1.0, on))'};
}`,
  }),
);

function launchGrad(
  gpu: Gpu,
  kind: 'nll' | 'ce',
  buffers: { logp?: GPUBuffer; tgt: GPUBuffer; dy: GPUBuffer | null; dx: GPUBuffer },
  s: LossGradSizes,
): void {
  const n = s.rows * s.cols;
  checkBuffers(kind === 'nll' ? 'nllLossBackward' : 'logSoftmaxNllLossBackward', {
    logp: [buffers.logp, n],
    target: [buffers.tgt, s.rows],
    dy: [buffers.dy, 1],
    dx: [buffers.dx, n],
  });
  if (n === 0) return;
  const { dy, ...rest } = buffers;
  const site = targetSite(gpu, s.op ?? (kind === 'nll' ? 'nllLossBackward' : 'logSoftmaxNllLossBackward'));
  launch(gpu, gradKernel(kind, dy !== null), {
    params: { rows: s.rows, cols: s.cols, gscale: (s.scale ?? 1) * lossScale(s), site },
    buffers: { ...((dy ? { ...rest, dy } : rest) as Record<string, GPUBuffer>), fault: gpu.faultBuffer },
    workgroups: grid1d(n, 256),
  });
}

// dlogp[r, t_r] = −scale·dy[0]·s, 0 elsewhere   (saved: target; dy may be null for dy = 1)
export function nllLossBackward(gpu: Gpu, target: GPUBuffer, dy: GPUBuffer | null, dlogp: GPUBuffer, sizes: LossGradSizes): void {
  check('nllLossBackward', sizes);
  launchGrad(gpu, 'nll', { tgt: target, dy, dx: dlogp }, sizes);
}

// dlogits = scale·dy[0]·s·(exp(logp) − onehot(t))   (saved: logp from the fused forward, target)
export function logSoftmaxNllLossBackward(
  gpu: Gpu,
  logp: GPUBuffer,
  target: GPUBuffer,
  dy: GPUBuffer | null,
  dlogits: GPUBuffer,
  sizes: LossGradSizes,
): void {
  check('logSoftmaxNllLossBackward', sizes);
  launchGrad(gpu, 'ce', { logp, tgt: target, dy, dx: dlogits }, sizes);
}

export const lossCost = CROSS_ENTROPY.cost;
