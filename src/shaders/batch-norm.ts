// Batch normalisation over (N, H, W) per channel of NCHW float32 input, as torch.nn.BatchNorm2d.
// M = N·H·W values per channel. Training: μ_c, σ²_c = batch mean and biased variance (two-pass within a chunk,
// chunks merged with Chan's formula: never E[x²] − E[x]²), invStd_c = 1/√(σ²_c + ε),
// y = γ_c·(x − μ_c)·invStd_c + β_c; the forward saves μ and invStd for the backward. Running statistics:
// r_μ = (1 − m)·r_μ + m·μ, r_σ² = (1 − m)·r_σ² + m·σ²·k with k = M/(M − 1) (unbiasedRunningVar, PyTorch's
// nn.BatchNorm2d) or k = 1 (the seed's CustomBatchNorm). Evaluation: y = γ·(x − r_μ)/√(r_σ² + ε) + β.
// Backward (training mode): x̂ = (x − μ)·invStd, dβ = Σdy, dγ = Σdy·x̂, dx = γ·invStd/M·(M·dy − dβ − x̂·dγ).
// Cost: forward ~5 flops and 8 bytes per value (x read twice in v1's cache-warm chunks, y written once),
// backward ~8 flops and 12 bytes per value.
//
// The seed's shapes have few channels (10 and 20) and M = 9216 and 1024 values per channel.
// batch_norm_partial_v1      v1, pass 1, invocation (c, chunk): mean and M2 of its chunk (two-pass, in registers)
//                            [backward: Σdy and Σdy·(x − μ)]; chunk 0 also copies the per-channel inputs the
//                            second pass needs into the partials buffer, which keeps every kernel within
//                            WebGPU's default 8 storage buffers. ~512 invocations in all, whatever C is.
// batch_norm_train_v1        v1, pass 2, invocation (c, chunk): merges its channel's partials, normalises its
// batch_norm_grad_v1         chunk; chunk 0 writes μ, invStd and the running statistics [dγ, dβ].
// batch_norm_stats_v1        v1, pass 2 for batchNormStats alone: one invocation per channel merges the partials.
// batch_norm_{train,grad,stats}_v2  one workgroup of 256 per channel: grid-strided (coalesced) loads and tree
//                            reductions in workgroup memory, one dispatch. For GPUs.
// batch_norm_{train,grad,stats}_v3  one workgroup of 32 per channel, invocation q owning contiguous chunk q
//                            (v1's chunk loop); partials meet in workgroup memory behind ONE barrier, then
//                            every invocation merges them itself and normalises its chunk: one dispatch and
//                            no tree. For llvmpipe, where it beat v1's two dispatches at the seed's shapes
//                            (alternating samples, 64x10x12x12: train 216 vs 246 µs min, 285 vs 367 median;
//                            grad 246 vs 269 min, 308 vs 360 median; 64x20x4x4 about even).
//   v1 and v3 load vec4 where H·W % 4 = 0 (chunks then hold whole vec4s), scalars otherwise; v2 likewise.
// batch_norm_running_v1      running-statistics update from (μ, invStd) alone, one invocation per channel, for
//                            callers that do not pass the running buffers to the forward (which fuses it).
// batch_norm_eval_v1/_v2     evaluation forward, the elementwise map template (scalar / vec4).
// Chosen: v2 on GPUs; on software adapters v3 from 8 channels, v1 below (more parallel chunks); `variant`
// forces one (the tests run all three).
import { ShapeError } from '../errors.js';
import { type Cost, type Gpu, f32, memoKernel, uniforms } from './common.js';
import { type ElementwiseVariant, type MapSpec, dispatchMap } from './elementwise.js';

export type BatchNormVariant = 'v1' | 'v2' | 'v3';
export const BATCH_NORM_VARIANTS: readonly BatchNormVariant[] = ['v1', 'v2', 'v3'];

export interface BatchNormSizes {
  N: number;
  C: number;
  H: number;
  W: number;
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Force a kernel version; by default v2 on GPUs, v3 on software adapters (v1 there below 8 channels). */
  variant?: BatchNormVariant;
}

export interface BatchNormTrainSizes extends BatchNormSizes {
  /** Weight of the batch statistics in the running update (default 0.1, as PyTorch). */
  momentum?: number;
  /** Running variance from the unbiased batch variance, M/(M−1)·σ² (default true, as nn.BatchNorm2d). */
  unbiasedRunningVar?: boolean;
}

export interface BatchNormBackwardSizes extends BatchNormSizes {
  /** dγ += ..., dβ += ... instead of overwriting them (dx is always overwritten). */
  accumulate?: boolean;
}

/** The running statistics a training forward updates in place. */
export interface RunningStats {
  mean: GPUBuffer;
  var: GPUBuffer;
}

const V2_WG = 256;
const V3_WG = 32;
// v3 gives each channel one workgroup; with fewer channels v1's chunks keep more CPU threads busy.
const V3_MIN_CHANNELS = 8;
const V1_WG = 64;
const V1_TARGET_INVOCATIONS = 512;
const V1_MIN_CHUNK = 64; // values

interface Plan {
  C: number;
  M: number;
  /** Values per load: 4 when H·W % 4 = 0 (vec4), else 1. */
  vw: number;
  HWu: number;
  Mu: number;
  /** Chunks per channel and units (vw values) per chunk (v1). */
  P: number;
  Lu: number;
}

function plan(op: string, s: BatchNormSizes): Plan {
  for (const [name, v] of Object.entries({ N: s.N, C: s.C, H: s.H, W: s.W })) {
    if (!Number.isInteger(v) || v < 1) throw new ShapeError(`${op}: ${name} = ${v} must be a positive integer (input [${s.N}, ${s.C}, ${s.H}, ${s.W}])`);
  }
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

function chooseVariant(gpu: Gpu, s: BatchNormSizes): BatchNormVariant {
  return s.variant ?? (!gpu.isSoftware ? 'v2' : s.C >= V3_MIN_CHANNELS ? 'v3' : 'v1');
}

// Uniforms of every batch-norm kernel (unused fields are harmless).
const PARAMS = 'struct Params { C: u32, HWu: u32, Mu: u32, P: u32, Lu: u32, eps: f32, momentum: f32, corr: f32 }';
const params = (pl: Plan, eps: number, momentum = 0, corr = 1) =>
  uniforms(pl.C, pl.HWu, pl.Mu, pl.P, pl.Lu, f32(eps), f32(momentum), f32(corr));

const head = (vec: boolean) => /* wgsl */ `
alias T = ${vec ? 'vec4<f32>' : 'f32'};
const VW = ${vec ? 4 : 1}u;
${PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
fn hsum(v: T) -> f32 { return ${vec ? 'v.x + v.y + v.z + v.w' : 'v'}; }
// Flat index (in units of T) of unit u of channel c: unit u is (n, i) with n = u / HWu.
fn unitIndex(c: u32, u: u32) -> u32 { let n = u / p.HWu; return (n * p.C + c) * p.HWu + (u - n * p.HWu); }`;

// v1 loops over chunk q of channel c, units [u0, u1), with k the flat index of the current unit.
const CHUNK = /* wgsl */ `
  let c = g / p.P;
  let q = g - c * p.P;
  let u0 = q * p.Lu;
  let u1 = min(u0 + p.Lu, p.Mu);
  let k0 = unitIndex(c, u0);
  let i0 = u0 % p.HWu;`;
const forChunk = (body: string) => /* wgsl */ `
  {
    var k = k0;
    var i = i0;
    for (var u = u0; u < u1; u++) {
      ${body}
      k++;
      i++;
      if (i == p.HWu) { i = 0u; k += (p.C - 1u) * p.HWu; }
    }
  }`;

// The partials buffer: C·P vec2 per chunk, then C vec2 of per-channel inputs copied by chunk 0.
// Merges channel c's P (mean, M2) partials with Chan's formula; returns (mean, biased variance).
const merge = (partial: (q: string) => string) => /* wgsl */ `
fn channelStats(c: u32) -> vec2<f32> {
  var n = 0.0;
  var mean = 0.0;
  var m2 = 0.0;
  for (var q = 0u; q < p.P; q++) {
    let cnt = f32((min((q + 1u) * p.Lu, p.Mu) - q * p.Lu) * VW);
    let s = ${partial('q')};
    let tot = n + cnt;
    let d = s.x - mean;
    mean += d * (cnt / tot);
    m2 += s.y + d * d * (n * (cnt / tot));
    n = tot;
  }
  return vec2<f32>(mean, m2 / n);
}`;
const MERGE = merge((q) => `part[c * p.P + ${q}]`);

const RUNNING = /* wgsl */ `
  runMean[c] = (1.0 - p.momentum) * runMean[c] + p.momentum * mean;
  runVar[c] = (1.0 - p.momentum) * runVar[c] + p.momentum * p.corr * variance;`;

// ---- v1: statistics pass -----------------------------------------------------------------------------------

// Forward pass 1: (mean, M2) of each chunk; chunk 0 copies (γ, β) for pass 2 (zeros for batchNormStats).
const partialV1 = memoKernel((vec: boolean, affine: boolean) => ({
  name: `batch_norm_partial_v1${vec ? '_vec4' : ''}${affine ? '' : '_stats'}`,
  wgsl: /* wgsl */ `${head(vec)}
@group(0) @binding(1) var<storage, read> x: array<T>;
${affine ? '@group(0) @binding(2) var<storage, read> gamma: array<f32>;\n@group(0) @binding(3) var<storage, read> beta: array<f32>;' : ''}
@group(0) @binding(${affine ? 4 : 2}) var<storage, read_write> part: array<vec2<f32>>;
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x;
  if (g >= p.C * p.P) { return; }
  ${CHUNK}
  var s = T();
  ${forChunk('s += x[k];')}
  let m = hsum(s) / f32((u1 - u0) * VW);
  var d = T();
  ${forChunk('let e = x[k] - m; d += e * e;')}
  part[g] = vec2<f32>(m, hsum(d));
  ${affine ? 'if (q == 0u) { part[p.C * p.P + c] = vec2<f32>(gamma[c], beta[c]); }' : ''}
}`,
}));

// Forward pass 2 (training): merge, normalise the chunk; chunk 0 writes μ, invStd and the running statistics.
const trainV1 = memoKernel((vec: boolean, running: boolean) => ({
  name: `batch_norm_train_v1${vec ? '_vec4' : ''}${running ? '_running' : ''}`,
  wgsl: /* wgsl */ `${head(vec)}
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> part: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read_write> y: array<T>;
@group(0) @binding(4) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(5) var<storage, read_write> invStdOut: array<f32>;
${running ? '@group(0) @binding(6) var<storage, read_write> runMean: array<f32>;\n@group(0) @binding(7) var<storage, read_write> runVar: array<f32>;' : ''}
${MERGE}
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x;
  if (g >= p.C * p.P) { return; }
  ${CHUNK}
  let st = channelStats(c);
  let mean = st.x;
  let variance = st.y;
  let inv = inverseSqrt(variance + p.eps);
  if (q == 0u) {
    meanOut[c] = mean;
    invStdOut[c] = inv;
    ${running ? RUNNING : ''}
  }
  let gb = part[p.C * p.P + c];
  let sc = gb.x * inv;
  ${forChunk('y[k] = (x[k] - mean) * sc + gb.y;')}
}`,
}));

// Pass 2 of batchNormStats: one invocation per channel.
const statsV1 = memoKernel((vec: boolean) => ({
  name: `batch_norm_stats_v1${vec ? '_vec4' : ''}`,
  wgsl: /* wgsl */ `${head(vec)}
@group(0) @binding(1) var<storage, read> part: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(3) var<storage, read_write> varOut: array<f32>;
@group(0) @binding(4) var<storage, read_write> invStdOut: array<f32>;
${MERGE}
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let st = channelStats(c);
  meanOut[c] = st.x;
  varOut[c] = st.y;
  invStdOut[c] = inverseSqrt(st.y + p.eps);
}`,
}));

// ---- v2: one workgroup per channel ------------------------------------------------------------------------

const TREE = /* wgsl */ `
var<workgroup> red: array<vec2<f32>, ${V2_WG}>;
// Sum of v over the workgroup, returned to every invocation.
fn treeSum(t: u32, v: vec2<f32>) -> vec2<f32> {
  red[t] = v;
  for (var h = ${V2_WG / 2}u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (t < h) { red[t] += red[t + h]; }
  }
  workgroupBarrier();
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
const forStrided = (body: string) => /* wgsl */ `
  for (var u = t; u < p.Mu; u += ${V2_WG}u) {
    let k = unitIndex(c, u);
    ${body}
  }`;

// mode 'train': normalise (+ running update); mode 'stats': write μ, σ², invStd only.
// Bindings of the one-dispatch forwards (v2, v3): training writes y, μ, invStd (+ running); stats μ, σ², invStd.
const forwardDecl = (train: boolean, running: boolean) =>
  train
    ? `@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;
@group(0) @binding(5) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(6) var<storage, read_write> invStdOut: array<f32>;
${running ? '@group(0) @binding(7) var<storage, read_write> runMean: array<f32>;\n@group(0) @binding(8) var<storage, read_write> runVar: array<f32>;' : ''}`
    : `@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> meanOut: array<f32>;
@group(0) @binding(3) var<storage, read_write> varOut: array<f32>;
@group(0) @binding(4) var<storage, read_write> invStdOut: array<f32>;`;

const forwardV2 = memoKernel((vec: boolean, mode: 'train' | 'stats', running: boolean) => {
  const train = mode === 'train';
  return {
    name: `batch_norm_${mode}_v2${vec ? '_vec4' : ''}${running ? '_running' : ''}`,
    wgsl: /* wgsl */ `${head(vec)}
${forwardDecl(train, running)}
${TREE}
@compute @workgroup_size(${V2_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let count = f32(p.Mu * VW);
  var s = T();
  ${forStrided('s += x[k];')}
  let mean = treeSum(t, vec2<f32>(hsum(s), 0.0)).x / count;
  var d = T();
  ${forStrided('let e = x[k] - mean; d += e * e;')}
  let variance = treeSum(t, vec2<f32>(hsum(d), 0.0)).x / count;
  let inv = inverseSqrt(variance + p.eps);
  if (t == 0u) {
    meanOut[c] = mean;
    invStdOut[c] = inv;
    ${train ? (running ? RUNNING : '') : 'varOut[c] = variance;'}
  }
  ${train ? `let sc = gamma[c] * inv;\n  let b = beta[c];\n  ${forStrided('y[k] = (x[k] - mean) * sc + b;')}` : ''}
}`,
  };
});

// ---- v3: one workgroup per channel, contiguous chunks, one barrier ----------------------------------------

// Invocation q of channel c's workgroup owns chunk q (units [q·Lu, (q+1)·Lu)); invocations past the P chunks
// (tiny channels) get an empty range but still meet the barrier.
const V3_CHUNK = /* wgsl */ `
  let c = wid.x;
  let live = lq < p.P;
  let q = min(lq, p.P - 1u);
  let u0 = q * p.Lu;
  let u1 = select(u0, min(u0 + p.Lu, p.Mu), live);
  let k0 = unitIndex(c, u0);
  let i0 = u0 % p.HWu;`;
const V3_ARGS = '@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lq: u32';

const forwardV3 = memoKernel((vec: boolean, mode: 'train' | 'stats', running: boolean) => {
  const train = mode === 'train';
  return {
    name: `batch_norm_${mode}_v3${vec ? '_vec4' : ''}${running ? '_running' : ''}`,
    wgsl: /* wgsl */ `${head(vec)}
${forwardDecl(train, running)}
var<workgroup> wpart: array<vec2<f32>, ${V3_WG}>;
${merge((q) => `wpart[${q}]`)}
@compute @workgroup_size(${V3_WG}) fn main(${V3_ARGS}) {
  ${V3_CHUNK}
  var s = T();
  ${forChunk('s += x[k];')}
  let m = hsum(s) / f32(max(u1 - u0, 1u) * VW);
  var d = T();
  ${forChunk('let e = x[k] - m; d += e * e;')}
  if (live) { wpart[lq] = vec2<f32>(m, hsum(d)); }
  workgroupBarrier();
  let st = channelStats(c);
  let mean = st.x;
  let variance = st.y;
  let inv = inverseSqrt(variance + p.eps);
  if (lq == 0u) {
    meanOut[c] = mean;
    invStdOut[c] = inv;
    ${train ? (running ? RUNNING : '') : 'varOut[c] = variance;'}
  }
  ${train ? `let sc = gamma[c] * inv;\n  let b = beta[c];\n  ${forChunk('y[k] = (x[k] - mean) * sc + b;')}` : ''}
}`,
  };
});

const gradV3 = memoKernel((vec: boolean, accumulate: boolean) => ({
  name: `batch_norm_grad_v3${vec ? '_vec4' : ''}${accumulate ? '_acc' : ''}`,
  wgsl: /* wgsl */ `${head(vec)}
${GRAD_DECL}
var<workgroup> wpart: array<vec2<f32>, ${V3_WG}>;
@compute @workgroup_size(${V3_WG}) fn main(${V3_ARGS}) {
  ${V3_CHUNK}
  let mean = meanIn[c];
  let inv = invStdIn[c];
  var a = T();
  var b = T();
  ${forChunk('let d = dy[k]; a += d; b += d * (x[k] - mean);')}
  if (live) { wpart[lq] = vec2<f32>(hsum(a), hsum(b)); }
  workgroupBarrier();
  var sums = vec2<f32>();
  for (var r = 0u; r < p.P; r++) { sums += wpart[r]; }
  let count = f32(p.Mu * VW);
  ${GRAD_COEFFS}
  if (lq == 0u) {${gradStore(accumulate)}
  }
  ${forChunk(GRAD_DX)}
}`,
}));

// ---- public forward ----------------------------------------------------------------------------------------

/**
 * Per-channel batch statistics of x [N,C,H,W]: mean, biased variance and invStd = 1/√(var + ε), each [C].
 * (The training forward computes these itself; this is for callers that want the statistics alone.)
 */
export function batchNormStats(gpu: Gpu, x: GPUBuffer, mean: GPUBuffer, variance: GPUBuffer, invStd: GPUBuffer, sizes: BatchNormSizes): void {
  const pl = plan('batchNormStats', sizes);
  const eps = sizes.eps ?? 1e-5;
  const vec = pl.vw === 4;
  const variant = chooseVariant(gpu, sizes);
  if (variant !== 'v1') {
    const kernel = variant === 'v2' ? forwardV2(vec, 'stats', false) : forwardV3(vec, 'stats', false);
    gpu.dispatch({ kernel, params: params(variant === 'v3' ? planV3(pl) : pl, eps), buffers: [x, mean, variance, invStd], workgroups: [pl.C] });
    return;
  }
  const part = gpu.pool.acquire((pl.C * pl.P + pl.C) * 8, 'batchNorm partials');
  gpu.dispatch({ kernel: partialV1(vec, false), params: params(pl, eps), buffers: [x, part], workgroups: [Math.ceil((pl.C * pl.P) / V1_WG)] });
  gpu.dispatch({ kernel: statsV1(vec), params: params(pl, eps), buffers: [part, mean, variance, invStd], workgroups: [Math.ceil(pl.C / V1_WG)] });
  gpu.pool.release(part);
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
  const pl = plan('batchNormForwardTrain', sizes);
  if (pl.M < 2) throw new ShapeError(`batchNormForwardTrain: training needs more than one value per channel, got input [${sizes.N}, ${sizes.C}, ${sizes.H}, ${sizes.W}]`);
  const eps = sizes.eps ?? 1e-5;
  const corr = (sizes.unbiasedRunningVar ?? true) ? pl.M / (pl.M - 1) : 1;
  const momentum = sizes.momentum ?? 0.1;
  const u = params(pl, eps, momentum, corr);
  const vec = pl.vw === 4;
  const run = running ? [running.mean, running.var] : [];
  const variant = chooseVariant(gpu, sizes);
  if (variant !== 'v1') {
    const kernel = variant === 'v2' ? forwardV2(vec, 'train', !!running) : forwardV3(vec, 'train', !!running);
    const u1 = variant === 'v3' ? params(planV3(pl), eps, momentum, corr) : u;
    gpu.dispatch({ kernel, params: u1, buffers: [x, gamma, beta, y, mean, invStd, ...run], workgroups: [pl.C] });
    return;
  }
  const part = gpu.pool.acquire((pl.C * pl.P + pl.C) * 8, 'batchNorm partials');
  const groups = Math.ceil((pl.C * pl.P) / V1_WG);
  gpu.dispatch({ kernel: partialV1(vec, true), params: u, buffers: [x, gamma, beta, part], workgroups: [groups] });
  gpu.dispatch({ kernel: trainV1(vec, !!running), params: u, buffers: [x, part, y, mean, invStd, ...run], workgroups: [groups] });
  gpu.pool.release(part);
}

const runningKernel = memoKernel(() => ({
  name: 'batch_norm_running_v1',
  wgsl: /* wgsl */ `
${PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> meanIn: array<f32>;
@group(0) @binding(2) var<storage, read> invStdIn: array<f32>;
@group(0) @binding(3) var<storage, read_write> runMean: array<f32>;
@group(0) @binding(4) var<storage, read_write> runVar: array<f32>;
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let mean = meanIn[c];
  let variance = max(1.0 / (invStdIn[c] * invStdIn[c]) - p.eps, 0.0);
  ${RUNNING}
}`,
}));

/**
 * Running-statistics update from the saved (μ, invStd) of a training forward, for callers that did not pass
 * `running` to batchNormForwardTrain (which does this in the same dispatch). The variance is recovered as
 * 1/invStd² − ε, so pass the forward's ε.
 */
export function updateRunningStats(gpu: Gpu, mean: GPUBuffer, invStd: GPUBuffer, runningMean: GPUBuffer, runningVar: GPUBuffer, sizes: BatchNormTrainSizes): void {
  const pl = plan('updateRunningStats', sizes);
  const corr = (sizes.unbiasedRunningVar ?? true) && pl.M > 1 ? pl.M / (pl.M - 1) : 1;
  gpu.dispatch({
    kernel: runningKernel(),
    params: params(pl, sizes.eps ?? 1e-5, sizes.momentum ?? 0.1, corr),
    buffers: [mean, invStd, runningMean, runningVar],
    workgroups: [Math.ceil(pl.C / V1_WG)],
  });
}

const EVAL: MapSpec = {
  name: 'batch_norm_eval',
  params: ['HW: u32', 'C: u32', 'eps: f32'],
  inputs: ['x'],
  tables: ['gamma', 'beta', 'rmean', 'rvar'],
  outputs: ['y'],
  body: `let c = (idx / U(p.HW)) % U(p.C);
  y = (x - rmean_at(c)) * gamma_at(c) * inverseSqrt(rvar_at(c) + p.eps) + beta_at(c);`,
};

/** Evaluation forward: y = γ·(x − running_mean)/√(running_var + ε) + β (`mapVariant`: v1 scalar, v2 vec4). */
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
  plan('batchNormForwardEval', sizes);
  const HW = sizes.H * sizes.W;
  dispatchMap(gpu, EVAL, { x, gamma, beta, rmean: runningMean, rvar: runningVar, y }, sizes.N * sizes.C * HW, [HW, sizes.C, f32(sizes.eps ?? 1e-5)], sizes.mapVariant);
}
// dx = dy·γ/√(running_var + ε)   (not provided: evaluation mode has no backward in training)

// ---- backward ----------------------------------------------------------------------------------------------

// Pass 1: (Σdy, Σdy·(x − μ)) of each chunk; chunk 0 copies (μ, invStd) for pass 2.
const gradPartialV1 = memoKernel((vec: boolean) => ({
  name: `batch_norm_grad_partial_v1${vec ? '_vec4' : ''}`,
  wgsl: /* wgsl */ `${head(vec)}
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read> meanIn: array<f32>;
@group(0) @binding(4) var<storage, read> invStdIn: array<f32>;
@group(0) @binding(5) var<storage, read_write> part: array<vec2<f32>>;
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x;
  if (g >= p.C * p.P) { return; }
  ${CHUNK}
  let mean = meanIn[c];
  var a = T();
  var b = T();
  ${forChunk('let d = dy[k]; a += d; b += d * (x[k] - mean);')}
  part[g] = vec2<f32>(hsum(a), hsum(b));
  if (q == 0u) { part[p.C * p.P + c] = vec2<f32>(mean, invStdIn[c]); }
}`,
}));

// dx = k1·dy − k2 − (x − μ)·k3 with k1 = γ·invStd, k2 = k1·Σdy/M, k3 = k1·invStd²·Σdy·(x − μ)/M.
const GRAD_DX = 'dx[k] = k1 * dy[k] - k2 - (x[k] - mean) * k3;';
const GRAD_COEFFS = /* wgsl */ `
  let k1 = gamma[c] * inv;
  let k2 = k1 * sums.x / count;
  let k3 = k1 * inv * inv * sums.y / count;`;
const gradStore = (accumulate: boolean) => /* wgsl */ `
    dgamma[c] = inv * sums.y${accumulate ? ' + dgamma[c]' : ''};
    dbeta[c] = sums.x${accumulate ? ' + dbeta[c]' : ''};`;

// Pass 2: sum the channel's partials, write the chunk's dx; chunk 0 writes dγ and dβ.
const gradV1 = memoKernel((vec: boolean, accumulate: boolean) => ({
  name: `batch_norm_grad_v1${vec ? '_vec4' : ''}${accumulate ? '_acc' : ''}`,
  wgsl: /* wgsl */ `${head(vec)}
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> part: array<vec2<f32>>;
@group(0) @binding(5) var<storage, read_write> dx: array<T>;
@group(0) @binding(6) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> dbeta: array<f32>;
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x;
  if (g >= p.C * p.P) { return; }
  ${CHUNK}
  var sums = vec2<f32>();
  for (var r = 0u; r < p.P; r++) { sums += part[c * p.P + r]; }
  let saved = part[p.C * p.P + c];
  let mean = saved.x;
  let inv = saved.y;
  let count = f32(p.Mu * VW);
  ${GRAD_COEFFS}
  if (q == 0u) {${gradStore(accumulate)}
  }
  ${forChunk(GRAD_DX)}
}`,
}));

// Bindings of the one-dispatch backwards (v2, v3).
const GRAD_DECL = /* wgsl */ `
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> dy: array<T>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
@group(0) @binding(4) var<storage, read> meanIn: array<f32>;
@group(0) @binding(5) var<storage, read> invStdIn: array<f32>;
@group(0) @binding(6) var<storage, read_write> dx: array<T>;
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;`;

const gradV2 = memoKernel((vec: boolean, accumulate: boolean) => ({
  name: `batch_norm_grad_v2${vec ? '_vec4' : ''}${accumulate ? '_acc' : ''}`,
  wgsl: /* wgsl */ `${head(vec)}
${GRAD_DECL}
${TREE}
@compute @workgroup_size(${V2_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let mean = meanIn[c];
  let inv = invStdIn[c];
  var a = T();
  var b = T();
  ${forStrided('let d = dy[k]; a += d; b += d * (x[k] - mean);')}
  let sums = treeSum(t, vec2<f32>(hsum(a), hsum(b)));
  let count = f32(p.Mu * VW);
  ${GRAD_COEFFS}
  if (t == 0u) {${gradStore(accumulate)}
  }
  ${forStrided(GRAD_DX)}
}`,
}));

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
  const pl = plan('batchNormBackward', sizes);
  const u = params(pl, sizes.eps ?? 1e-5);
  const vec = pl.vw === 4;
  const accumulate = !!sizes.accumulate;
  const variant = chooseVariant(gpu, sizes);
  if (variant !== 'v1') {
    const kernel = variant === 'v2' ? gradV2(vec, accumulate) : gradV3(vec, accumulate);
    const u1 = variant === 'v3' ? params(planV3(pl), sizes.eps ?? 1e-5) : u;
    gpu.dispatch({ kernel, params: u1, buffers: [x, dy, gamma, mean, invStd, dx, dgamma, dbeta], workgroups: [pl.C] });
    return;
  }
  const part = gpu.pool.acquire((pl.C * pl.P + pl.C) * 8, 'batchNorm grad partials');
  const groups = Math.ceil((pl.C * pl.P) / V1_WG);
  gpu.dispatch({ kernel: gradPartialV1(vec), params: u, buffers: [x, dy, mean, invStd, part], workgroups: [groups] });
  gpu.dispatch({ kernel: gradV1(vec, accumulate), params: u, buffers: [x, dy, gamma, part, dx, dgamma, dbeta], workgroups: [groups] });
  gpu.pool.release(part);
}

const values = (s: BatchNormSizes) => s.N * s.C * s.H * s.W;
export const batchNormForwardTrainCost = (s: BatchNormSizes): Cost => ({ flops: 6 * values(s), bytes: 4 * 2 * values(s) });
export const batchNormForwardEvalCost = (s: BatchNormSizes): Cost => ({ flops: 3 * values(s), bytes: 4 * 2 * values(s) });
export const batchNormBackwardCost = (s: BatchNormSizes): Cost => ({ flops: 8 * values(s), bytes: 4 * 3 * values(s) });
