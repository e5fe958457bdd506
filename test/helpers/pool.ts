// One check of the max-pool kernels, shared by the pooling tests: forward (optionally with the fused ReLU) and
// backward of one variant against the float64 reference chain relu(maxPool2d(x)) and its backward.
import { expect } from 'vitest';
import type { Gpu } from '../../src/gpu/runtime.js';
import { maxPool2d, maxPool2dBackward, type PoolSizes, type PoolVariant } from '../../src/shaders/pool.js';
import * as ref from '../reference/index.js';
import { expectClose } from './compare.js';
import { download, downloadI32, empty, upload } from './gpu.js';

/** Runs the variant on x and dy (inputs and upstream gradient), compares y and dx, and returns the argmax it wrote. */
export async function checkPoolKernels(
  gpu: Gpu,
  s: Required<Pick<PoolSizes, 'N' | 'C' | 'H' | 'W' | 'kernel' | 'stride'>>,
  variant: PoolVariant,
  x: Float64Array,
  dy: Float64Array,
  relu: boolean,
): Promise<{ argmax: Int32Array; pooled: ReturnType<typeof ref.maxPool2d> }> {
  const label = `${variant}${relu ? ' +relu' : ''} ${s.N}x${s.C}x${s.H}x${s.W} k${s.kernel} s${s.stride}`;
  const n = s.N * s.C * s.H * s.W;
  const pooled = ref.maxPool2d(x, s);
  const m = pooled.y.length;
  expect(dy.length).toBe(m);
  const xb = upload(gpu, x),
    yb = empty(gpu, m),
    ab = empty(gpu, m),
    dyb = upload(gpu, dy),
    dxb = empty(gpu, n);
  maxPool2d(gpu, xb, yb, ab, { ...s, relu, variant });
  maxPool2dBackward(gpu, dyb, ab, dxb, { ...s, variant });
  const y = relu ? ref.relu(pooled.y) : pooled.y;
  const dx = ref.maxPool2dBackward(relu ? ref.reluBackward(pooled.y, dy) : dy, pooled.argmax, s);
  expectClose(await download(gpu, yb, m), y, { label: `${label} y`, atol: 0, rtol: 1e-6 });
  expectClose(await download(gpu, dxb, n), dx, { label: `${label} dx`, atol: 1e-7, rtol: 1e-6 });
  const argmax = await downloadI32(gpu, ab, m);
  for (const b of [xb, yb, ab, dyb, dxb]) gpu.pool.release(b);
  return { argmax, pooled };
}
