// Batch normalisation over (N, H, W) per channel of NCHW float32 input, as torch.nn.BatchNorm2d.
// M = N·H·W values per channel. Training: μ_c, σ²_c = batch mean and biased variance (two-pass within a chunk,
// chunks merged with Chan's formula: never E[x²] − E[x]²), invStd_c = 1/√(σ²_c + ε),
// y = γ_c·(x − μ_c)·invStd_c + β_c; the forward saves μ and invStd for the backward. Running statistics:
// r_μ = (1 − m)·r_μ + m·μ, r_σ² = (1 − m)·r_σ² + m·σ²·k with k = M/(M − 1) (unbiasedRunningVar, PyTorch's
// nn.BatchNorm2d) or k = 1 (the seed's CustomBatchNorm). Evaluation: y = γ·(x − r_μ)/√(r_σ² + ε) + β.
// Backward (training mode): x̂ = (x − μ)·invStd, dβ = Σdy, dγ = Σdy·x̂, dx = γ·invStd/M·(M·dy − dβ − x̂·dγ).
// Backward in evaluation mode (frozen running statistics, which do not depend on x, as when fine-tuning with
// frozen batch norm or taking input gradients of a trained model): x̂ = (x − r_μ)/√(r_σ² + ε), the same dβ and
// dγ, and dx = dy·γ/√(r_σ² + ε). The same kernels compute it (`frozen`), reading r_μ and r_σ² instead of
// the saved μ and invStd (BATCH_NORM_BACKWARD_EVAL).
// [N, C] input (BatchNorm1d) is the case H = W = 1: M = N values per channel, read as scalars.
// Cost: forward ~5 flops and 8 bytes per value (x read twice in v1's cache-warm chunks, y written once),
// backward ~8 flops and 12 bytes per value.
//
// Variants of the statistics, the training forward and the backward (the BATCH_NORM_STATS, BATCH_NORM_TRAIN and
// BATCH_NORM_BACKWARD registries below; the WGSL is in forward.ts and backward.ts):
//   v1  two dispatches, no barriers. Pass 1, invocation (c, chunk): mean and M2 of its chunk (two-pass, in
//       registers) [backward: Σdy and Σdy·(x − μ)]; chunk 0 also copies the per-channel inputs the second pass
//       needs into the partials buffer. Pass 2, invocation (c, chunk): merges its channel's partials and
//       normalises its chunk [writes its dx]; chunk 0 writes μ, invStd and the running statistics [dγ, dβ]; for
//       the statistics alone, one invocation per channel merges. ~512 invocations in all, whatever C is, so
//       even few channels keep every CPU thread busy.
//   v2  one workgroup of 256 per channel: grid-strided (coalesced) loads and tree reductions in workgroup
//       memory, one dispatch. For GPUs.
//   v3  one workgroup of 32 per channel, invocation q owning contiguous chunk q (v1's chunk loop); partials meet
//       in workgroup memory behind ONE barrier, then every invocation merges them itself and normalises its
//       chunk: one dispatch and no tree. For llvmpipe, where a barrier stops the workgroup's SIMD loop
//       (README, "Machines"), so one barrier and one dispatch beat v1's two dispatches once there are enough
//       channels to occupy the threads (bench:kernels measures it).
//   Each loads vec4 where H·W % 4 = 0 (v1 and v3 chunks then hold whole vec4s), scalars otherwise.
// Preferred: v2 on GPUs; on software adapters v3 from 8 channels, v1 below (more parallel chunks).
// Also: batch_norm_running_v1, the running-statistics update from (μ, invStd) alone, one invocation per channel,
// for callers that do not pass the running buffers to the forward (which fuses it); batch_norm_eval, the
// evaluation forward on the elementwise map template (`mapVariant`: v1 scalar, v2 vec4).
// The seed's shapes have few channels (10 and 20) and M = 9216 and 1024 values per channel.
import { ShapeError } from '../../errors.js';
import { checkBuffers, type DeclaredKernel, launch } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { dropoutParams } from '../dropout.js';
import { type ElementwiseVariant, runMap } from '../elementwise.js';
import { type Cost, defineOp } from '../op.js';
import { gradPartialV1, gradV1, gradV2, gradV3 } from './backward.js';
import { BATCH_NORM_EVAL, forwardV2, forwardV3, partialV1, runningV1, statsV1, trainV1, V1_WG, V3_WG } from './forward.js';

export type BatchNormVariant = 'v1' | 'v2' | 'v3';

export interface BatchNormSizes {
  N: number;
  C: number;
  H: number;
  W: number;
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Force a variant; by default v2 on GPUs, v3 on software adapters (v1 there below 8 channels). */
  variant?: BatchNormVariant;
}

/** Inverted dropout folded into batch norm (dropout.ts: the mask of (seed, step), kept with probability 1 − p). */
export interface BatchNormDropout {
  p: number;
  seed: number;
  step: number;
}

export interface BatchNormTrainSizes extends BatchNormSizes {
  /** Weight of the batch statistics in the running update (default 0.1, as PyTorch). */
  momentum?: number;
  /** Running variance from the unbiased batch variance, M/(M−1)·σ² (default true, as nn.BatchNorm2d). */
  unbiasedRunningVar?: boolean;
  /** y = dropout(batchNorm(x)) in the same pass: the normalised values go through the mask as they are stored. */
  dropout?: BatchNormDropout;
}

export interface BatchNormBackwardSizes extends BatchNormSizes {
  /** dγ += ..., dβ += ... instead of overwriting them (dx is always overwritten). */
  accumulate?: boolean;
  /** The forward's dropout: dy is the gradient of the dropout's output, masked as it is loaded. */
  dropout?: BatchNormDropout;
}

/** The running statistics a training forward updates in place. */
export interface RunningStats {
  mean: GPUBuffer;
  var: GPUBuffer;
}

export interface BatchNormStatsBuffers {
  x: GPUBuffer;
  mean: GPUBuffer;
  variance: GPUBuffer;
  invStd: GPUBuffer;
}

export interface BatchNormTrainBuffers {
  x: GPUBuffer;
  gamma: GPUBuffer;
  beta: GPUBuffer;
  y: GPUBuffer;
  mean: GPUBuffer;
  invStd: GPUBuffer;
  running: RunningStats | null;
}

/** Evaluation mode's backward reads the running statistics in place of the saved ones. */
export interface BatchNormBackwardEvalBuffers {
  x: GPUBuffer;
  dy: GPUBuffer;
  gamma: GPUBuffer;
  runningMean: GPUBuffer;
  runningVar: GPUBuffer;
  dx: GPUBuffer;
  dgamma: GPUBuffer;
  dbeta: GPUBuffer;
}

export interface BatchNormBackwardBuffers {
  x: GPUBuffer;
  dy: GPUBuffer;
  gamma: GPUBuffer;
  mean: GPUBuffer;
  invStd: GPUBuffer;
  dx: GPUBuffer;
  dgamma: GPUBuffer;
  dbeta: GPUBuffer;
}

// ---- plan ----------------------------------------------------------------------------------------------------

// v3 gives each channel one workgroup; with fewer channels v1's chunks keep more CPU threads busy.
const V3_MIN_CHANNELS = 8;
const V1_TARGET_INVOCATIONS = 512;
const V1_MIN_CHUNK = 64; // values

interface Plan {
  C: number;
  M: number;
  /** Values per load: 4 when H·W % 4 = 0 (vec4), else 1. */
  vw: number;
  HWu: number;
  Mu: number;
  /** Chunks per channel and units (vw values) per chunk (v1; v3 from {@link planV3}). */
  P: number;
  Lu: number;
}

function checkSizes(op: string, s: BatchNormSizes): void {
  for (const [name, v] of Object.entries({ N: s.N, C: s.C, H: s.H, W: s.W })) {
    if (!Number.isInteger(v) || v < 1)
      throw new ShapeError(`${op}: ${name} = ${v} must be a positive integer (input [${s.N}, ${s.C}, ${s.H}, ${s.W}])`);
  }
}

function plan(s: BatchNormSizes): Plan {
  const HW = s.H * s.W;
  const M = s.N * HW;
  const vw = HW % 4 === 0 ? 4 : 1;
  const Mu = M / vw;
  let P = Math.max(1, Math.min(Math.ceil(V1_TARGET_INVOCATIONS / s.C), Math.floor(M / V1_MIN_CHUNK)));
  const Lu = Math.ceil(Mu / P);
  P = Math.ceil(Mu / Lu);
  return { C: s.C, M, vw, HWu: HW / vw, Mu, P, Lu };
}

/** v3 splits each channel into at most V3_WG chunks, one per invocation of its workgroup. */
function planV3(pl: Plan): Plan {
  const Lu = Math.ceil(pl.Mu / Math.min(V3_WG, pl.Mu));
  return { ...pl, Lu, P: Math.ceil(pl.Mu / Lu) };
}

/** The uniforms every batch-norm kernel reads (forward.ts's PARAMS). */
const params = (pl: Plan, eps: number, momentum = 0, corr = 1, dropout?: BatchNormDropout) => {
  const d = dropout ? dropoutParams(dropout) : { key: 0, threshold: 0, scale: 0 };
  return { C: pl.C, HWu: pl.HWu, Mu: pl.Mu, P: pl.P, Lu: pl.Lu, eps, momentum, corr, key: d.key, threshold: d.threshold, dscale: d.scale };
};

const trainParams = (pl: Plan, s: BatchNormTrainSizes) =>
  params(pl, s.eps ?? 1e-5, s.momentum ?? 0.1, (s.unbiasedRunningVar ?? true) ? pl.M / (pl.M - 1) : 1, s.dropout);

const prefer = (gpu: Gpu, s: BatchNormSizes): BatchNormVariant[] => [!gpu.isSoftware ? 'v2' : s.C >= V3_MIN_CHANNELS ? 'v3' : 'v1'];

// v1's partials buffer: C·P chunk pairs, then C per-channel pairs (vec2<f32> each).
const acquirePartials = (gpu: Gpu, pl: Plan, label: string) => gpu.pool.acquire((pl.C * pl.P + pl.C) * 8, label);
const v1Groups = (pl: Plan): [number] => [Math.ceil((pl.C * pl.P) / V1_WG)];

const values = (s: BatchNormSizes) => s.N * s.C * s.H * s.W;

// ---- registries ----------------------------------------------------------------------------------------------

/**
 * One batch-norm op's registry: v1 records `twoPass` (its partials and its second pass); v2 and v3 record one
 * dispatch of the kernel `onePass` gives, a workgroup per channel (v3 with its contiguous-chunk plan).
 */
function batchNormOp<S extends BatchNormSizes, B>(spec: {
  name: string;
  twoPass: (gpu: Gpu, b: B, s: S, pl: Plan) => void;
  onePass: (variant: 'v2' | 'v3', vec: boolean, b: B, s: S) => DeclaredKernel;
  params: (pl: Plan, s: S) => Record<string, number>;
  buffers: (b: B) => Record<string, GPUBuffer>;
  cost: (s: S) => Cost;
}) {
  const onePass = (variant: 'v2' | 'v3') => (gpu: Gpu, b: B, s: S) => {
    const pl = plan(s);
    const kernel = spec.onePass(variant, pl.vw === 4, b, s);
    launch(gpu, kernel, { params: spec.params(variant === 'v3' ? planV3(pl) : pl, s), buffers: spec.buffers(b), workgroups: [pl.C] });
  };
  return defineOp<S, B, BatchNormVariant>({
    name: spec.name,
    variants: {
      v1: {
        summary: 'two dispatches over ~512 chunks, no barriers: software adapters, few channels',
        run: (gpu, b, s) => spec.twoPass(gpu, b, s, plan(s)),
      },
      v2: { summary: 'a workgroup of 256 per channel, tree reductions: GPUs', run: onePass('v2') },
      v3: { summary: 'a workgroup of 32 contiguous chunks per channel, one barrier: software adapters', run: onePass('v3') },
    },
    prefer,
    cost: spec.cost,
    // Every named buffer holds either the input's N·C·H·W values or one per channel.
    needs: (s, b) => {
      const perValue = new Set(['x', 'y', 'dy', 'dx']);
      return Object.fromEntries(Object.entries(spec.buffers(b)).map(([k, buf]) => [k, [buf, perValue.has(k) ? values(s) : s.C] as const]));
    },
  });
}

const epsParams = (pl: Plan, s: BatchNormSizes & { dropout?: BatchNormDropout }) => params(pl, s.eps ?? 1e-5, 0, 1, s.dropout);

/** v1's two passes: its partials pass, then its second pass, sharing the uniforms and a partials buffer. */
function twoPasses(
  gpu: Gpu,
  pl: Plan,
  u: Record<string, number>,
  label: string,
  first: Record<string, GPUBuffer>,
  second: Record<string, GPUBuffer>,
  kernels: [DeclaredKernel, DeclaredKernel],
  secondGroups: [number],
): void {
  const part = acquirePartials(gpu, pl, label);
  launch(gpu, kernels[0], { params: u, buffers: { ...first, part }, workgroups: v1Groups(pl) });
  launch(gpu, kernels[1], { params: u, buffers: { ...second, part }, workgroups: secondGroups });
  gpu.pool.release(part);
}

const statsBuffers = (b: BatchNormStatsBuffers) => ({ x: b.x, meanOut: b.mean, varOut: b.variance, invStdOut: b.invStd });

export const BATCH_NORM_STATS = batchNormOp<BatchNormSizes, BatchNormStatsBuffers>({
  name: 'batch_norm.stats',
  twoPass: (gpu, b, s, pl) =>
    twoPasses(
      gpu,
      pl,
      epsParams(pl, s),
      'batchNorm partials',
      { x: b.x },
      statsBuffers(b),
      [partialV1(pl.vw === 4, false), statsV1(pl.vw === 4)],
      [Math.ceil(pl.C / V1_WG)],
    ),
  onePass: (variant, vec) => (variant === 'v2' ? forwardV2 : forwardV3)(vec, 'stats', false, false),
  params: epsParams,
  buffers: statsBuffers,
  // One add per value for the mean, subtract-multiply-add for M2; x read once (ideal, no cache).
  cost: (s) => ({ flops: 4 * values(s), bytes: 4 * values(s) }),
});

const trainBuffers = (b: BatchNormTrainBuffers): Record<string, GPUBuffer> => ({
  x: b.x,
  gamma: b.gamma,
  beta: b.beta,
  y: b.y,
  meanOut: b.mean,
  invStdOut: b.invStd,
  ...(b.running ? { runMean: b.running.mean, runVar: b.running.var } : {}),
});

export const BATCH_NORM_TRAIN = batchNormOp<BatchNormTrainSizes, BatchNormTrainBuffers>({
  name: 'batch_norm.train',
  twoPass: (gpu, b, s, pl) =>
    twoPasses(
      gpu,
      pl,
      trainParams(pl, s),
      'batchNorm partials',
      { x: b.x, gamma: b.gamma, beta: b.beta },
      trainBuffers(b),
      [partialV1(pl.vw === 4, true), trainV1(pl.vw === 4, !!b.running, !!s.dropout)],
      v1Groups(pl),
    ),
  onePass: (variant, vec, b, s) => (variant === 'v2' ? forwardV2 : forwardV3)(vec, 'train', !!b.running, !!s.dropout),
  params: trainParams,
  buffers: trainBuffers,
  cost: (s) => ({ flops: 6 * values(s), bytes: 4 * 2 * values(s) }),
});

const gradBuffers = (b: BatchNormBackwardBuffers): Record<string, GPUBuffer> => ({
  x: b.x,
  dy: b.dy,
  gamma: b.gamma,
  meanIn: b.mean,
  invStdIn: b.invStd,
  dx: b.dx,
  dgamma: b.dgamma,
  dbeta: b.dbeta,
});

/** A backward registry: training mode's, or evaluation mode's (`frozen`: the running statistics for μ and σ). */
const backwardOp = <B>(name: string, frozen: boolean, buffers: (b: B) => Record<string, GPUBuffer>, flopsPerValue: number) =>
  batchNormOp<BatchNormBackwardSizes, B>({
    name,
    twoPass: (gpu, b, s, pl) =>
      twoPasses(
        gpu,
        pl,
        epsParams(pl, s),
        `batchNorm ${frozen ? 'eval ' : ''}grad partials`,
        buffers(b),
        buffers(b),
        [gradPartialV1(pl.vw === 4, frozen, !!s.dropout), gradV1(pl.vw === 4, !!s.accumulate, frozen, !!s.dropout)],
        v1Groups(pl),
      ),
    onePass: (variant, vec, _b, s) => (variant === 'v2' ? gradV2 : gradV3)(vec, !!s.accumulate, frozen, !!s.dropout),
    params: epsParams,
    buffers,
    cost: (s) => ({ flops: flopsPerValue * values(s), bytes: 4 * 3 * values(s) }),
  });

export const BATCH_NORM_BACKWARD = backwardOp('batch_norm.backward', false, gradBuffers, 8);

const gradEvalBuffers = (b: BatchNormBackwardEvalBuffers): Record<string, GPUBuffer> => ({
  x: b.x,
  dy: b.dy,
  gamma: b.gamma,
  meanIn: b.runningMean,
  varIn: b.runningVar,
  dx: b.dx,
  dgamma: b.dgamma,
  dbeta: b.dbeta,
});

export const BATCH_NORM_BACKWARD_EVAL = backwardOp('batch_norm.backward_eval', true, gradEvalBuffers, 5);

// ---- public functions ----------------------------------------------------------------------------------------

/**
 * Per-channel batch statistics of x [N,C,H,W]: mean, biased variance and invStd = 1/√(var + ε), each [C].
 * (The training forward computes these itself; this is for callers that want the statistics alone.)
 */
export function batchNormStats(
  gpu: Gpu,
  x: GPUBuffer,
  mean: GPUBuffer,
  variance: GPUBuffer,
  invStd: GPUBuffer,
  sizes: BatchNormSizes,
): void {
  checkSizes('batchNormStats', sizes);
  BATCH_NORM_STATS.run(gpu, { x, mean, variance, invStd }, sizes);
}

/**
 * Training forward: y = γ·(x − μ)·invStd + β with the batch statistics, saving μ and invStd [C] for the
 * backward; with `running`, also updates the running statistics in the same dispatch.
 */
export function batchNormForwardTrain(
  gpu: Gpu,
  x: GPUBuffer,
  gamma: GPUBuffer,
  beta: GPUBuffer,
  y: GPUBuffer,
  mean: GPUBuffer,
  invStd: GPUBuffer,
  sizes: BatchNormTrainSizes,
  running: RunningStats | null = null,
): void {
  checkSizes('batchNormForwardTrain', sizes);
  if (sizes.N * sizes.H * sizes.W < 2) {
    throw new ShapeError(
      `batchNormForwardTrain: training needs more than one value per channel, got input [${sizes.N}, ${sizes.C}, ${sizes.H}, ${sizes.W}]`,
    );
  }
  BATCH_NORM_TRAIN.run(gpu, { x, gamma, beta, y, mean, invStd, running }, sizes);
}

/**
 * Running-statistics update from the saved (μ, invStd) of a training forward, for callers that did not pass
 * `running` to batchNormForwardTrain (which does this in the same dispatch). The variance is recovered as
 * 1/invStd² − ε, so pass the forward's ε.
 */
export function updateRunningStats(
  gpu: Gpu,
  mean: GPUBuffer,
  invStd: GPUBuffer,
  runningMean: GPUBuffer,
  runningVar: GPUBuffer,
  sizes: BatchNormTrainSizes,
): void {
  checkSizes('updateRunningStats', sizes);
  const C = sizes.C;
  checkBuffers('updateRunningStats', { mean: [mean, C], invStd: [invStd, C], runningMean: [runningMean, C], runningVar: [runningVar, C] });
  const pl = plan(sizes);
  const corr = (sizes.unbiasedRunningVar ?? true) && pl.M > 1 ? pl.M / (pl.M - 1) : 1;
  launch(gpu, runningV1(), {
    params: params(pl, sizes.eps ?? 1e-5, sizes.momentum ?? 0.1, corr),
    buffers: { meanIn: mean, invStdIn: invStd, runMean: runningMean, runVar: runningVar },
    workgroups: [Math.ceil(pl.C / V1_WG)],
  });
}

/**
 * Evaluation forward: y = γ·(x − running_mean)/√(running_var + ε) + β (`mapVariant`: v1 scalar, v2 vec4).
 * Its backward is batchNormBackwardEval.
 */
export function batchNormForwardEval(
  gpu: Gpu,
  x: GPUBuffer,
  gamma: GPUBuffer,
  beta: GPUBuffer,
  runningMean: GPUBuffer,
  runningVar: GPUBuffer,
  y: GPUBuffer,
  sizes: BatchNormSizes & { mapVariant?: ElementwiseVariant },
): void {
  checkSizes('batchNormForwardEval', sizes);
  const HW = sizes.H * sizes.W;
  runMap(
    gpu,
    BATCH_NORM_EVAL,
    { x, gamma, beta, rmean: runningMean, rvar: runningVar, y },
    {
      n: sizes.N * sizes.C * HW,
      params: { HW, C: sizes.C, eps: sizes.eps ?? 1e-5 },
      tables: { gamma: sizes.C, beta: sizes.C, rmean: sizes.C, rvar: sizes.C },
      variant: sizes.mapVariant,
    },
  );
}

// dx = γ·invStd/M·(M·dy − Σdy − x̂·Σdy·x̂), dγ = Σdy·x̂, dβ = Σdy   (x̂ = (x − μ)·invStd; saved: x, μ, invStd)
export function batchNormBackward(
  gpu: Gpu,
  x: GPUBuffer,
  dy: GPUBuffer,
  gamma: GPUBuffer,
  mean: GPUBuffer,
  invStd: GPUBuffer,
  dx: GPUBuffer,
  dgamma: GPUBuffer,
  dbeta: GPUBuffer,
  sizes: BatchNormBackwardSizes,
): void {
  checkSizes('batchNormBackward', sizes);
  BATCH_NORM_BACKWARD.run(gpu, { x, dy, gamma, mean, invStd, dx, dgamma, dbeta }, sizes);
}

// dx = dy·γ/√(r_σ² + ε), dγ = Σdy·(x − r_μ)/√(r_σ² + ε), dβ = Σdy   (evaluation mode; saved: x and the running statistics)
export function batchNormBackwardEval(
  gpu: Gpu,
  x: GPUBuffer,
  dy: GPUBuffer,
  gamma: GPUBuffer,
  runningMean: GPUBuffer,
  runningVar: GPUBuffer,
  dx: GPUBuffer,
  dgamma: GPUBuffer,
  dbeta: GPUBuffer,
  sizes: BatchNormBackwardSizes,
): void {
  checkSizes('batchNormBackwardEval', sizes);
  BATCH_NORM_BACKWARD_EVAL.run(gpu, { x, dy, gamma, runningMean, runningVar, dx, dgamma, dbeta }, sizes);
}

export const batchNormForwardTrainCost = BATCH_NORM_TRAIN.cost;
export const batchNormForwardEvalCost = (s: BatchNormSizes): Cost => ({ flops: 3 * values(s), bytes: 4 * 2 * values(s) });
export const batchNormBackwardCost = BATCH_NORM_BACKWARD.cost;
export const batchNormBackwardEvalCost = BATCH_NORM_BACKWARD_EVAL.cost;
export { BATCH_NORM_EVAL } from './forward.js';
