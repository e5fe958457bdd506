// GPU tensors with reverse-mode autograd.
//
// A Tensor is a shape over a pooled GPU buffer (its Storage; views such as reshape share it, counted by
// `refs`). An op that needs gradients records a Node {name, inputs, backward} on its output; `backward()`
// walks the graph from the loss in reverse topological order, calling each rule once with the gradient of
// its output and accumulating (+=) what flows into shared inputs and into leaves' `.grad`.
//
// Memory: every tensor made inside `tidy(fn)` goes back to the pool when fn returns, except the values fn
// returns, tensors made `keep()`, and leaves' `.grad`. A training step runs inside one tidy, so the bytes in
// use do not grow from step to step. Nothing here waits for the GPU; only toArray()/item() do.
import { DataError, ShapeError, StateError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { describeValue } from './check.js';

export const DTYPES = ['float32', 'int32'] as const;
export type DType = (typeof DTYPES)[number];

/** `dtype` when it is one a tensor can have, or a DataError naming `where`. */
export function checkDtype(where: string, dtype: unknown): DType {
  if (!(DTYPES as readonly unknown[]).includes(dtype)) {
    throw new DataError(`${where}: dtype ${describeValue(dtype)} is not supported; use ${DTYPES.join(' or ')}`);
  }
  return dtype as DType;
}

/** The op that produced a tensor, and how to send its output's gradient back to its inputs. */
export interface Node {
  name: string;
  inputs: Tensor[];
  /** Gradients for `inputs`, in order (null where an input needs none). */
  backward: (dy: Tensor) => (Tensor | null)[];
  /**
   * The same for dy = 1 (a scalar loss's own `backward()`), where the forward could compute them already (the
   * fused cross-entropy writes its gradient in the pass that computes the loss): no seed, no kernel.
   */
  backwardFromOnes?: () => (Tensor | null)[];
}

interface Storage {
  buffer: GPUBuffer;
  refs: number;
}

let defaultGpu: Gpu | null = null;
let gradEnabled = true;
const scopes: Set<Tensor>[] = [];

/** Sets the runtime that tensors made without an explicit one live on. */
export function setDefaultGpu(gpu: Gpu | null): void {
  defaultGpu = gpu;
}
export function getDefaultGpu(): Gpu {
  if (!defaultGpu) throw new StateError('no Gpu runtime: call `await init()` (or setDefaultGpu(gpu)) before making tensors');
  return defaultGpu;
}

export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
export const shapeStr = (shape: readonly number[]) => `[${shape.join(', ')}]`;

export class Tensor {
  readonly size: number;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  /** The op that made this tensor; null for leaves and for results made under noGrad. */
  node: Node | null = null;
  private storage: Storage | null;

  constructor(
    readonly gpu: Gpu,
    storage: Storage,
    readonly shape: readonly number[],
    readonly dtype: DType = 'float32',
    requiresGrad = false,
  ) {
    this.size = numel(shape);
    this.storage = storage;
    this.requiresGrad = requiresGrad;
    scopes.at(-1)?.add(this);
  }

  /** A new tensor on a fresh pooled buffer (contents undefined). */
  static empty(shape: readonly number[], opts: { dtype?: DType; label?: string; gpu?: Gpu } = {}): Tensor {
    const where = opts.label ?? 'tensor';
    if (!Array.isArray(shape)) throw new ShapeError(`${where}: a shape is an array of sizes, got ${describeValue(shape)}`);
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0)
        throw new ShapeError(`${where}: bad shape ${shapeStr(shape)}; sizes must be non-negative integers`);
    }
    const dtype = checkDtype(where, opts.dtype ?? 'float32');
    const gpu = opts.gpu ?? getDefaultGpu();
    const buffer = gpu.pool.acquire(Math.max(4, numel(shape) * 4), opts.label ?? `tensor ${shapeStr(shape)}`);
    return new Tensor(gpu, { buffer, refs: 1 }, [...shape], dtype);
  }

  get buffer(): GPUBuffer {
    return this.liveStorage().buffer;
  }

  /** The storage, or a StateError (naming `op`) when the tensor was disposed. */
  private liveStorage(op?: string): Storage {
    if (!this.storage) throw new StateError(`${op ? `${op}: ` : ''}tensor ${shapeStr(this.shape)} was disposed and cannot be used`);
    return this.storage;
  }
  get disposed(): boolean {
    return this.storage === null;
  }
  get ndim(): number {
    return this.shape.length;
  }

  /** The values, copied to the CPU after all queued GPU work. */
  async toArray(): Promise<Float32Array | Int32Array> {
    const bytes = await this.gpu.read(this.buffer, this.size * 4);
    return this.dtype === 'int32' ? new Int32Array(bytes) : new Float32Array(bytes);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item(): tensor has shape ${shapeStr(this.shape)}, not one element`);
    return (await this.toArray())[0];
  }

  /** A tensor of another shape over the same storage (no copy); -1 (once) stands for the remaining size. */
  reshape(shape: readonly number[]): Tensor {
    const s = this.liveStorage('reshape');
    const to = `reshape: cannot view ${shapeStr(this.shape)} (${this.size} elements) as`;
    if (!Array.isArray(shape)) throw new ShapeError(`${to} ${describeValue(shape)}: a shape is an array of sizes`);
    if (shape.some((d) => !Number.isSafeInteger(d) || d < -1)) {
      throw new ShapeError(`${to} ${shapeStr(shape)}: sizes must be non-negative integers, and -1 may stand for one of them`);
    }
    const known = shape.filter((d) => d !== -1);
    const infer = shape.length - known.length;
    const rest = numel(known);
    if (infer > 1) throw new ShapeError(`${to} ${shapeStr(shape)}: only one size may be -1`);
    // As PyTorch: with the other sizes multiplying to 0, -1 could be anything.
    if (infer === 1 && rest === 0) throw new ShapeError(`${to} ${shapeStr(shape)}: the -1 is ambiguous when the other sizes multiply to 0`);
    const resolved = infer === 1 && this.size % rest === 0 ? shape.map((d) => (d === -1 ? this.size / rest : d)) : shape;
    if (infer === 1 ? this.size % rest !== 0 : rest !== this.size) throw new ShapeError(`${to} ${shapeStr(shape)}`);
    s.refs++;
    const out = new Tensor(this.gpu, s, resolved, this.dtype);
    if (gradEnabled && this.requiresGrad) {
      out.requiresGrad = true;
      out.node = { name: 'reshape', inputs: [this], backward: (dy) => [dy.reshape(this.shape)] };
    }
    return out;
  }
  view(shape: readonly number[]): Tensor {
    return this.reshape(shape);
  }
  /** Flattens every dimension after the first (x.view(x.size(0), -1) in the seed). */
  flatten(startDim = 1): Tensor {
    return this.reshape([...this.shape.slice(0, startDim), -1]);
  }

  /** Keeps this tensor alive past the enclosing tidy scope. */
  keep(): this {
    for (const s of scopes) s.delete(this);
    return this;
  }

  /** Gives the buffer back to the pool (when no other view shares it). Idempotent. */
  dispose(): void {
    const s = this.storage;
    if (!s) return;
    this.storage = null;
    this.node = null;
    if (--s.refs === 0) this.gpu.pool.release(s.buffer);
  }

  /** Backpropagates from this tensor (a scalar, unless `grad` is given) into every leaf's `.grad`. */
  backward(grad?: Tensor): void {
    this.liveStorage('backward()');
    if (!this.requiresGrad) throw new StateError('backward(): this tensor does not require grad (no input of it has requiresGrad)');
    if (!grad && this.size !== 1)
      throw new ShapeError(`backward(): tensor has shape ${shapeStr(this.shape)}; pass a gradient for non-scalar outputs`);
    if (grad && grad.size !== this.size)
      throw new ShapeError(`backward(): gradient ${shapeStr(grad.shape)} does not match tensor ${shapeStr(this.shape)}`);
    runBackward(this, grad ?? (this.node?.backwardFromOnes ? null : fillLike(this, 1)));
  }
}

// Filled and added by the ops module (it owns the kernels); injected to keep this file free of kernel code.
let fillLike: (t: Tensor, value: number) => Tensor = () => {
  throw new Error('ops not loaded');
};
let accumulate: (into: Tensor, g: Tensor) => Tensor = () => {
  throw new Error('ops not loaded');
};
export function installGradHelpers(fill: typeof fillLike, add: typeof accumulate): void {
  fillLike = fill;
  accumulate = add;
}

/** Backpropagates `seed` from root; a null seed stands for ones, which the root's node turns into its inputs' gradients itself. */
function runBackward(root: Tensor, seed: Tensor | null): void {
  // Reverse topological order by depth-first search from the root.
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const visit = (t: Tensor) => {
    if (seen.has(t)) return;
    seen.add(t);
    for (const i of t.node?.inputs ?? []) if (i.requiresGrad) visit(i);
    order.push(t);
  };
  visit(root);

  const grads = new Map<Tensor, Tensor>(seed ? [[root, seed]] : []);
  withGrad(false, () => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k];
      const g = grads.get(t);
      if (!g && !(t === root && !seed)) continue;
      grads.delete(t);
      if (!g) {
        distribute(t.node!, t.node!.backwardFromOnes!()); // the root (first in this order), seeded with ones
        continue;
      }
      if (!t.node) {
        // A leaf: accumulate into .grad, which outlives the step's scope. The leaf gets a view of its
        // own, since a rule may hand the same gradient tensor to several inputs.
        const old = t.grad;
        t.grad = (old ? accumulate(old, g) : g.reshape(g.shape)).keep();
        old?.dispose();
        continue;
      }
      distribute(t.node, t.node.backward(g));
    }
  });

  function distribute(node: Node, inputGrads: (Tensor | null)[]): void {
    node.inputs.forEach((input, i) => {
      const gi = inputGrads[i];
      if (!gi || !input.requiresGrad) return;
      const prev = grads.get(input);
      grads.set(input, prev ? accumulate(prev, gi) : gi);
    });
  }
}

/** Runs fn with gradient recording switched on or off. */
export function withGrad<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}
/** Evaluation: no graph is recorded (torch.no_grad). */
export const noGrad = <T>(fn: () => T): T => withGrad(false, fn);
export const isGradEnabled = () => gradEnabled;

/**
 * Runs fn and gives every tensor it made back to the pool afterwards, except what it returns (a tensor,
 * or an array or object of tensors), tensors marked keep(), and leaves' gradients.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  const collect = (v: unknown) => {
    if (v instanceof Tensor) survivors.add(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) Object.values(v).forEach(collect);
  };
  collect(result);
  for (const t of scope) {
    if (survivors.has(t))
      scopes.at(-1)?.add(t); // hand it to the enclosing scope
    else t.dispose();
  }
  return result;
}
