// One step of torch.optim.SGD on a flat float32 parameter tensor (n elements), in place:
//   g = grad + wd·θ
//   momentum m ≠ 0:  buf = g on the first step, else m·buf + (1 − dampening)·g;  g = g + m·buf (nesterov) or buf
//   θ −= lr·g
// (exactly PyTorch's order of operations; the momentum buffer `velocity` persists between steps.)
// Cost: 3 flops per element plain, 7 with momentum; 12 bytes per element plain (θ read and written, grad
// read), 20 with momentum.
//
// The arithmetic is written once, `sgdUpdate` below, and used by both kernel families:
// sgd_v1 / sgd_v2             without momentum (SGD_STEP): the elementwise map template, v1 scalar, v2 vec4
//                             (chosen whenever the buffers hold whole vec4s; see elementwise.ts)
// sgd_momentum_v1 / _v2       with a momentum buffer (SGD_MOMENTUM_STEP); nesterov and the first step are
//                             uniform flags.
// sgd_many_v1, sgd_many_momentum_v1   the same update over up to 7 tensors per dispatch (sgdStepMany, below).
import { DataError, ShapeError } from '../errors.js';
import { type BufferNeeds, checkBuffers, declareKernel, launch, type ParamType } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import { type ElementwiseVariant, type MapSpec, mapOp, runMap } from './elementwise.js';
import type { Cost } from './op.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel, range } from './wgsl.js';

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

const PARAMS = { lr: 'f32', wd: 'f32', m: 'f32', damp1: 'f32', nesterov: 'u32', first: 'u32' } as const satisfies Record<string, ParamType>;

/**
 * WGSL of one SGD update on the locals `param` and `velocity` (vars) and `grad` (a let), of type f32 or vec4:
 * the map bodies and the multi-tensor kernel both use it, so the arithmetic and its order exist once.
 */
const sgdUpdate = (momentum: boolean) =>
  momentum
    ? `var g = grad + p.wd * param;
  if (p.first != 0u) { velocity = g; } else { velocity = p.m * velocity + p.damp1 * g; }
  if (p.nesterov != 0u) { g += p.m * velocity; } else { g = velocity; }
  param -= p.lr * g;`
    : 'param -= p.lr * (grad + p.wd * param);';

const plainSpec: MapSpec = { name: 'sgd', params: PARAMS, inputs: ['grad'], outputs: ['param'], loads: ['param'], body: sgdUpdate(false) };
const momentumSpec: MapSpec = {
  name: 'sgd_momentum',
  params: PARAMS,
  inputs: ['grad'],
  outputs: ['param', 'velocity'],
  loads: ['param', 'velocity'],
  body: sgdUpdate(true),
};

export const sgdCost = ({ n, momentum }: { n: number; momentum?: number }): Cost =>
  momentum ? { flops: 7 * n, bytes: 20 * n } : { flops: 3 * n, bytes: 12 * n };

export const SGD_STEP = mapOp(plainSpec, ({ n }) => sgdCost({ n }));
export const SGD_MOMENTUM_STEP = mapOp(momentumSpec, ({ n }) => sgdCost({ n, momentum: 1 }));

type SgdHyper = Omit<SgdSizes, 'n' | 'variant'>;

/** The uniform values of a step; throws on Nesterov without momentum or with dampening. */
function hyperParams(op: string, s: SgdHyper): Record<keyof typeof PARAMS, number> {
  const m = s.momentum ?? 0;
  const damp = s.dampening ?? 0;
  for (const [name, v] of Object.entries({ lr: s.lr, weightDecay: s.weightDecay ?? 0, momentum: m, dampening: damp })) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new DataError(`${op}: ${name} must be a finite number, got ${v}`);
  }
  if (s.nesterov && (m <= 0 || damp !== 0))
    throw new DataError(`${op}: Nesterov momentum needs momentum > 0 and dampening = 0, got momentum=${m} dampening=${damp}`);
  return { lr: s.lr, wd: s.weightDecay ?? 0, m, damp1: 1 - damp, nesterov: s.nesterov ? 1 : 0, first: s.firstStep ? 1 : 0 };
}

/**
 * θ ← SGD step (in place) from grad; `velocity` is the momentum buffer (required when momentum ≠ 0, its
 * contents ignored on the first step; pass null without momentum).
 */
export function sgdStep(gpu: Gpu, param: GPUBuffer, grad: GPUBuffer, velocity: GPUBuffer | null, s: SgdSizes): void {
  const params = hyperParams('sgdStep', s);
  if (params.m !== 0 && !velocity) throw new ShapeError(`sgdStep: momentum=${params.m} needs a velocity buffer of ${s.n} floats`);
  if (params.m === 0) runMap(gpu, SGD_STEP, { grad, param }, { n: s.n, params, variant: s.variant });
  else runMap(gpu, SGD_MOMENTUM_STEP, { grad, param, velocity: velocity! }, { n: s.n, params, variant: s.variant });
}

// ---- many tensors per dispatch ------------------------------------------------------------------------------
// sgd_many_v1 / sgd_many_momentum_v1: the same update over up to K tensors in one dispatch (a model has a
// dozen small parameter tensors, and on llvmpipe one dispatch each costs more than their arithmetic).
// The tensors are laid end to end in one index space: invocation i finds its tensor k by the prefix offsets
// o_k ≤ i < o_{k+1} in the uniform block and updates element i − o_k. K is bounded by the adapter's storage
// bindings per stage (2 per tensor, 3 with momentum). A single kernel per (K, momentum): no registry.

/** One parameter tensor of a multi-tensor step: its buffers and element count. */
export interface SgdTensor {
  param: GPUBuffer;
  grad: GPUBuffer;
  /** The momentum buffer (required when momentum ≠ 0). */
  velocity: GPUBuffer | null;
  n: number;
}

const MAX_GROUP = 7;
const MANY_WG = 256;

const manyKernel = memoKernel((K: number, momentum: boolean) => {
  const branches = range(K)
    .map(
      (k) => `${k ? ' else ' : ''}if (i < p.o${k + 1}) {
    let j = i - p.o${k};
    let grad = grad${k}[j];
    var param = param${k}[j];
    ${momentum ? `var velocity = vel${k}[j];\n    ` : ''}${sgdUpdate(momentum).replaceAll('\n  ', '\n    ')}
    ${momentum ? `vel${k}[j] = velocity;\n    ` : ''}param${k}[j] = param;
  }`,
    )
    .join('');
  return declareKernel({
    name: `sgd_many${momentum ? '_momentum' : ''}_v1_x${K}`,
    params: { ...Object.fromEntries(range(K + 1).map((k) => [`o${k}`, 'u32' as const])), ...PARAMS },
    buffers: Object.fromEntries(
      range(K).flatMap((k) => [
        [`param${k}`, 'read_write' as const],
        [`grad${k}`, 'read' as const],
        ...(momentum ? [[`vel${k}`, 'read_write' as const] as const] : []),
      ]),
    ),
    wgsl: /* wgsl */ `
@compute @workgroup_size(${MANY_WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(MANY_WG)};
  if (i >= p.o${K}) { return; }
  ${branches}
}`,
  });
});

/**
 * One SGD step (sgdStep's arithmetic) over many tensors in as few dispatches as the adapter's binding limit
 * allows. All tensors share the hyperparameters and the first-step flag.
 */
export function sgdStepMany(gpu: Gpu, tensors: SgdTensor[], s: SgdHyper): void {
  const params = hyperParams('sgdStepMany', s);
  const momentum = params.m !== 0;
  const per = momentum ? 3 : 2;
  const K = Math.max(1, Math.min(MAX_GROUP, Math.floor(gpu.device.limits.maxStorageBuffersPerShaderStage / per)));
  const live = tensors.filter((t) => t.n > 0);
  for (let start = 0; start < live.length; start += K) {
    const group = live.slice(start, start + K);
    if (group.length === 1) {
      const [t] = group;
      sgdStep(gpu, t.param, t.grad, t.velocity, { ...s, n: t.n });
      continue;
    }
    const offsets: Record<string, number> = { o0: 0 };
    const buffers: Record<string, GPUBuffer> = {};
    const needs: BufferNeeds = {};
    group.forEach((t, k) => {
      if (momentum && !t.velocity) throw new ShapeError(`sgdStepMany: momentum=${params.m} needs a velocity buffer of ${t.n} floats`);
      offsets[`o${k + 1}`] = offsets[`o${k}`] + t.n;
      buffers[`param${k}`] = t.param;
      buffers[`grad${k}`] = t.grad;
      if (momentum) buffers[`vel${k}`] = t.velocity!;
      const i = start + k;
      needs[`param of tensor ${i}`] = [t.param, t.n];
      needs[`grad of tensor ${i}`] = [t.grad, t.n];
      needs[`velocity of tensor ${i}`] = [momentum ? t.velocity : null, t.n];
    });
    checkBuffers('sgdStepMany', needs);
    launch(gpu, manyKernel(group.length, momentum), {
      params: { ...offsets, ...params },
      buffers,
      workgroups: grid1d(offsets[`o${group.length}`], MANY_WG),
    });
  }
}
