// Every command that touches the GPU: open the adapter, make it the tensors' default, and always destroy the
// device at the end so Node can exit (also when the command throws).
import { Gpu } from '../gpu/runtime.js';
import { setDefaultGpu } from '../nn/tensor.js';
import { attachTuning } from '../tune/cache.js';

export async function withGpu<T>(run: (gpu: Gpu) => Promise<T>): Promise<T> {
  const gpu = await Gpu.create();
  attachTuning(gpu); // measured kernel choices, unless WEBGPU_NN_TUNE=0
  setDefaultGpu(gpu);
  try {
    return await run(gpu);
  } finally {
    setDefaultGpu(null);
    gpu.destroy();
  }
}
