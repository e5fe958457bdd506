// Elementwise kernels: y = f(x, ...) over flat float32 arrays of n elements. Layout: any.
//
// relu_v1        y = max(x, 0), NaN kept         one invocation per element, grid1d(n, 256)
// relu_grad_v1   dx = 0 where x ≤ 0, else dy    (backward: saves x, the forward's input)
// NaN as PyTorch: relu(NaN) = NaN and its gradient passes dy (threshold_backward's `x <= 0 ? 0 : dy`); the
// fused pool+ReLU (pool.ts) does the same.
//
// The other ops are built from one template, the MapSpec (`mapOp` makes an op's registry from it, `runMap`
// records it), shared with dropout, SGD and batch-norm evaluation. Every map op has two variants:
//   v1  scalar loads and stores, one element per unit: the fallback, any buffer sizes.
//   v2  vec4 loads and stores, 4 elements per unit; the last vec4 is masked, so n need not be a multiple of 4,
//       but every buffer the map walks must hold ceil(n/4)·4 floats (pool buffers always do: their sizes are
//       multiples of 256 bytes); it rejects smaller buffers. On llvmpipe vec4 is several times faster than
//       scalar (bench:kernels measures it), on GPUs 128-bit accesses are the norm.
// Chosen: v2 whenever the buffers hold whole vec4s, else v1; `variant` forces one (an error where v2 cannot run).
// Each invocation does 4 consecutive units on software adapters (suffix _x4: fewer invocations to schedule)
// and 1 on GPUs (adjacent invocations then read adjacent vec4s: coalesced).
// add, sub, mul  y = a ∘ b                     cost n flops, 12n bytes
// scale          y = α·x                       cost n flops, 8n bytes
// axpy           y += α·x   (gradient accumulation)   cost 2n flops, 12n bytes
// fill           y = value                     cost 0 flops, 4n bytes
// copy           y = x                         cost 0 flops, 8n bytes
// broadcast_scalar  y = α·s[0]                 cost n flops, 4n bytes
// tanh           y = tanh(x)                   cost ~5n flops, 8n bytes (the exp and a division)
// tanh_grad      dx = dy·(1 − y²)              (backward: saves y, the forward's output)   cost 3n flops, 12n bytes
// sigmoid        y = 1/(1 + e^−x)              cost ~4n flops, 8n bytes
// sigmoid_grad   dx = dy·y·(1 − y)             (backward: saves y)   cost 3n flops, 12n bytes
// An output may be the same buffer as an input (in place: `scale(gpu, g, g, ...)`); the kernel then reads that
// operand through the output binding, since WebGPU forbids binding one buffer as both read and read_write.
import { DataError } from '../errors.js';
import { type BufferDecl, checkBuffers, declareKernel, launch, type ParamType } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import { type Cost, defineOp, type Op } from './op.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, IS_NAN, memoKernel } from './wgsl.js';

const WG = 256;

const reluKernel = memoKernel(() =>
  declareKernel({
    name: 'relu_v1',
    params: { n: 'u32' },
    buffers: { x: 'read', y: 'read_write' },
    wgsl: /* wgsl */ `${IS_NAN}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  if (i < p.n) { let v = x[i]; y[i] = select(max(v, 0.0), v, isNan(v)); }
}`,
  }),
);

const reluGradKernel = memoKernel(() =>
  declareKernel({
    name: 'relu_grad_v1',
    params: { n: 'u32' },
    buffers: { x: 'read', dy: 'read', dx: 'read_write' },
    wgsl: /* wgsl */ `${IS_NAN}
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  if (i < p.n) { let v = x[i]; dx[i] = select(0.0, dy[i], v > 0.0 || isNan(v)); }
}`,
  }),
);

/** y = max(x, 0) over n elements (NaN stays NaN, as PyTorch). */
export function relu(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, n: number): void {
  checkBuffers('relu', { x: [x, n], y: [y, n] });
  launch(gpu, reluKernel(), { params: { n }, buffers: { x, y }, workgroups: grid1d(n, WG) });
}
// dx = 0 where x ≤ 0, else dy (NaN passes dy, as PyTorch)
export function reluBackward(gpu: Gpu, x: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, n: number): void {
  checkBuffers('reluBackward', { x: [x, n], dy: [dy, n], dx: [dx, n] });
  launch(gpu, reluGradKernel(), { params: { n }, buffers: { x, dy, dx }, workgroups: grid1d(n, WG) });
}
export const reluCost = (n: number): Cost => ({ flops: n, bytes: 8 * n });

// ---- the map template ------------------------------------------------------------------------------------

export type ElementwiseVariant = 'v1' | 'v2';

/**
 * An elementwise kernel as data. The body is WGSL written once for both variants against the aliases
 * `T` (f32 in v1, vec4<f32> in v2) and `U` (u32 / vec4<u32>): each input is a `let` of type T named as in
 * `inputs`, each output a `var` of type T (holding its old value when listed in `loads`, else zero) that
 * the body assigns; `idx: U` is the element index, `p.<name>` a uniform from `params` (after `n: u32`).
 * `tables` are per-index lookup arrays (array<f32>), read with the generated `<name>_at(i: U) -> T`.
 */
export interface MapSpec {
  name: string;
  /** Uniforms after `n`, by name and type: `{ alpha: 'f32' }`. */
  params?: Readonly<Record<string, ParamType>>;
  inputs?: readonly string[];
  tables?: readonly string[];
  outputs: readonly string[];
  loads?: readonly string[];
  helpers?: string;
  body: string;
}

/** Buffers for a MapSpec, by the names in its inputs, tables and outputs. */
export type MapBuffers = Record<string, GPUBuffer>;

/** Sizes of one map op's launch (its registry's sizes). */
export interface MapSizes {
  n: number;
  /** Floats the smallest buffer the map walks holds (its inputs and outputs; tables are read by index). */
  capacity: number;
  /** The uniforms the spec declares, by name. */
  params?: Record<string, number>;
  /** Elements each table must hold (default 1). */
  tables?: Record<string, number>;
  /** Units per invocation; by default 4 on software adapters, 1 on GPUs (tests force others). */
  units?: number;
  /** Force a variant; by default v2 when the buffers hold whole vec4s. */
  variant?: ElementwiseVariant;
}

/** A map op's registry, with the spec it launches. */
export type MapOp = Op<MapSizes, MapBuffers, ElementwiseVariant> & { readonly mapSpec: MapSpec };

const MAP_WG = 64;
const mapUnits = (gpu: Gpu) => (gpu.isSoftware ? 4 : 1);

/** Floats the smallest of these buffers holds: the `capacity` of a map over them. */
export const capacityOf = (buffers: readonly GPUBuffer[]): number => Math.min(...buffers.map((b) => Math.floor(b.size / 4)));

/** The kernel for `spec`; `vec` picks v2; `aliased[input]` names the output an input shares a buffer with. */
export const mapKernel = memoKernel((spec: MapSpec, vec: boolean, aliased: Record<string, string>, units: number) => {
  const inputs = spec.inputs ?? [];
  const tables = spec.tables ?? [];
  const loads = new Set(spec.loads ?? []);
  for (const a of Object.values(aliased)) loads.add(a);
  const T = vec ? 'vec4<f32>' : 'f32';
  const buffers: Record<string, BufferDecl> = {};
  for (const x of inputs) if (!aliased[x]) buffers[`in_${x}`] = { read: T };
  for (const t of tables) buffers[t] = 'read';
  for (const y of spec.outputs) buffers[`out_${y}`] = { read_write: T };
  const at = (t: string) => `fn ${t}_at(i: U) -> T { return ${vec ? `T(${t}[i.x], ${t}[i.y], ${t}[i.z], ${t}[i.w])` : `${t}[i]`}; }`;
  // Outputs are loaded before inputs so an aliased input can read its output's old value.
  const load = [
    ...spec.outputs.map((y) => `var ${y} = ${loads.has(y) ? `out_${y}[i]` : 'T()'};`),
    ...inputs.map((x) => `let ${x} = ${aliased[x] ?? `in_${x}`}${aliased[x] ? '' : '[i]'};`),
  ];
  const store = spec.outputs.map((y) => (vec ? `out_${y}[i] = select(out_${y}[i], ${y}, idx < U(p.n));` : `out_${y}[i] = ${y};`));
  return declareKernel({
    name: `${spec.name}_${vec ? 'v2' : 'v1'}${Object.keys(aliased).length ? '_inplace' : ''}${units > 1 ? `_x${units}` : ''}`,
    params: { n: 'u32', ...spec.params },
    buffers,
    wgsl: /* wgsl */ `
alias T = ${T};
alias U = ${vec ? 'vec4<u32>' : 'u32'};
${tables.map(at).join('\n')}
${spec.helpers ?? ''}
// Unit i: element i (v1) or elements 4i..4i+3 (v2).
fn unit(i: u32) {
  let idx = ${vec ? 'U(4u * i) + U(0u, 1u, 2u, 3u)' : 'i'};
  ${load.join('\n  ')}
  ${spec.body}
  ${vec ? `if (4u * i + 4u <= p.n) {\n    ${spec.outputs.map((y) => `out_${y}[i] = ${y};`).join(' ')}\n  } else {\n    ${store.join(' ')}\n  }` : store.join(' ')}
}
@compute @workgroup_size(${MAP_WG}) fn main(${FLAT_BUILTINS}) {
  let units = ${vec ? '(p.n + 3u) / 4u' : 'p.n'};
  let first = (${FLAT_INDEX(MAP_WG)}) * ${units}u;
  for (var k = 0u; k < ${units}u; k++) {
    if (first + k < units) { unit(first + k); }
  }
}`,
  });
});

function launchMap(gpu: Gpu, spec: MapSpec, vec: boolean, buffers: MapBuffers, s: MapSizes): void {
  const inputs = spec.inputs ?? [];
  const aliased: Record<string, string> = {};
  for (const x of inputs) {
    const y = spec.outputs.find((o) => buffers[o] === buffers[x]);
    if (y) aliased[x] = y;
  }
  const units = s.units ?? mapUnits(gpu);
  const bound: Record<string, GPUBuffer> = {};
  for (const x of inputs) if (!aliased[x]) bound[`in_${x}`] = buffers[x];
  for (const t of spec.tables ?? []) bound[t] = buffers[t];
  for (const y of spec.outputs) bound[`out_${y}`] = buffers[y];
  launch(gpu, mapKernel(spec, vec, aliased, units), {
    params: { n: s.n, ...s.params },
    buffers: bound,
    workgroups: grid1d(Math.ceil((vec ? Math.ceil(s.n / 4) : s.n) / units), MAP_WG),
  });
}

/** The registry of one map op: v1 (scalar) and v2 (vec4, for buffers holding whole vec4s). */
export function mapOp(spec: MapSpec, cost: (sizes: { n: number }) => Cost): MapOp {
  const op = defineOp<MapSizes, MapBuffers, ElementwiseVariant>({
    name: spec.name,
    variants: {
      v1: { summary: 'scalar loads and stores: any buffer sizes', run: (gpu, buffers, s) => launchMap(gpu, spec, false, buffers, s) },
      v2: {
        summary: 'vec4 loads and stores, the last vec4 masked: buffers holding whole vec4s',
        rejects: ({ n, capacity }) => {
          const need = Math.ceil(n / 4) * 4;
          return capacity < need ? `needs every buffer it maps to hold ${need} floats (whole vec4s); the smallest holds ${capacity}` : null;
        },
        run: (gpu, buffers, s) => launchMap(gpu, spec, true, buffers, s),
      },
    },
    prefer: () => ['v2', 'v1'],
    cost,
    // Inputs and outputs hold n elements; a table as many as the caller's sizes say (one by default).
    needs: ({ n, tables }, buffers) => ({
      ...Object.fromEntries([...(spec.inputs ?? []), ...spec.outputs].map((k) => [k, [buffers[k], n] as const])),
      ...Object.fromEntries((spec.tables ?? []).map((t) => [t, [buffers[t], tables?.[t] ?? 1] as const])),
    }),
  });
  return Object.assign(op, { mapSpec: spec });
}

/** Records a map op over n elements; its capacity comes from the buffers it maps. */
export function runMap(gpu: Gpu, op: MapOp, buffers: MapBuffers, sizes: Omit<MapSizes, 'capacity'>): void {
  if (sizes.n === 0) return;
  const mapped = [...(op.mapSpec.inputs ?? []), ...op.mapSpec.outputs].map((k) => {
    const b = buffers[k];
    if (!b) throw new DataError(`${op.name}: no buffer given for "${k}"`);
    return b;
  });
  op.run(gpu, buffers, { ...sizes, capacity: capacityOf(mapped) });
}

// ---- arithmetic --------------------------------------------------------------------------------------------

export interface ElementwiseSizes {
  n: number;
  /** Force a variant; by default v2 (vec4) when every buffer holds whole vec4s. */
  variant?: ElementwiseVariant;
}

export const binaryCost = ({ n }: { n: number }): Cost => ({ flops: n, bytes: 12 * n });
export const scaleCost = ({ n }: { n: number }): Cost => ({ flops: n, bytes: 8 * n });
export const axpyCost = ({ n }: { n: number }): Cost => ({ flops: 2 * n, bytes: 12 * n });
export const fillCost = ({ n }: { n: number }): Cost => ({ flops: 0, bytes: 4 * n });
export const copyCost = ({ n }: { n: number }): Cost => ({ flops: 0, bytes: 8 * n });
const broadcastCost = ({ n }: { n: number }): Cost => ({ flops: n, bytes: 4 * n });

const binaryOp = (name: string, op: string) => mapOp({ name, inputs: ['a', 'b'], outputs: ['y'], body: `y = a ${op} b;` }, binaryCost);
export const ADD = binaryOp('add', '+');
export const SUB = binaryOp('sub', '-');
export const MUL = binaryOp('mul', '*');
export const SCALE = mapOp({ name: 'scale', params: { alpha: 'f32' }, inputs: ['x'], outputs: ['y'], body: 'y = p.alpha * x;' }, scaleCost);
export const AXPY = mapOp(
  { name: 'axpy', params: { alpha: 'f32' }, inputs: ['x'], outputs: ['y'], loads: ['y'], body: 'y += p.alpha * x;' },
  axpyCost,
);
export const FILL = mapOp({ name: 'fill', params: { value: 'f32' }, outputs: ['y'], body: 'y = T(p.value);' }, fillCost);
export const COPY = mapOp({ name: 'copy', inputs: ['x'], outputs: ['y'], body: 'y = x;' }, copyCost);
export const BROADCAST_SCALAR = mapOp(
  { name: 'broadcast_scalar', params: { alpha: 'f32' }, tables: ['s'], outputs: ['y'], body: 'y = p.alpha * s_at(U(0u));' },
  broadcastCost,
);

/** y = a + b. */
export function add(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  runMap(gpu, ADD, { a, b, y }, s);
}
// da = dy, db = dy

/** y = a − b. */
export function sub(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  runMap(gpu, SUB, { a, b, y }, s);
}
// da = dy, db = −dy

/** y = a · b (elementwise). */
export function mul(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  runMap(gpu, MUL, { a, b, y }, s);
}
// da = dy · b, db = dy · a

/** y = α·x (x and y may be one buffer). */
export function scale(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes & { alpha: number }): void {
  runMap(gpu, SCALE, { x, y }, { n: s.n, params: { alpha: s.alpha }, variant: s.variant });
}
// dx = α · dy

/** y += α·x: accumulates a gradient. */
export function axpy(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes & { alpha: number }): void {
  runMap(gpu, AXPY, { x, y }, { n: s.n, params: { alpha: s.alpha }, variant: s.variant });
}

/** y = value in every element (0 also zeroes u32 and i32 buffers: the bits of 0.0 are zero). */
export function fill(gpu: Gpu, y: GPUBuffer, s: ElementwiseSizes & { value: number }): void {
  runMap(gpu, FILL, { y }, { n: s.n, params: { value: s.value }, variant: s.variant });
}

/** y = x (as a dispatch, in queue order with the others; `gpu.copy` does it with copyBufferToBuffer). */
export function copy(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  if (x === y) return;
  runMap(gpu, COPY, { x, y }, s);
}

/** y[i] = α·s[0] for every i: the backward of sum (α = 1) and mean (α = 1/n), from a one-element buffer. */
export function broadcastScalar(gpu: Gpu, s: GPUBuffer, y: GPUBuffer, sizes: ElementwiseSizes & { alpha: number }): void {
  runMap(gpu, BROADCAST_SCALAR, { s, y }, { n: sizes.n, params: { alpha: sizes.alpha }, variant: sizes.variant });
}

// ---- smooth activations ------------------------------------------------------------------------------------

const activationCost = ({ n }: { n: number }): Cost => ({ flops: 5 * n, bytes: 8 * n });
const activationGradCost = ({ n }: { n: number }): Cost => ({ flops: 3 * n, bytes: 12 * n });

// tanh as 1 − 2/(e^{2x} + 1), which is ±1 (never inf/inf = NaN) when e^{2x} overflows; below |x| = 0.1, where
// that subtraction would lose the relative precision of small outputs, its Taylor series to x⁷ (error < 1e-10·|x|).
export const TANH = mapOp(
  {
    name: 'tanh',
    inputs: ['x'],
    outputs: ['y'],
    body: `let x2 = x * x;
  y = select(1.0 - 2.0 / (exp(2.0 * x) + 1.0), x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0)))), abs(x) < T(0.1));`,
  },
  activationCost,
);
export const TANH_GRAD = mapOp(
  { name: 'tanh_grad', inputs: ['y', 'dy'], outputs: ['dx'], body: 'dx = dy * (1.0 - y * y);' },
  activationGradCost,
);
// 1/(1 + e^−x): 0 when e^−x overflows to inf, 1 when it underflows to 0.
export const SIGMOID = mapOp({ name: 'sigmoid', inputs: ['x'], outputs: ['y'], body: 'y = 1.0 / (1.0 + exp(-x));' }, activationCost);
export const SIGMOID_GRAD = mapOp(
  { name: 'sigmoid_grad', inputs: ['y', 'dy'], outputs: ['dx'], body: 'dx = dy * y * (1.0 - y);' },
  activationGradCost,
);

/** y = tanh(x). */
export function tanh(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  runMap(gpu, TANH, { x, y }, s);
}
// dx = dy·(1 − y²), from the forward's output y
export function tanhBackward(gpu: Gpu, y: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, s: ElementwiseSizes): void {
  runMap(gpu, TANH_GRAD, { y, dy, dx }, s);
}

/** y = 1/(1 + e^−x). */
export function sigmoid(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  runMap(gpu, SIGMOID, { x, y }, s);
}
// dx = dy·y·(1 − y), from the forward's output y
export function sigmoidBackward(gpu: Gpu, y: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, s: ElementwiseSizes): void {
  runMap(gpu, SIGMOID_GRAD, { y, dy, dx }, s);
}
export const tanhCost = activationCost;
export const sigmoidCost = activationCost;
