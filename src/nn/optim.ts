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

export class SGD {
  readonly options: Required<SGDOptions>;
  private readonly velocity = new Map<Tensor, Tensor>();

  constructor(
    readonly params: Tensor[],
    options: SGDOptions,
  ) {
    this.options = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...options };
    const { lr, momentum, weightDecay, nesterov, dampening } = this.options;
    if (!(lr > 0)) throw new DataError(`SGD: lr must be > 0, got ${lr}`);
    if (!(momentum >= 0)) throw new DataError(`SGD: momentum must be >= 0, got ${momentum}`);
    if (!(weightDecay >= 0)) throw new DataError(`SGD: weight_decay must be >= 0, got ${weightDecay}`);
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

  /** Momentum buffers by parameter index (null where none yet), copied to the CPU for checkpoints. */
  async velocityArrays(): Promise<({ shape: number[]; data: Float32Array } | null)[]> {
    return Promise.all(
      this.params.map(async (p) => {
        const v = this.velocity.get(p);
        return v ? { shape: [...v.shape], data: (await v.toArray()) as Float32Array } : null;
      }),
    );
  }

  /** Restores momentum buffers saved by velocityArrays(). */
  loadVelocity(velocity: ({ shape: number[]; data: Float32Array } | null)[]): void {
    this.params.forEach((p, i) => {
      const saved = velocity[i];
      if (!saved) return;
      if (saved.data.length !== p.size)
        throw new DataError(`SGD.loadVelocity: momentum ${i} has ${saved.data.length} values, parameter has ${p.size}`);
      const v = this.velocity.get(p) ?? Tensor.empty(p.shape, { gpu: p.gpu, label: 'sgd momentum' }).keep();
      p.gpu.write(v.buffer, saved.data);
      this.velocity.set(p, v);
    });
  }
}
