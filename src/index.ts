// webgpu-nn: a deep-learning engine for Node.js whose every computation is a hand-written WGSL compute
// shader. This file is the public API: every name below is one a user may rely on; anything not listed here
// (the training program's model, trainer, data loaders and file formats, the CLI) is the application's own
// and may change. The kernels on plain GPUBuffers are the other entry point, `webgpu-nn/kernels`.

import type { DeviceOptions } from './gpu/device.js';
import { Gpu } from './gpu/runtime.js';
import * as nn from './nn/modules.js';
import * as F from './nn/ops.js';
import { setDefaultGpu } from './nn/tensor.js';

// Errors: every error thrown on purpose is a WebGpuNnError; the subclass says what kind of fault it is.
export {
  DataError,
  DeviceLostError,
  FileFormatError,
  GpuError,
  InternalError,
  LimitError,
  NoAdapterError,
  OutputError,
  ShaderCompileError,
  ShapeError,
  StateError,
  UsageError,
  VariantError,
  WebGpuNnError,
} from './errors.js';
export { type AdapterDescription, adapterSummary, type DeviceOptions } from './gpu/device.js';
export type { Binding, BindingKind, Dispatch, Kernel } from './gpu/runtime.js';
export { INITIALIZERS, type InitName, initWeight, makeRng, manualSeed } from './nn/init.js';
export { full, ones, tensor, zeros } from './nn/ops.js';
// Optimisation and initialisation.
export { SGD, type SGDOptions } from './nn/optim.js';
// Tensors and autograd: GPU tensors, the default Gpu they live on, memory scopes and gradient recording.
export { type DType, getDefaultGpu, noGrad, setDefaultGpu, Tensor, tidy, withGrad } from './nn/tensor.js';
// The device: `init()` below, or a Gpu of your own (Gpu.create, Gpu.fromDevice) made the tensors' default.
// Functional ops as F.<op> (like torch.nn.functional): every function of nn/ops.ts.
// Layers as nn.<Layer> (like torch.nn): every class of nn/modules.ts.
export { F, Gpu, nn };

/**
 * Opens a WebGPU device (options or WEBGPU_NN_BACKEND / WEBGPU_NN_ADAPTER choose the adapter) and makes it
 * the default for new tensors. Call `gpu.destroy()` when done so Node can exit.
 */
export async function init(options: DeviceOptions = {}): Promise<Gpu> {
  const gpu = await Gpu.create(options);
  setDefaultGpu(gpu);
  return gpu;
}
