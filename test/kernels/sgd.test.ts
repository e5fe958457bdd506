import { describe, expect, it } from 'vitest';
import { ELEMENTWISE_VARIANTS } from '../../src/shaders/elementwise.js';
import { sgdStep } from '../../src/shaders/sgd.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();
const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));

const CONFIGS: ref.SgdOptions[] = [
  { lr: 0.01 },
  { lr: 0.01, weightDecay: 1e-4 }, // the seed's optimizer
  { lr: 0.1, momentum: 0.9 },
  { lr: 0.05, momentum: 0.9, dampening: 0.5, weightDecay: 0.01 },
  { lr: 0.05, momentum: 0.8, nesterov: true },
  { lr: 0.02, momentum: 0.9, nesterov: true, weightDecay: 1e-3 },
];

describe('sgdStep', () => {
  for (const variant of ELEMENTWISE_VARIANTS) {
    for (const n of [1, 17, 1001, 16_000]) {
      for (const opts of CONFIGS) {
        it(`${variant} n=${n} ${JSON.stringify(opts)}: 3 steps vs torch.optim.SGD's rule`, async () => {
          const { gpu } = ctx;
          let param: Float64Array = f(randomArray(n, n, -1, 1));
          let velocity: Float64Array | null = null;
          const pb = upload(gpu, param);
          const vb = opts.momentum ? empty(gpu, n) : null;
          for (let step = 0; step < 3; step++) {
            const grad = f(randomArray(n, 100 * step + n + 1, -2, 2));
            const gb = upload(gpu, grad);
            sgdStep(gpu, pb, gb, vb, { n, ...opts, firstStep: step === 0, variant });
            gpu.pool.release(gb);
            ({ param, velocity } = ref.sgdStep(param, grad, opts, velocity));
          }
          expectClose(await download(gpu, pb, n), param, { atol: 1e-6, rtol: 1e-5, label: 'param' });
          if (vb) expectClose(await download(gpu, vb, n), velocity!, { atol: 1e-6, rtol: 1e-5, label: 'velocity' });
          gpu.pool.release(pb);
          if (vb) gpu.pool.release(vb);
        });
      }
    }
  }

  it('rejects nesterov without momentum or with dampening, and momentum without a buffer', () => {
    const { gpu } = ctx;
    const b = empty(gpu, 4);
    expect(() => sgdStep(gpu, b, b, b, { n: 4, lr: 0.1, nesterov: true })).toThrow(/Nesterov/);
    expect(() => sgdStep(gpu, b, b, b, { n: 4, lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true })).toThrow(/Nesterov/);
    expect(() => sgdStep(gpu, b, b, null, { n: 4, lr: 0.1, momentum: 0.9 })).toThrow(/velocity/);
    gpu.pool.release(b);
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
