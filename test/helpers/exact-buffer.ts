// A storage buffer of exactly the data's size (not pooled: pool buffers are multiples of 256 bytes), for
// testing kernels on buffers with no room for a whole last vec4. Destroy it after use.
import type { Gpu } from '../../src/gpu/runtime.js';

export function exactBuffer(gpu: Gpu, data: ArrayLike<number> | Float32Array | Int32Array): GPUBuffer {
  const typed = data instanceof Float32Array || data instanceof Int32Array ? data : Float32Array.from(data);
  const b = gpu.device.createBuffer({ size: Math.max(4, typed.byteLength), usage: 0x80 | 0x04 | 0x08, label: 'exact test buffer' });
  gpu.write(b, typed);
  return b;
}
