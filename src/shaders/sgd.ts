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
import { DataError, ShapeError } from '../errors.js';
import { type Cost, type Gpu, f32 } from './common.js';
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
