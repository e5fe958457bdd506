// One Gpu runtime per test file (Dawn's node tests do the same); the upload/download helpers live in buffers.ts.
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

export { download, downloadI32, downloadU32, empty, upload } from './buffers.js';
