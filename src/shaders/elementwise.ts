// Elementwise kernels: y = f(x) over flat float32 arrays, one invocation per element.
// Layout: any; n elements. Grid: grid1d(n, 256), flat index from workgroup and local ids.
// Cost: n flops, 8n bytes (read x, write y); binary ops 12n bytes.
//
// relu_v1        y = max(x, 0)
// relu_grad_v1   dx = dy * (x > 0)          (backward: saves x, the forward's input)
import { type Cost, FLAT_BUILTINS, FLAT_INDEX, type Gpu, grid1d, memoKernel, uniforms } from './common.js';

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
