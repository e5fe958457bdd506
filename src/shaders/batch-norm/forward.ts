// Batch norm's forward kernels: the per-channel statistics, the training forward (which also saves μ and invStd
// and may update the running statistics), the standalone running-statistics update and the evaluation forward;
// and the WGSL building blocks the backward kernels (backward.ts) share: the channel walk and the merge of
// per-chunk partials. The math, the variants and why each exists are in index.ts's header.
import { type BufferDecl, declareKernel } from '../../gpu/kernel.js';
import { DROPOUT_WGSL, dropoutApply } from '../dropout.js';
import { mapOp } from '../elementwise.js';
import { memoKernel, treeReduction } from '../wgsl.js';

export const V1_WG = 64;
export const V2_WG = 256;
export const V3_WG = 32;

/**
 * Uniforms of every batch-norm kernel, one layout for all (a kernel ignores the fields it does not use).
 * C channels; a unit is one value (scalar kernels) or a vec4 of 4 (vec4 kernels, when H·W % 4 = 0):
 * HWu units per H·W plane, Mu per channel; v1 and v3 split a channel into P chunks of Lu units. key,
 * threshold and dscale are the dropout mask's (dropout.ts) where a kernel folds dropout in.
 */
export const PARAMS = {
  C: 'u32',
  HWu: 'u32',
  Mu: 'u32',
  P: 'u32',
  Lu: 'u32',
  eps: 'f32',
  momentum: 'f32',
  corr: 'f32',
  key: 'u32',
  threshold: 'u32',
  dscale: 'f32',
} as const;

// x, y, dy and dx hold units: vec4 in the vec4 kernels, f32 otherwise.
export const units = (vec: boolean, access: 'read' | 'read_write'): BufferDecl => {
  const t = vec ? 'vec4<f32>' : 'f32';
  return access === 'read' ? { read: t } : { read_write: t };
};
// The v1 partials: C·P (mean, M2) or (Σdy, Σdy·(x − μ)) per chunk, then C per-channel pairs copied by chunk 0
// for the second pass, which keeps every kernel within WebGPU's default 8 storage buffers.
export const PARTIALS_IN: BufferDecl = { read: 'vec2<f32>' };
export const PARTIALS_OUT: BufferDecl = { read_write: 'vec2<f32>' };

// With dropout, drop(v, k) applies the dropout mask to unit k's values (bit for bit the dropout kernel's
// arithmetic, at the same element indices): the training forward stores drop(y), the backward reads drop(dy).
export const head = (vec: boolean, dropout = false) => /* wgsl */ `
alias T = ${vec ? 'vec4<f32>' : 'f32'};
alias U = ${vec ? 'vec4<u32>' : 'u32'};
const VW = ${vec ? 4 : 1}u;${
  dropout
    ? `${DROPOUT_WGSL}
fn drop(v: T, k: u32) -> T {
  let idx = ${vec ? 'U(4u * k) + U(0u, 1u, 2u, 3u)' : 'k'};
  return ${dropoutApply('v', 'idx', 'p.dscale')};
}`
    : ''
}
fn hsum(v: T) -> f32 { return ${vec ? 'v.x + v.y + v.z + v.w' : 'v'}; }
// Flat index (in units of T) of unit u of channel c: unit u is (n, i) with n = u / HWu.
fn unitIndex(c: u32, u: u32) -> u32 { let n = u / p.HWu; return (n * p.C + c) * p.HWu + (u - n * p.HWu); }`;

// v1 loops over chunk q of channel c, units [u0, u1), with k the flat index of the current unit.
export const CHUNK = /* wgsl */ `
  let c = g / p.P;
  let q = g - c * p.P;
  let u0 = q * p.Lu;
  let u1 = min(u0 + p.Lu, p.Mu);
  let k0 = unitIndex(c, u0);
  let i0 = u0 % p.HWu;`;
export const forChunk = (body: string) => /* wgsl */ `
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

// v2 walks channel c grid-strided: invocation t takes units t, t + 256, … (coalesced loads on GPUs).
export const forStrided = (body: string) => /* wgsl */ `
  for (var u = t; u < p.Mu; u += ${V2_WG}u) {
    let k = unitIndex(c, u);
    ${body}
  }`;
// v2's workgroup sum (every invocation gets the total).
export const TREE_SUM = treeReduction({ fn: 'treeSum', type: 'vec2<f32>', size: V2_WG });

// Invocation q of channel c's v3 workgroup owns chunk q (units [q·Lu, (q+1)·Lu)); invocations past the P
// chunks (tiny channels) get an empty range but still meet the barrier.
export const V3_CHUNK = /* wgsl */ `
  let c = wid.x;
  let live = lq < p.P;
  let q = min(lq, p.P - 1u);
  let u0 = q * p.Lu;
  let u1 = select(u0, min(u0 + p.Lu, p.Mu), live);
  let k0 = unitIndex(c, u0);
  let i0 = u0 % p.HWu;`;
export const V3_ARGS = '@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lq: u32';

const RUNNING = /* wgsl */ `
  runMean[c] = (1.0 - p.momentum) * runMean[c] + p.momentum * mean;
  runVar[c] = (1.0 - p.momentum) * runVar[c] + p.momentum * p.corr * variance;`;
const RUNNING_BUFFERS = { runMean: 'read_write', runVar: 'read_write' } as const;

// ---- v1: two passes over chunks ------------------------------------------------------------------------------

// Pass 1: (mean, M2) of each chunk; chunk 0 copies (γ, β) for the training pass 2 (`affine`; not for the
// statistics alone).
export const partialV1 = memoKernel((vec: boolean, affine: boolean) =>
  declareKernel({
    name: `batch_norm_partial_v1${vec ? '_vec4' : ''}${affine ? '' : '_stats'}`,
    params: PARAMS,
    buffers: affine
      ? { x: units(vec, 'read'), gamma: 'read', beta: 'read', part: PARTIALS_OUT }
      : { x: units(vec, 'read'), part: PARTIALS_OUT },
    wgsl: /* wgsl */ `${head(vec)}
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
  }),
);

// Pass 2 (training): merge, normalise the chunk; chunk 0 writes μ, invStd and the running statistics.
export const trainV1 = memoKernel((vec: boolean, running: boolean, dropout: boolean) =>
  declareKernel({
    name: `batch_norm_train_v1${vec ? '_vec4' : ''}${running ? '_running' : ''}${dropout ? '_dropout' : ''}`,
    params: PARAMS,
    buffers: {
      x: units(vec, 'read'),
      part: PARTIALS_IN,
      y: units(vec, 'read_write'),
      meanOut: 'read_write',
      invStdOut: 'read_write',
      ...(running ? RUNNING_BUFFERS : {}),
    },
    wgsl: /* wgsl */ `${head(vec, dropout)}
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
  ${forChunk(normalise('gb.y', dropout))}
}`,
  }),
);

// Pass 2 of the statistics alone: one invocation per channel merges its partials.
export const statsV1 = memoKernel((vec: boolean) =>
  declareKernel({
    name: `batch_norm_stats_v1${vec ? '_vec4' : ''}`,
    params: PARAMS,
    buffers: { part: PARTIALS_IN, meanOut: 'read_write', varOut: 'read_write', invStdOut: 'read_write' },
    wgsl: /* wgsl */ `${head(vec)}
${MERGE}
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let st = channelStats(c);
  meanOut[c] = st.x;
  varOut[c] = st.y;
  invStdOut[c] = inverseSqrt(st.y + p.eps);
}`,
  }),
);

// ---- v2 and v3: one dispatch, one workgroup per channel --------------------------------------------------------

// mode 'train' writes y, μ, invStd (+ the running statistics); mode 'stats' writes μ, σ², invStd only.
const forwardBuffers = (vec: boolean, train: boolean, running: boolean): Record<string, BufferDecl> =>
  train
    ? {
        x: units(vec, 'read'),
        gamma: 'read',
        beta: 'read',
        y: units(vec, 'read_write'),
        meanOut: 'read_write',
        invStdOut: 'read_write',
        ...(running ? RUNNING_BUFFERS : {}),
      }
    : { x: units(vec, 'read'), meanOut: 'read_write', varOut: 'read_write', invStdOut: 'read_write' };

// y = (x − μ)·(γ·invStd) + β for unit k, through the dropout mask with `dropout`.
const normalise = (beta: string, dropout: boolean) =>
  dropout ? `y[k] = drop((x[k] - mean) * sc + ${beta}, k);` : `y[k] = (x[k] - mean) * sc + ${beta};`;

// The end of a one-dispatch forward, given the channel's mean and variance: invocation `first` stores μ and
// invStd (and the running statistics, or σ² for the statistics alone); in training every invocation then
// normalises the values its loop (`walk`) visits.
const finishForward = (first: string, train: boolean, running: boolean, walk: (body: string) => string, dropout: boolean) => /* wgsl */ `
  let inv = inverseSqrt(variance + p.eps);
  if (${first} == 0u) {
    meanOut[c] = mean;
    invStdOut[c] = inv;
    ${train ? (running ? RUNNING : '') : 'varOut[c] = variance;'}
  }
  ${train ? `let sc = gamma[c] * inv;\n  let b = beta[c];\n  ${walk(normalise('b', dropout))}` : ''}`;

// v2: grid-strided sums, the mean and then Σ(x − μ)² reduced by the workgroup tree.
export const forwardV2 = memoKernel((vec: boolean, mode: 'train' | 'stats', running: boolean, dropout: boolean) => {
  const train = mode === 'train';
  return declareKernel({
    name: `batch_norm_${mode}_v2${vec ? '_vec4' : ''}${running ? '_running' : ''}${dropout ? '_dropout' : ''}`,
    params: PARAMS,
    buffers: forwardBuffers(vec, train, running),
    wgsl: /* wgsl */ `${head(vec, dropout)}
${TREE_SUM}
@compute @workgroup_size(${V2_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let count = f32(p.Mu * VW);
  var s = T();
  ${forStrided('s += x[k];')}
  let mean = treeSum(t, vec2<f32>(hsum(s), 0.0)).x / count;
  var d = T();
  ${forStrided('let e = x[k] - mean; d += e * e;')}
  let variance = treeSum(t, vec2<f32>(hsum(d), 0.0)).x / count;
  ${finishForward('t', train, running, forStrided, dropout)}
}`,
  });
});

// v3: each invocation computes its chunk's (mean, M2) as v1 does; the partials meet in workgroup memory behind
// one barrier, and every invocation merges them itself before normalising its chunk.
export const forwardV3 = memoKernel((vec: boolean, mode: 'train' | 'stats', running: boolean, dropout: boolean) => {
  const train = mode === 'train';
  return declareKernel({
    name: `batch_norm_${mode}_v3${vec ? '_vec4' : ''}${running ? '_running' : ''}${dropout ? '_dropout' : ''}`,
    params: PARAMS,
    buffers: forwardBuffers(vec, train, running),
    wgsl: /* wgsl */ `${head(vec, dropout)}
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
  ${finishForward('lq', train, running, forChunk, dropout)}
}`,
  });
});

// ---- running statistics alone --------------------------------------------------------------------------------

// From the saved (μ, invStd), one invocation per channel; the biased variance is recovered as 1/invStd² − ε.
export const runningV1 = memoKernel(() =>
  declareKernel({
    name: 'batch_norm_running_v1',
    params: PARAMS,
    buffers: { meanIn: 'read', invStdIn: 'read', ...RUNNING_BUFFERS },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= p.C) { return; }
  let mean = meanIn[c];
  let variance = max(1.0 / (invStdIn[c] * invStdIn[c]) - p.eps, 0.0);
  ${RUNNING}
}`,
  }),
);

// ---- evaluation ----------------------------------------------------------------------------------------------

// y = γ·(x − r_μ)/√(r_σ² + ε) + β on the elementwise map template (v1 scalar, v2 vec4).
export const BATCH_NORM_EVAL = mapOp(
  {
    name: 'batch_norm_eval',
    params: { HW: 'u32', C: 'u32', eps: 'f32' },
    inputs: ['x'],
    tables: ['gamma', 'beta', 'rmean', 'rvar'],
    outputs: ['y'],
    body: `let c = (idx / U(p.HW)) % U(p.C);
  y = (x - rmean_at(c)) * gamma_at(c) * inverseSqrt(rvar_at(c) + p.eps) + beta_at(c);`,
  },
  ({ n }) => ({ flops: 3 * n, bytes: 8 * n }),
);
