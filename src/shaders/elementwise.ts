// Elementwise kernels: y = f(x, ...) over flat float32 arrays of n elements. Layout: any.
//
// relu_v1        y = max(x, 0)                 one invocation per element, grid1d(n, 256)
// relu_grad_v1   dx = dy * (x > 0)             (backward: saves x, the forward's input)
//
// The other ops are built from one template, `mapKernel`, shared with dropout, SGD and batch-norm evaluation:
// <op>_v1        scalar loads and stores, one element per unit (the fallback: any buffer sizes)
// <op>_v2        vec4 loads and stores, 4 elements per unit; the last vec4 is masked, so n need not be a
//                multiple of 4, but every buffer must hold ceil(n/4)·4 floats (pool buffers always do: their
//                sizes are multiples of 256 bytes). On llvmpipe vec4 is 2-3x faster than scalar (axpy at
//                n = 92160: 384 µs scalar, 164 µs vec4), on GPUs 128-bit accesses are the norm.
//                Chosen whenever the buffers are large enough; `variant` forces one (the tests run both).
// Each invocation does 4 consecutive units on software adapters (suffix _x4) and 1 on GPUs.
// add, sub, mul  y = a ∘ b                     cost n flops, 12n bytes
// scale          y = α·x                       cost n flops, 8n bytes
// axpy           y += α·x   (gradient accumulation)   cost 2n flops, 12n bytes
// fill           y = value                     cost 0 flops, 4n bytes
// copy           y = x                         cost 0 flops, 8n bytes
// broadcast_scalar  y = α·s[0]                 cost n flops, 4n bytes
// An output may be the same buffer as an input (in place: `scale(gpu, g, g, ...)`); the kernel then reads that
// operand through the output binding, since WebGPU forbids binding one buffer as both read and read_write.
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, f32, grid1d, memoKernel, uniforms } from './common.js';

const WG = 256;

const unary = (name: string, expr: string) => ({
  name,
  wgsl: /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  if (i < p.n) { let v = x[i]; y[i] = ${expr}; }
}`,
});

const binary = (name: string, expr: string) => ({
  name,
  wgsl: /* wgsl */ `
struct Params { n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${WG}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG)};
  if (i < p.n) { y[i] = ${expr}; }
}`,
});

const reluKernel = memoKernel(() => unary('relu_v1', 'max(v, 0.0)'));
const reluGradKernel = memoKernel(() => binary('relu_grad_v1', 'select(0.0, b[i], a[i] > 0.0)'));

/** y = max(x, 0) over n elements. */
export function relu(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, n: number): void {
  gpu.dispatch({ kernel: reluKernel(), params: uniforms(n), buffers: [x, y], workgroups: grid1d(n, WG) });
}
// dx = dy * (x > 0)
export function reluBackward(gpu: Gpu, x: GPUBuffer, dy: GPUBuffer, dx: GPUBuffer, n: number): void {
  gpu.dispatch({ kernel: reluGradKernel(), params: uniforms(n), buffers: [x, dy, dx], workgroups: grid1d(n, WG) });
}
export const reluCost = (n: number): Cost => ({ flops: n, bytes: 8 * n });

// ---- the map template ------------------------------------------------------------------------------------

export type ElementwiseVariant = 'v1' | 'v2';
export const ELEMENTWISE_VARIANTS: readonly ElementwiseVariant[] = ['v1', 'v2'];

/**
 * An elementwise kernel as data. The body is WGSL written once for both versions against the aliases
 * `T` (f32 in v1, vec4<f32> in v2) and `U` (u32 / vec4<u32>): each input is a `let` of type T named as in
 * `inputs`, each output a `var` of type T (holding its old value when listed in `loads`, else zero) that
 * the body assigns; `idx: U` is the element index, `p.<field>` a uniform from `params` (after `n: u32`).
 * `tables` are per-index lookup arrays (array<f32>), read with the generated `<name>_at(i: U) -> T`.
 */
export interface MapSpec {
  name: string;
  params?: readonly string[];
  inputs?: readonly string[];
  tables?: readonly string[];
  outputs: readonly string[];
  loads?: readonly string[];
  helpers?: string;
  body: string;
}

/** Buffers for a MapSpec, by the names in its inputs, tables and outputs. */
export type MapBuffers = Record<string, GPUBuffer>;

const MAP_WG = 64;
// Units per invocation: 4 consecutive on llvmpipe (measured ~20% faster than 1 at n = 92160: fewer
// invocations to schedule), 1 on GPUs (adjacent invocations then read adjacent vec4s: coalesced).
const mapUnits = (gpu: Gpu) => (gpu.isSoftware ? 4 : 1);

/** WGSL for `spec`; `vec` picks v2; `aliased[input]` names the output an input shares a buffer with. */
export const mapKernel = memoKernel((spec: MapSpec, vec: boolean, aliased: Record<string, string>, units: number) => {
  const inputs = spec.inputs ?? [];
  const tables = spec.tables ?? [];
  const loads = new Set(spec.loads ?? []);
  for (const a of Object.values(aliased)) loads.add(a);
  let b = 1;
  const decl: string[] = [];
  for (const x of inputs) if (!aliased[x]) decl.push(`@group(0) @binding(${b++}) var<storage, read> in_${x}: array<T>;`);
  for (const t of tables) decl.push(`@group(0) @binding(${b++}) var<storage, read> ${t}: array<f32>;`);
  for (const y of spec.outputs) decl.push(`@group(0) @binding(${b++}) var<storage, read_write> out_${y}: array<T>;`);
  const at = (t: string) =>
    `fn ${t}_at(i: U) -> T { return ${vec ? `T(${t}[i.x], ${t}[i.y], ${t}[i.z], ${t}[i.w])` : `${t}[i]`}; }`;
  // Outputs are loaded before inputs so an aliased input can read its output's old value.
  const load = [
    ...spec.outputs.map((y) => `var ${y} = ${loads.has(y) ? `out_${y}[i]` : 'T()'};`),
    ...inputs.map((x) => `let ${x} = ${aliased[x] ?? `in_${x}`}${aliased[x] ? '' : '[i]'};`),
  ];
  const store = spec.outputs.map((y) =>
    vec ? `out_${y}[i] = select(out_${y}[i], ${y}, idx < U(p.n));` : `out_${y}[i] = ${y};`,
  );
  const wgsl = /* wgsl */ `
alias T = ${vec ? 'vec4<f32>' : 'f32'};
alias U = ${vec ? 'vec4<u32>' : 'u32'};
struct Params { n: u32, ${(spec.params ?? []).join(', ')} }
@group(0) @binding(0) var<uniform> p: Params;
${decl.join('\n')}
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
}`;
  return { name: `${spec.name}_${vec ? 'v2' : 'v1'}${Object.keys(aliased).length ? '_inplace' : ''}${units > 1 ? `_x${units}` : ''}`, wgsl };
});

/**
 * Records a MapSpec over n elements. `params` are the uniform fields after n. v2 (vec4) unless a buffer
 * is too small for whole vec4s or `variant` says v1; `units` per invocation defaults by adapter (tests force it).
 */
export function dispatchMap(
  gpu: Gpu,
  spec: MapSpec,
  buffers: MapBuffers,
  n: number,
  params: Parameters<typeof uniforms>,
  variant?: ElementwiseVariant,
  units = mapUnits(gpu),
): void {
  if (n === 0) return;
  const inputs = spec.inputs ?? [];
  const tables = spec.tables ?? [];
  const aliased: Record<string, string> = {};
  for (const x of inputs) {
    const y = spec.outputs.find((o) => buffers[o] === buffers[x]);
    if (y) aliased[x] = y;
  }
  const mapped = [...inputs, ...spec.outputs].map((k) => buffers[k]);
  const vec = variant ? variant === 'v2' : mapped.every((buf) => buf.size >= Math.ceil(n / 4) * 16);
  const list = [...inputs.filter((x) => !aliased[x]), ...tables, ...spec.outputs].map((k) => buffers[k]);
  gpu.dispatch({
    kernel: mapKernel(spec, vec, aliased, units),
    params: uniforms(n, ...params),
    buffers: list,
    workgroups: grid1d(Math.ceil((vec ? Math.ceil(n / 4) : n) / units), MAP_WG),
  });
}

// ---- arithmetic --------------------------------------------------------------------------------------------

export interface ElementwiseSizes {
  n: number;
  /** Force a kernel version; by default v2 (vec4) when every buffer holds whole vec4s. */
  variant?: ElementwiseVariant;
}

const binaryOp = (name: string, op: string): MapSpec => ({ name, inputs: ['a', 'b'], outputs: ['y'], body: `y = a ${op} b;` });
const ADD = binaryOp('add', '+');
const SUB = binaryOp('sub', '-');
const MUL = binaryOp('mul', '*');
const SCALE: MapSpec = { name: 'scale', params: ['alpha: f32'], inputs: ['x'], outputs: ['y'], body: 'y = p.alpha * x;' };
const AXPY: MapSpec = { name: 'axpy', params: ['alpha: f32'], inputs: ['x'], outputs: ['y'], loads: ['y'], body: 'y += p.alpha * x;' };
const FILL: MapSpec = { name: 'fill', params: ['value: f32'], outputs: ['y'], body: 'y = T(p.value);' };
const COPY: MapSpec = { name: 'copy', inputs: ['x'], outputs: ['y'], body: 'y = x;' };
const BROADCAST: MapSpec = { name: 'broadcast_scalar', params: ['alpha: f32'], tables: ['s'], outputs: ['y'], body: 'y = p.alpha * s_at(U(0u));' };

/** y = a + b. */
export function add(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  dispatchMap(gpu, ADD, { a, b, y }, s.n, [], s.variant);
}
// da = dy, db = dy

/** y = a − b. */
export function sub(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  dispatchMap(gpu, SUB, { a, b, y }, s.n, [], s.variant);
}
// da = dy, db = −dy

/** y = a · b (elementwise). */
export function mul(gpu: Gpu, a: GPUBuffer, b: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  dispatchMap(gpu, MUL, { a, b, y }, s.n, [], s.variant);
}
// da = dy · b, db = dy · a

/** y = α·x (x and y may be one buffer). */
export function scale(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes & { alpha: number }): void {
  dispatchMap(gpu, SCALE, { x, y }, s.n, [f32(s.alpha)], s.variant);
}
// dx = α · dy

/** y += α·x: accumulates a gradient. */
export function axpy(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes & { alpha: number }): void {
  dispatchMap(gpu, AXPY, { x, y }, s.n, [f32(s.alpha)], s.variant);
}

/** y = value in every element (0 also zeroes u32 and i32 buffers: the bits of 0.0 are zero). */
export function fill(gpu: Gpu, y: GPUBuffer, s: ElementwiseSizes & { value: number }): void {
  dispatchMap(gpu, FILL, { y }, s.n, [f32(s.value)], s.variant);
}

/** y = x (as a dispatch, in queue order with the others; `gpu.copy` does it with copyBufferToBuffer). */
export function copy(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, s: ElementwiseSizes): void {
  if (x === y) return;
  dispatchMap(gpu, COPY, { x, y }, s.n, [], s.variant);
}

/** y[i] = α·s[0] for every i: the backward of sum (α = 1) and mean (α = 1/n), from a one-element buffer. */
export function broadcastScalar(gpu: Gpu, s: GPUBuffer, y: GPUBuffer, sizes: ElementwiseSizes & { alpha: number }): void {
  dispatchMap(gpu, BROADCAST, { s, y }, sizes.n, [f32(sizes.alpha)], sizes.variant);
}

export const binaryCost = ({ n }: { n: number }): Cost => ({ flops: n, bytes: 12 * n });
export const scaleCost = ({ n }: { n: number }): Cost => ({ flops: n, bytes: 8 * n });
export const axpyCost = ({ n }: { n: number }): Cost => ({ flops: 2 * n, bytes: 12 * n });
export const fillCost = ({ n }: { n: number }): Cost => ({ flops: 0, bytes: 4 * n });
export const copyCost = ({ n }: { n: number }): Cost => ({ flops: 0, bytes: 8 * n });
