// Layers as a tree of modules, named and initialised like torch.nn: train()/eval(), parameters(),
// named parameters and buffers, and a state dict whose keys match PyTorch's ("0.weight", "3.running_mean").
import { DataError, ShapeError } from '../errors.js';
import { describeValue, expectInteger, expectNumber } from './check.js';
import { defaultRng, INITIALIZERS, type InitName, initBias, initWeight } from './init.js';
import * as F from './ops.js';
import { shapeStr, Tensor } from './tensor.js';

/** Non-tensor state a module keeps across steps (a counter), saved beside its tensors: PyTorch's extra state. */
export type ExtraState = Record<string, number>;

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

  /**
   * This module's own non-tensor state (PyTorch's get_extra_state), e.g. Dropout's step counter: what a
   * checkpoint needs besides the state dict for a resumed run to continue exactly. Null when it has none.
   */
  extraState(): ExtraState | null {
    return null;
  }
  /** Restores what extraState() returned (PyTorch's set_extra_state). */
  loadExtraState(_state: ExtraState): void {}

  /** extraState() of this module and every descendant that has one, by module path ('' for this one). */
  namedExtraStates(prefix = ''): Record<string, ExtraState> {
    const out: Record<string, ExtraState> = {};
    const own = this.extraState();
    if (own) out[prefix.replace(/\.$/, '')] = own;
    for (const [name, c] of this.children) Object.assign(out, c.namedExtraStates(`${prefix}${name}.`));
    return out;
  }
  /** Restores namedExtraStates(); every module with extra state must be given its own. */
  loadNamedExtraStates(states: Record<string, ExtraState>): void {
    const own = this.namedExtraStates();
    const missing = Object.keys(own).filter((k) => !(k in states));
    const unknown = Object.keys(states).filter((k) => !(k in own));
    if (missing.length || unknown.length) {
      throw new DataError(
        `loadNamedExtraStates: ${missing.length ? `missing ${missing.map((k) => k || '(root)').join(', ')}` : ''}` +
          `${missing.length && unknown.length ? '; ' : ''}${unknown.length ? `unexpected ${unknown.join(', ')}` : ''}`,
      );
    }
    const visit = (m: Module, prefix: string) => {
      const key = prefix.replace(/\.$/, '');
      if (m.extraState()) m.loadExtraState(states[key]);
      for (const [name, c] of m.children) visit(c, `${prefix}${name}.`);
    };
    visit(this, '');
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
  /** Uniform numbers in [0, 1) for the initial weights; default: the process-wide generator (manualSeed seeds it). */
  rng?: () => number;
}

/** The layer options every layer shares, checked: the generator and the initialiser's name. */
function layerInit(layer: string, opts: LayerInit & { bias?: boolean }): { init: InitName; rng: () => number; bias: boolean } {
  if (typeof opts !== 'object' || opts === null) throw new DataError(`${layer}: options must be an object, got ${describeValue(opts)}`);
  const init = opts.init ?? 'pytorch';
  if (!INITIALIZERS.includes(init)) throw new DataError(`${layer}: init "${init}" is not one of ${INITIALIZERS.join(', ')}`);
  if (opts.rng !== undefined && typeof opts.rng !== 'function')
    throw new DataError(`${layer}: rng must be a function returning numbers in [0, 1)`);
  return { init, rng: opts.rng ?? defaultRng, bias: opts.bias !== false };
}

export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LayerInit & { bias?: boolean } = {},
  ) {
    super();
    expectInteger('nn.Linear', 'in_features', inFeatures, 1);
    expectInteger('nn.Linear', 'out_features', outFeatures, 1);
    const { init, rng, bias } = layerInit('nn.Linear', opts);
    const shape = [outFeatures, inFeatures];
    this.weight = this.param('weight', initWeight(init, shape, rng), shape);
    this.bias = bias ? this.param('bias', initBias(inFeatures, outFeatures, rng), [outFeatures]) : null;
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
    opts: LayerInit & { stride?: number; padding?: number; bias?: boolean } = {},
  ) {
    super();
    expectInteger('nn.Conv2d', 'in_channels', inChannels, 1);
    expectInteger('nn.Conv2d', 'out_channels', outChannels, 1);
    expectInteger('nn.Conv2d', 'kernel_size', kernelSize, 1);
    const { init, rng, bias } = layerInit('nn.Conv2d', opts);
    this.stride = expectInteger('nn.Conv2d', 'stride', opts.stride ?? 1, 1);
    this.padding = expectInteger('nn.Conv2d', 'padding', opts.padding ?? 0, 0);
    const shape = [outChannels, inChannels, kernelSize, kernelSize];
    this.weight = this.param('weight', initWeight(init, shape, rng), shape);
    const fanIn = inChannels * kernelSize * kernelSize;
    this.bias = bias ? this.param('bias', initBias(fanIn, outChannels, rng), [outChannels]) : null;
  }
  private readonly stride: number;
  private readonly padding: number;
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
  /** relu(max_pool2d(forward(x), 2)), fused: F.conv2dMaxPool2dRelu. */
  forwardMaxPool2dRelu(x: Tensor): Tensor {
    return F.conv2dMaxPool2dRelu(x, this.weight, this.bias, { stride: this.stride, padding: this.padding });
  }
}

/** Batch norm over the channels of its input: γ = 1, β = 0, running mean 0 and variance 1, as PyTorch's. */
abstract class BatchNorm extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly runningMean: Tensor;
  readonly runningVar: Tensor;
  protected abstract readonly layout: '[N, C]' | '[N, C, H, W]';
  constructor(
    readonly numFeatures: number,
    readonly opts: { eps?: number; momentum?: number; unbiasedRunningVar?: boolean } = {},
  ) {
    super();
    expectInteger('nn.BatchNorm2d', 'num_features', numFeatures, 1);
    expectNumber('nn.BatchNorm2d', 'eps', opts.eps ?? 1e-5, 0);
    expectNumber('nn.BatchNorm2d', 'momentum', opts.momentum ?? 0.1, 0, 1);
    this.weight = this.param('weight', new Float32Array(numFeatures).fill(1), [numFeatures]);
    this.bias = this.param('bias', new Float32Array(numFeatures), [numFeatures]);
    this.runningMean = this.buffer('running_mean', F.zeros([numFeatures], { label: 'running_mean' }));
    this.runningVar = this.buffer('running_var', F.ones([numFeatures], { label: 'running_var' }));
  }
  /** With `then`, dropout(batchNorm(x)) in the same kernels (the same result as then.forward(this.forward(x))). */
  forward(x: Tensor, then?: Dropout): Tensor {
    const ndim = this.layout === '[N, C]' ? 2 : 4;
    if (x.ndim !== ndim) throw new ShapeError(`${this.constructor.name}: input must be ${this.layout}, got ${shapeStr(x.shape)}`);
    const dropout = this.training ? then?.nextMask() : undefined;
    return F.batchNorm(x, this.runningMean, this.runningVar, this.weight, this.bias, { training: this.training, ...this.opts, dropout });
  }
}

/** Batch norm per channel of NCHW input, over N, H and W (torch.nn.BatchNorm2d). */
export class BatchNorm2d extends BatchNorm {
  protected readonly layout = '[N, C, H, W]';
}

/** Batch norm per feature of [N, C] input, over the batch (torch.nn.BatchNorm1d on 2-D input). */
export class BatchNorm1d extends BatchNorm {
  protected readonly layout = '[N, C]';
}

export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize = 2,
    readonly stride = kernelSize,
  ) {
    super();
    expectInteger('nn.MaxPool2d', 'kernel_size', kernelSize, 1);
    expectInteger('nn.MaxPool2d', 'stride', stride, 1);
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

export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}

export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}

export class Dropout extends Module {
  /**
   * `seed` keys the GPU mask generator (default: drawn from the process-wide generator, so two layers get
   * different masks); each training-mode call advances the step counter, which extraState() saves.
   */
  constructor(
    readonly p = 0.5,
    private readonly seed = Math.floor(defaultRng() * 2 ** 32),
  ) {
    super();
    expectNumber('nn.Dropout', 'p', p, 0, 1);
    expectInteger('nn.Dropout', 'seed', seed, 0);
  }
  private step = 0;
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, { seed: this.seed, step: this.training ? this.step++ : 0 });
  }
  /** The mask the next training forward would use (and advances to the one after), for an op that folds dropout in. */
  nextMask(): { p: number; seed: number; step: number } {
    return { p: this.p, seed: this.seed, step: this.step++ };
  }
  override extraState(): ExtraState {
    return { step: this.step };
  }
  override loadExtraState(state: ExtraState): void {
    this.step = expectInteger('nn.Dropout extra state', 'step', state.step, 0);
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
