// One step of torch.optim.SGD on a flat float32 parameter tensor (n elements), in place:
//   g = grad + wd·θ
//   momentum m ≠ 0:  buf = g on the first step, else m·buf + (1 − dampening)·g;  g = g + m·buf (nesterov) or buf
//   θ −= lr·g
// (exactly PyTorch's order of operations; the momentum buffer `velocity` persists between steps.)
// Cost: 3 flops per element plain, 7 with momentum; 12 bytes per element plain (θ read and written, grad
// read), 20 with momentum.
//
// sgd_v1 / sgd_v2             without momentum: the elementwise map template (scalar / vec4; elementwise.ts)
// sgd_momentum_v1 / _v2       with a momentum buffer; nesterov and the first step are uniform flags.
// sgd_many_v1, sgd_many_momentum_v1   the same over up to 7 tensors per dispatch (sgdStepMany, below).
import { DataError, ShapeError } from '../errors.js';
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, f32, grid1d, memoKernel, uniforms } from './common.js';
import { type ElementwiseVariant, type MapSpec, dispatchMap } from './elementwise.js';

export interface SgdSizes {
  n: number;
  lr: number;
  weightDecay?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  /** The momentum buffer is initialised to g instead of updated (PyTorch's first step with momentum). */
  firstStep?: boolean;
  /** Force the scalar (v1) or vec4 (v2) map; by default v2 when the buffers hold whole vec4s. */
  variant?: ElementwiseVariant;
}

const PARAMS = ['lr: f32', 'wd: f32', 'm: f32', 'damp1: f32', 'nesterov: u32', 'first: u32'];

const PLAIN: MapSpec = {
  name: 'sgd',
  params: PARAMS,
  inputs: ['grad'],
  outputs: ['param'],
  loads: ['param'],
  body: 'param -= p.lr * (grad + p.wd * param);',
};

const MOMENTUM: MapSpec = {
  name: 'sgd_momentum',
  params: PARAMS,
  inputs: ['grad'],
  outputs: ['param', 'velocity'],
  loads: ['param', 'velocity'],
  body: `var g = grad + p.wd * param;
  if (p.first != 0u) { velocity = g; } else { velocity = p.m * velocity + p.damp1 * g; }
  if (p.nesterov != 0u) { g += p.m * velocity; } else { g = velocity; }
  param -= p.lr * g;`,
};

/**
 * θ ← SGD step (in place) from grad; `velocity` is the momentum buffer (required when momentum ≠ 0, its
 * contents ignored on the first step; pass null without momentum).
 */
export function sgdStep(gpu: Gpu, param: GPUBuffer, grad: GPUBuffer, velocity: GPUBuffer | null, s: SgdSizes): void {
  const m = s.momentum ?? 0;
  const damp = s.dampening ?? 0;
  if (s.nesterov && (m <= 0 || damp !== 0)) throw new DataError(`sgdStep: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum=${m} dampening=${damp}`);
  if (m !== 0 && !velocity) throw new ShapeError(`sgdStep: momentum=${m} needs a velocity buffer of ${s.n} floats`);
  const params = [f32(s.lr), f32(s.weightDecay ?? 0), f32(m), f32(1 - damp), s.nesterov ? 1 : 0, s.firstStep ? 1 : 0];
  if (m === 0) dispatchMap(gpu, PLAIN, { grad, param }, s.n, params, s.variant);
  else dispatchMap(gpu, MOMENTUM, { grad, param, velocity: velocity! }, s.n, params, s.variant);
}

export const sgdCost = ({ n, momentum }: { n: number; momentum?: number }): Cost =>
  momentum ? { flops: 7 * n, bytes: 20 * n } : { flops: 3 * n, bytes: 12 * n };

// ---- many tensors per dispatch ------------------------------------------------------------------------------
// sgd_many_v1 / sgd_many_momentum_v1: the same update over up to K tensors in one dispatch (a model has a
// dozen small parameter tensors; one dispatch each costs ~45 µs on llvmpipe, more than their arithmetic).
// The tensors are laid end to end in one index space: invocation i finds its tensor k by the prefix offsets
// o_k ≤ i < o_{k+1} in the uniform block and updates element i − o_k. K is bounded by the adapter's storage
// bindings per stage (2 per tensor, 3 with momentum).

/** One parameter tensor of a multi-tensor step: its buffers and element count. */
export interface SgdTensor {
  param: GPUBuffer;
  grad: GPUBuffer;
  /** The momentum buffer (required when momentum ≠ 0). */
  velocity: GPUBuffer | null;
  n: number;
}

const MAX_GROUP = 7;

const manyKernel = memoKernel((K: number, momentum: boolean) => {
  const per = momentum ? 3 : 2;
  const offsets = range(K + 1).map((k) => `o${k}: u32`).join(', ');
  const decl = range(K).flatMap((k) => [
    `@group(0) @binding(${1 + per * k}) var<storage, read_write> param${k}: array<f32>;`,
    `@group(0) @binding(${2 + per * k}) var<storage, read> grad${k}: array<f32>;`,
    ...(momentum ? [`@group(0) @binding(${3 + per * k}) var<storage, read_write> vel${k}: array<f32>;`] : []),
  ]);
  // The same arithmetic, in the same order, as the PLAIN and MOMENTUM map bodies above.
  const update = (k: number) =>
    momentum
      ? `var g = grad${k}[j] + p.wd * param${k}[j];
    var v = vel${k}[j];
    if (p.first != 0u) { v = g; } else { v = p.m * v + p.damp1 * g; }
    vel${k}[j] = v;
    if (p.nesterov != 0u) { g += p.m * v; } else { g = v; }
    param${k}[j] -= p.lr * g;`
      : `param${k}[j] -= p.lr * (grad${k}[j] + p.wd * param${k}[j]);`;
  const branches = range(K).map((k) => `${k ? ' else ' : ''}if (i < p.o${k + 1}) {\n    let j = i - p.o${k};\n    ${update(k)}\n  }`).join('');
  return {
    name: `sgd_many${momentum ? '_momentum' : ''}_v1_x${K}`,
    wgsl: /* wgsl */ `
struct Params { ${offsets}, lr: f32, wd: f32, m: f32, damp1: f32, nesterov: u32, first: u32 }
@group(0) @binding(0) var<uniform> p: Params;
${decl.join('\n')}
@compute @workgroup_size(${MANY_WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(MANY_WG)};
  if (i >= p.o${K}) { return; }
  ${branches}
}`,
  };
});
const MANY_WG = 256;
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * One SGD step (sgdStep's arithmetic) over many tensors in as few dispatches as the adapter's binding limit
 * allows. All tensors share the hyperparameters and the first-step flag.
 */
export function sgdStepMany(gpu: Gpu, tensors: SgdTensor[], s: Omit<SgdSizes, 'n' | 'variant'>): void {
  const m = s.momentum ?? 0;
  const damp = s.dampening ?? 0;
  if (s.nesterov && (m <= 0 || damp !== 0)) throw new DataError(`sgdStepMany: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum=${m} dampening=${damp}`);
  const per = m !== 0 ? 3 : 2;
  const K = Math.max(1, Math.min(MAX_GROUP, Math.floor(gpu.device.limits.maxStorageBuffersPerShaderStage / per)));
  const live = tensors.filter((t) => t.n > 0);
  for (let start = 0; start < live.length; start += K) {
    const group = live.slice(start, start + K);
    if (group.length === 1) {
      const [t] = group;
      sgdStep(gpu, t.param, t.grad, t.velocity, { ...s, n: t.n });
      continue;
    }
    const offsets = [0];
    for (const t of group) offsets.push(offsets.at(-1)! + t.n);
    const buffers = group.flatMap((t) => {
      if (m !== 0 && !t.velocity) throw new ShapeError(`sgdStepMany: momentum=${m} needs a velocity buffer of ${t.n} floats`);
      return m !== 0 ? [t.param, t.grad, t.velocity!] : [t.param, t.grad];
    });
    gpu.dispatch({
      kernel: manyKernel(group.length, m !== 0),
      params: uniforms(...offsets, f32(s.lr), f32(s.weightDecay ?? 0), f32(m), f32(1 - damp), s.nesterov ? 1 : 0, s.firstStep ? 1 : 0),
      buffers,
      workgroups: grid1d(offsets.at(-1)!, MANY_WG),
    });
  }
}
