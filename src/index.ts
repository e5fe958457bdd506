// webgpu-nn: a deep-learning engine for Node.js whose every computation is a hand-written WGSL compute
// shader. This file is the public API: named exports only.
import { Gpu } from './gpu/runtime.js';
import type { DeviceOptions } from './gpu/device.js';
import { setDefaultGpu } from './nn/tensor.js';

export * from './errors.js';
export { Gpu } from './gpu/runtime.js';
export type { Kernel, Dispatch } from './gpu/runtime.js';
export { type AdapterDescription, type DeviceOptions, adapterSummary } from './gpu/device.js';
export { Tensor, tidy, noGrad, withGrad, setDefaultGpu, getDefaultGpu } from './nn/tensor.js';
export * as F from './nn/ops.js';
export { tensor, zeros, ones, full } from './nn/ops.js';
export * as nn from './nn/modules.js';
export { SGD, type SGDOptions } from './nn/optim.js';
export { INITIALIZERS, type InitName, initWeight, makeRng } from './nn/init.js';
export { MnistCnn } from './train/model.js';

/**
 * Opens a WebGPU device (options or WEBGPU_NN_BACKEND / WEBGPU_NN_ADAPTER choose the adapter) and makes it
 * the default for new tensors. Call `gpu.destroy()` when done so Node can exit.
 */
export async function init(options: DeviceOptions = {}): Promise<Gpu> {
  const gpu = await Gpu.create(options);
  setDefaultGpu(gpu);
  return gpu;
}
