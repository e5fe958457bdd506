// maxPool2d with a fused ReLU, against the float64 reference chain relu(maxPool2d(x)) and its backward
// maxPool2dBackward(reluBackward(...)), for both kernel versions; and the autograd op against the unfused ops.
import { describe, expect, it } from 'vitest';
import * as F from '../../src/nn/ops.js';
import { setDefaultGpu } from '../../src/nn/tensor.js';
import { MAX_POOL2D, MAX_POOL2D_BACKWARD } from '../../src/shaders/pool.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { useGpu } from '../helpers/gpu.js';
import { checkPoolKernels } from '../helpers/pool.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

const shapes = [
  { N: 2, C: 3, H: 24, W: 24, kernel: 2, stride: 2 }, // v2-eligible, as conv1's output
  { N: 3, C: 2, H: 8, W: 8, kernel: 2, stride: 2 }, // as conv2's
  { N: 2, C: 2, H: 7, W: 9, kernel: 2, stride: 2 }, // odd: floor, v1 only
  { N: 1, C: 2, H: 7, W: 7, kernel: 3, stride: 2 }, // overlapping windows, v1 only
];

describe('maxPool2d with fused relu', () => {
  for (const s of shapes) {
    it(`${s.N}x${s.C}x${s.H}x${s.W} k${s.kernel} s${s.stride}, every variant`, async () => {
      const variants = runnableVariants(ctx.gpu, MAX_POOL2D, s);
      expect(runnableVariants(ctx.gpu, MAX_POOL2D_BACKWARD, s)).toEqual(variants);
      for (const variant of variants) {
        const label = `${variant} ${s.N}x${s.C}x${s.H}x${s.W} k${s.kernel} s${s.stride}`;
        const n = s.N * s.C * s.H * s.W;
        const x = randomArray(n, n + s.kernel, -1, 0.6); // mostly negative: many windows are cut by the relu
        const dy = randomArray(ref.maxPool2d(x, s).y.length, 7);
        const { argmax, pooled } = await checkPoolKernels(ctx.gpu, s, variant, x, dy, true);
        for (const [i, v] of pooled.y.entries()) expect(argmax[i] === -1, `${label} argmax[${i}] for max ${v}`).toBe(v <= 0);
      }
    });
  }

  it('F.maxPool2dRelu equals F.relu(F.maxPool2d) in value and gradient', async () => {
    setDefaultGpu(ctx.gpu);
    const data = Float32Array.from(randomArray(2 * 3 * 12 * 12, 3, -1, 1));
    const grads: Float32Array[] = [];
    const outs: Float32Array[] = [];
    for (const fused of [true, false]) {
      const x = F.tensor(data, [2, 3, 12, 12], { requiresGrad: true });
      const y = fused ? F.maxPool2dRelu(x) : F.relu(F.maxPool2d(x));
      F.sum(F.mul(y, y)).backward();
      outs.push((await y.toArray()) as Float32Array);
      grads.push((await x.grad!.toArray()) as Float32Array);
    }
    expectClose(outs[0], outs[1], { label: 'value', atol: 0, rtol: 0 });
    expectClose(grads[0], grads[1], { label: 'gradient', atol: 0, rtol: 0 });
  });
});
