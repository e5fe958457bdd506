// Every command that touches the GPU: open the adapter, make it the tensors' default, and always destroy the
// device at the end so Node can exit (also when the command throws).
import { Gpu } from '../gpu/runtime.js';
import { setDefaultGpu } from '../nn/tensor.js';

export async function withGpu<T>(run: (gpu: Gpu) => Promise<T>): Promise<T> {
  const gpu = await Gpu.create();
  setDefaultGpu(gpu);
  try {
    return await run(gpu);
  } finally {
    setDefaultGpu(null);
    gpu.destroy();
  }
}
