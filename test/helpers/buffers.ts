// Uploading to and reading back pooled storage buffers, for the tests and the kernel benchmarks alike (no
// test-runner import here, so the benchmark programs can use it too).
import type { Gpu } from '../../src/gpu/runtime.js';

/** A pooled storage buffer holding `data` as float32 (or int32/uint32 when given such an array). */
export function upload(gpu: Gpu, data: ArrayLike<number> | Int32Array | Uint32Array, label = 'test input'): GPUBuffer {
  const typed = data instanceof Int32Array || data instanceof Uint32Array || data instanceof Float32Array ? data : Float32Array.from(data);
  const buffer = gpu.pool.acquire(Math.max(4, typed.byteLength), label);
  gpu.write(buffer, typed);
  return buffer;
}

/** An uninitialised pooled buffer for n 32-bit values. */
export function empty(gpu: Gpu, n: number, label = 'test output'): GPUBuffer {
  return gpu.pool.acquire(Math.max(4, n * 4), label);
}

export async function download(gpu: Gpu, buffer: GPUBuffer, n: number): Promise<Float32Array> {
  return new Float32Array(await gpu.read(buffer, n * 4));
}
export async function downloadI32(gpu: Gpu, buffer: GPUBuffer, n: number): Promise<Int32Array> {
  return new Int32Array(await gpu.read(buffer, n * 4));
}
export async function downloadU32(gpu: Gpu, buffer: GPUBuffer, n: number): Promise<Uint32Array> {
  return new Uint32Array(await gpu.read(buffer, n * 4));
}
