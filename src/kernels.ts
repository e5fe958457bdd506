// webgpu-nn/kernels: every kernel of the engine, callable on your own GPUDevice and GPUBuffers without the
// tensor and autograd layers. Wrap your device once with `Gpu.fromDevice(device)`; each function records
// one or more dispatches into a shared compute pass; `gpu.flush()` submits them (`await gpu.read(...)` or
// `gpu.sync()` also wait). Buffers need STORAGE usage (and COPY_SRC/COPY_DST for reads and writes); sizes
// are in elements and must fit the buffers. A buffer may not be both input and output of one call.
export { Gpu } from './gpu/runtime.js';
export { declareKernel, launch } from './gpu/kernel.js';
export { grid1d } from './shaders/wgsl.js';
export type { Kernel, Dispatch } from './gpu/runtime.js';
export type { Cost } from './shaders/op.js';
export * from './shaders/matmul/index.js';
export * from './shaders/matmul/linear.js';
export * from './shaders/conv2d/index.js';
export * from './shaders/pool.js';
export * from './shaders/batch-norm/index.js';
export * from './shaders/softmax.js';
export * from './shaders/dropout.js';
export * from './shaders/elementwise.js';
export * from './shaders/reduce.js';
export * from './shaders/sgd.js';
export * from './shaders/gather.js';
export * from './shaders/metrics.js';
