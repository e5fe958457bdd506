// Batch norm's backward kernels. Training mode: from x, dy and the forward's saved μ and invStd,
// dβ = Σdy, dγ = invStd·Σdy·(x − μ) and dx = k1·dy − k2 − (x − μ)·k3 with k1 = γ·invStd,
// k2 = k1·Σdy/M, k3 = k1·invStd²·Σdy·(x − μ)/M. Evaluation mode (`frozen`: the running statistics, which do
// not depend on x): μ = r_μ and invStd = 1/√(r_σ² + ε) read from the running buffers, the same dβ and dγ, and
// dx = k1·dy. With `dropout` (training only), the forward stored dropout(y) and dy is taken through the same mask.
// Each variant walks the channel as its forward does (forward.ts).
import { type BufferDecl, declareKernel } from '../../gpu/kernel.js';
import { memoKernel } from '../wgsl.js';
import {
  CHUNK,
  forChunk,
  forStrided,
  head,
  PARAMS,
  PARTIALS_IN,
  PARTIALS_OUT,
  TREE_SUM,
  units,
  V1_WG,
  V2_WG,
  V3_ARGS,
  V3_CHUNK,
  V3_WG,
} from './forward.js';

// dy of unit k: through the dropout mask (drop, forward.ts's head) when the training forward folded dropout in.
const dyAt = (dropout: boolean) => (dropout ? 'drop(dy[k], k)' : 'dy[k]');
const gradDx = (frozen: boolean, dropout: boolean) =>
  frozen ? `dx[k] = k1 * ${dyAt(dropout)};` : `dx[k] = k1 * ${dyAt(dropout)} - k2 - (x[k] - mean) * k3;`;
const gradSums = (dropout: boolean) => `let d = ${dyAt(dropout)}; a += d; b += d * (x[k] - mean);`;
// The per-channel 1/σ: saved by the training forward, or from the frozen running variance.
const INV = (frozen: boolean) => (frozen ? 'inverseSqrt(varIn[c] + p.eps)' : 'invStdIn[c]');
const invBuffer = (frozen: boolean): Record<string, BufferDecl> => (frozen ? { varIn: 'read' } : { invStdIn: 'read' });
const variantName = (frozen: boolean, dropout: boolean) => `${frozen ? '_eval' : ''}${dropout ? '_dropout' : ''}`;
const GRAD_COEFFS = /* wgsl */ `
  let k1 = gamma[c] * inv;
  let k2 = k1 * sums.x / count;
  let k3 = k1 * inv * inv * sums.y / count;`;
// With `accumulate`, dγ += … and dβ += … (parameter gradients accumulate); dx is always overwritten.
const gradStore = (accumulate: boolean) => /* wgsl */ `
    dgamma[c] = inv * sums.y${accumulate ? ' + dgamma[c]' : ''};
    dbeta[c] = sums.x${accumulate ? ' + dbeta[c]' : ''};`;

// ---- v1: two passes over chunks ------------------------------------------------------------------------------

// Pass 1: (Σdy, Σdy·(x − μ)) of each chunk; chunk 0 copies (μ, invStd) for pass 2.
export const gradPartialV1 = memoKernel((vec: boolean, frozen: boolean, dropout: boolean) =>
  declareKernel({
    name: `batch_norm_grad${variantName(frozen, dropout)}_partial_v1${vec ? '_vec4' : ''}`,
    params: PARAMS,
    buffers: { x: units(vec, 'read'), dy: units(vec, 'read'), meanIn: 'read', ...invBuffer(frozen), part: PARTIALS_OUT },
    wgsl: /* wgsl */ `${head(vec, dropout)}
@compute @workgroup_size(${V1_WG}) fn main(@builtin(global_invocation_id) gid: vec3u) {
  let g = gid.x;
  if (g >= p.C * p.P) { return; }
  ${CHUNK}
  let mean = meanIn[c];
  var a = T();
  var b = T();
  ${forChunk(gradSums(dropout))}
  part[g] = vec2<f32>(hsum(a), hsum(b));
  if (q == 0u) { part[p.C * p.P + c] = vec2<f32>(mean, ${INV(frozen)}); }
}`,
  }),
);

// Pass 2: sum the channel's partials, write the chunk's dx; chunk 0 writes dγ and dβ.
export const gradV1 = memoKernel((vec: boolean, accumulate: boolean, frozen: boolean, dropout: boolean) =>
  declareKernel({
    name: `batch_norm_grad${variantName(frozen, dropout)}_v1${vec ? '_vec4' : ''}${accumulate ? '_acc' : ''}`,
    params: PARAMS,
    buffers: {
      x: units(vec, 'read'),
      dy: units(vec, 'read'),
      gamma: 'read',
      part: PARTIALS_IN,
      dx: units(vec, 'read_write'),
      dgamma: 'read_write',
      dbeta: 'read_write',
    },
    wgsl: /* wgsl */ `${head(vec, dropout)}
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
  ${forChunk(gradDx(frozen, dropout))}
}`,
  }),
);

// ---- v2 and v3: one dispatch, one workgroup per channel --------------------------------------------------------

const gradBuffers = (vec: boolean, frozen: boolean): Record<string, BufferDecl> => ({
  x: units(vec, 'read'),
  dy: units(vec, 'read'),
  gamma: 'read',
  meanIn: 'read',
  ...invBuffer(frozen),
  dx: units(vec, 'read_write'),
  dgamma: 'read_write',
  dbeta: 'read_write',
});

// v2: grid-strided sums reduced by the workgroup tree.
export const gradV2 = memoKernel((vec: boolean, accumulate: boolean, frozen: boolean, dropout: boolean) =>
  declareKernel({
    name: `batch_norm_grad${variantName(frozen, dropout)}_v2${vec ? '_vec4' : ''}${accumulate ? '_acc' : ''}`,
    params: PARAMS,
    buffers: gradBuffers(vec, frozen),
    wgsl: /* wgsl */ `${head(vec, dropout)}
${TREE_SUM}
@compute @workgroup_size(${V2_WG}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let c = wid.x;
  let mean = meanIn[c];
  let inv = ${INV(frozen)};
  var a = T();
  var b = T();
  ${forStrided(gradSums(dropout))}
  let sums = treeSum(t, vec2<f32>(hsum(a), hsum(b)));
  let count = f32(p.Mu * VW);
  ${GRAD_COEFFS}
  if (t == 0u) {${gradStore(accumulate)}
  }
  ${forStrided(gradDx(frozen, dropout))}
}`,
  }),
);

// v3: chunk sums meet in workgroup memory behind one barrier; every invocation adds them up itself.
export const gradV3 = memoKernel((vec: boolean, accumulate: boolean, frozen: boolean, dropout: boolean) =>
  declareKernel({
    name: `batch_norm_grad${variantName(frozen, dropout)}_v3${vec ? '_vec4' : ''}${accumulate ? '_acc' : ''}`,
    params: PARAMS,
    buffers: gradBuffers(vec, frozen),
    wgsl: /* wgsl */ `${head(vec, dropout)}
var<workgroup> wpart: array<vec2<f32>, ${V3_WG}>;
@compute @workgroup_size(${V3_WG}) fn main(${V3_ARGS}) {
  ${V3_CHUNK}
  let mean = meanIn[c];
  let inv = ${INV(frozen)};
  var a = T();
  var b = T();
  ${forChunk(gradSums(dropout))}
  if (live) { wpart[lq] = vec2<f32>(hsum(a), hsum(b)); }
  workgroupBarrier();
  var sums = vec2<f32>();
  for (var r = 0u; r < p.P; r++) { sums += wpart[r]; }
  let count = f32(p.Mu * VW);
  ${GRAD_COEFFS}
  if (lq == 0u) {${gradStore(accumulate)}
  }
  ${forChunk(gradDx(frozen, dropout))}
}`,
  }),
);
