// Layers as a tree of modules, named and initialised like torch.nn: train()/eval(), parameters(),
// named parameters and buffers, and a state dict whose keys match PyTorch's ("0.weight", "3.running_mean").
import { DataError, ShapeError } from '../errors.js';
import { type InitName, initBias, initWeight } from './init.js';
import * as F from './ops.js';
import { shapeStr, Tensor } from './tensor.js';

export abstract class Module {
  training = true;
  protected readonly params = new Map<string, Tensor>();
  protected readonly buffers = new Map<string, Tensor>();
  protected readonly children = new Map<string, Module>();

  abstract forward(x: Tensor): Tensor;

  /** Sets training mode here and in every child (dropout active, batch norm on batch statistics). */
  train(mode = true): this {
    this.training = mode;
    for (const c of this.children.values()) c.train(mode);
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [...this.params].map(([k, v]) => [prefix + k, v]);
    for (const [name, c] of this.children) out.push(...c.namedParameters(`${prefix}${name}.`));
    return out;
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }
  namedBuffers(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [...this.buffers].map(([k, v]) => [prefix + k, v]);
    for (const [name, c] of this.children) out.push(...c.namedBuffers(`${prefix}${name}.`));
    return out;
  }

  /** Parameters and buffers by name: the live tensors, not copies (to keep a snapshot, copy them, e.g. with another module's loadStateDict). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** Copies values into this module's tensors; every key must exist with the same shape. */
  loadStateDict(state: Map<string, Tensor> | Record<string, { shape: readonly number[]; data: Float32Array }>): void {
    const own = this.stateDict();
    const entries: [string, Tensor | { shape: readonly number[]; data: Float32Array }][] =
      state instanceof Map ? [...state] : Object.entries(state);
    const given = new Set(entries.map(([k]) => k));
    const missing = [...own.keys()].filter((k) => !given.has(k));
    if (missing.length) throw new DataError(`loadStateDict: missing ${missing.join(', ')}`);
    for (const [key, value] of entries) {
      const target = own.get(key);
      if (!target) throw new DataError(`loadStateDict: unexpected key "${key}" (this model has ${[...own.keys()].join(', ')})`);
      if (value.shape.length !== target.shape.length || value.shape.some((d, i) => d !== target.shape[i])) {
        throw new ShapeError(`loadStateDict: "${key}" is ${shapeStr(value.shape)} but the model's is ${shapeStr(target.shape)}`);
      }
      if (value instanceof Tensor) target.gpu.copy(value.buffer, 0, target.buffer, 0, target.size * 4);
      else target.gpu.write(target.buffer, value.data);
    }
  }

  protected param(name: string, data: Float32Array, shape: number[]): Tensor {
    const t = F.tensor(data, shape, { requiresGrad: true, label: name }).keep();
    this.params.set(name, t);
    return t;
  }
  protected buffer(name: string, t: Tensor): Tensor {
    this.buffers.set(name, t.keep());
    return t;
  }
  protected child<M extends Module>(name: string, m: M): M {
    this.children.set(name, m);
    return m;
  }
}

export interface LayerInit {
  /** Weight initialiser (see init.ts); 'pytorch' is the layer's default. */
  init?: InitName;
  rng: () => number;
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LayerInit & { bias?: boolean },
  ) {
    super();
    const shape = [outFeatures, inFeatures];
    this.weight = this.param('weight', initWeight(opts.init ?? 'pytorch', shape, opts.rng), shape);
    this.bias = opts.bias === false ? null : this.param('bias', initBias(inFeatures, outFeatures, opts.rng), [outFeatures]);
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

export class Conv2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    opts: LayerInit & { stride?: number; padding?: number; bias?: boolean },
  ) {
    super();
    const shape = [outChannels, inChannels, kernelSize, kernelSize];
    this.weight = this.param('weight', initWeight(opts.init ?? 'pytorch', shape, opts.rng), shape);
    const fanIn = inChannels * kernelSize * kernelSize;
    this.bias = opts.bias === false ? null : this.param('bias', initBias(fanIn, outChannels, opts.rng), [outChannels]);
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
  }
  private readonly stride: number;
  private readonly padding: number;
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

export class BatchNorm2d extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  constructor(
    readonly numFeatures: number,
    readonly opts: { eps?: number; momentum?: number; unbiasedRunningVar?: boolean } = {},
  ) {
    super();
    this.weight = this.param('weight', new Float32Array(numFeatures).fill(1), [numFeatures]);
    this.bias = this.param('bias', new Float32Array(numFeatures), [numFeatures]);
    this.runningMean = this.buffer('running_mean', F.zeros([numFeatures], { label: 'running_mean' }));
    this.runningVar = this.buffer('running_var', F.ones([numFeatures], { label: 'running_var' }));
  }
  /** With `then`, dropout(batchNorm(x)) in the same kernels (the same result as then.forward(this.forward(x))). */
  forward(x: Tensor, then?: Dropout): Tensor {
    const dropout = this.training ? then?.nextMask() : undefined;
    return F.batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, { training: this.training, ...this.opts, dropout });
  }
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize = 2,
    readonly stride = kernelSize,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.stride);
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}

export class Dropout extends Module {
  /** `seed` keys the GPU mask generator; each call advances the step counter. */
  constructor(
    readonly p = 0.5,
    private readonly seed = 0x5eed,
  ) {
    super();
  }
  private step = 0;
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, { seed: this.seed, step: this.training ? this.step++ : 0 });
  }
  /** The mask the next training forward would use (and advances to the one after), for an op that folds dropout in. */
  nextMask(): { p: number; seed: number; step: number } {
    return { p: this.p, seed: this.seed, step: this.step++ };
  }
}

export class Flatten extends Module {
  forward(x: Tensor): Tensor {
    return x.flatten(1);
  }
}

export class LogSoftmax extends Module {
  forward(x: Tensor): Tensor {
    return F.logSoftmax(x, 1);
  }
}

/** Runs its children in order; their names are their indices, as in torch.nn.Sequential. */
export class Sequential extends Module {
  readonly layers: Module[];
  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    for (const [i, m] of layers.entries()) this.child(String(i), m);
  }
  forward(x: Tensor): Tensor {
    return this.layers.reduce((h, m) => m.forward(h), x);
  }
}
