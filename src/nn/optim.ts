// torch.optim.SGD: weight decay in the coupled form (g + wd·θ), optional momentum, dampening, Nesterov.
import { DataError } from '../errors.js';
import * as sgd from '../shaders/sgd.js';
import { Tensor } from './tensor.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** An optimizer's state as named CPU arrays (checkpoints store them as `optimizer.<name>`). */
export type OptimizerState = Record<string, { shape: number[]; data: Float32Array }>;

/** What the trainer and the checkpoints need of an optimizer. */
export interface Optimizer {
  readonly params: Tensor[];
  /** Updates every parameter that has a gradient, in place on the GPU. */
  step(): void;
  /** Drops the gradients. */
  zeroGrad(): void;
  stateArrays(): Promise<OptimizerState>;
  loadStateArrays(state: OptimizerState): void;
}

export class SGD implements Optimizer {
  readonly options: Required<SGDOptions>;
  private readonly velocity = new Map<Tensor, Tensor>();

  constructor(
    readonly params: Tensor[],
    options: SGDOptions,
  ) {
    this.options = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options };
    const { lr, momentum, weightDecay, nesterov, dampening } = this.options;
    if (!(lr > 0 && lr < Infinity)) throw new DataError(`SGD: lr must be a finite number > 0, got ${lr}`);
    if (!(momentum >= 0 && momentum < Infinity)) throw new DataError(`SGD: momentum must be a finite number >= 0, got ${momentum}`);
    if (!(weightDecay >= 0 && weightDecay < Infinity))
      throw new DataError(`SGD: weight_decay must be a finite number >= 0, got ${weightDecay}`);
    if (!(dampening >= 0 && dampening <= 1)) throw new DataError(`SGD: dampening must be in [0, 1], got ${dampening}`);
    if (!Array.isArray(params) || params.some((p) => !(p instanceof Tensor) || p.dtype !== 'float32')) {
      throw new DataError('SGD: params must be an array of float32 Tensors (model.parameters())');
    }
    if (nesterov && (momentum <= 0 || dampening !== 0)) throw new DataError('SGD: nesterov needs momentum > 0 and dampening 0');
  }

  /** Updates every parameter that has a gradient, in place on the GPU, in a few multi-tensor dispatches. */
  step(): void {
    const { lr, momentum, dampening, weightDecay, nesterov } = this.options;
    // PyTorch initialises a momentum buffer on a parameter's first step with a gradient: group by that.
    const groups: Record<'first' | 'later', sgd.SgdTensor[]> = { first: [], later: [] };
    for (const p of this.params) {
      if (!p.grad) continue;
      let v: Tensor | null = null;
      let first = false;
      if (momentum > 0) {
        first = !this.velocity.has(p);
        v = this.velocity.get(p) ?? Tensor.empty(p.shape, { gpu: p.gpu, label: 'sgd momentum' }).keep();
        this.velocity.set(p, v);
      }
      groups[first ? 'first' : 'later'].push({ param: p.buffer, grad: p.grad.buffer, velocity: v?.buffer ?? null, n: p.size });
    }
    const gpu = this.params[0]?.gpu;
    for (const [name, tensors] of Object.entries(groups)) {
      if (tensors.length) sgd.sgdStepMany(gpu, tensors, { lr, weightDecay, momentum, dampening, nesterov, firstStep: name === 'first' });
    }
  }

  /** Drops the gradients (set_to_none, PyTorch's default), returning their buffers to the pool. */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Its momentum buffers as `velocity.<parameter index>` (where one exists yet), copied to the CPU. */
  async stateArrays(): Promise<OptimizerState> {
    const state: OptimizerState = {};
    for (const [i, p] of this.params.entries()) {
      const v = this.velocity.get(p);
      if (v) state[`velocity.${i}`] = { shape: [...v.shape], data: (await v.toArray()) as Float32Array };
    }
    return state;
  }

  /** Restores momentum buffers saved by stateArrays(). */
  loadStateArrays(state: OptimizerState): void {
    for (const [key, saved] of Object.entries(state)) {
      const m = /^velocity\.(\d+)$/.exec(key);
      const p = m ? this.params[Number(m[1])] : undefined;
      if (!p)
        throw new DataError(`SGD: unexpected optimizer state "${key}" (SGD keeps velocity.<i> for its ${this.params.length} parameters)`);
      if (saved.data.length !== p.size)
        throw new DataError(`SGD: momentum ${key} has ${saved.data.length} values, parameter ${m![1]} has ${p.size}`);
      const v = this.velocity.get(p) ?? Tensor.empty(p.shape, { gpu: p.gpu, label: 'sgd momentum' }).keep();
      p.gpu.write(v.buffer, saved.data);
      this.velocity.set(p, v);
    }
  }
}
