// One Gpu runtime per test file (Dawn's node tests do the same), plus upload/download helpers.
import { afterAll, beforeAll } from 'vitest';
import { Gpu } from '../../src/gpu/runtime.js';
import { setDefaultGpu } from '../../src/nn/tensor.js';

/**
 * Opens a Gpu before the file's tests and destroys it after them. Use `ctx.gpu` inside tests. With
 * `tensors: true` it is also the tensors' default (for files that use tensors, modules or the trainer).
 */
export function useGpu(opts: { tensors?: boolean } = {}): { gpu: Gpu } {
  const ctx = {} as { gpu: Gpu };
  beforeAll(async () => {
    ctx.gpu = await Gpu.create();
    if (opts.tensors) setDefaultGpu(ctx.gpu);
  });
  afterAll(() => {
    if (opts.tensors) setDefaultGpu(null);
    ctx.gpu?.destroy();
  });
  return ctx;
}

/** Runs `fn` on a Gpu of its own (for tests that break their runtime on purpose), destroyed afterwards. */
export async function withOwnGpu<T>(fn: (gpu: Gpu) => Promise<T>): Promise<T> {
  const gpu = await Gpu.create();
  try {
    return await fn(gpu);
  } finally {
    gpu.destroy();
  }
}

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
