import { describe, expect, it } from 'vitest';
import { capacityOf } from '../../src/shaders/elementwise.js';
import { SGD_MOMENTUM_STEP, SGD_STEP, sgdStep } from '../../src/shaders/sgd.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
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
  for (const n of [1, 17, 1001, 16_000]) {
    for (const opts of CONFIGS) {
      it(`every variant, n=${n} ${JSON.stringify(opts)}: 3 steps vs torch.optim.SGD's rule`, async () => {
        const { gpu } = ctx;
        const param0 = f(randomArray(n, n, -1, 1));
        const pb = upload(gpu, param0);
        const vb = opts.momentum ? empty(gpu, n) : null;
        const grads = [0, 1, 2].map((step) => f(randomArray(n, 100 * step + n + 1, -2, 2)));
        const gbs = grads.map((g) => upload(gpu, g));
        const op = opts.momentum ? SGD_MOMENTUM_STEP : SGD_STEP;
        for (const variant of runnableVariants(gpu, op, { n, capacity: capacityOf([pb, ...gbs, ...(vb ? [vb] : [])]) })) {
          gpu.write(pb, Float32Array.from(param0));
          let param: Float64Array = param0;
          let velocity: Float64Array | null = null;
          for (let step = 0; step < 3; step++) {
            sgdStep(gpu, pb, gbs[step], vb, { n, ...opts, firstStep: step === 0, variant });
            ({ param, velocity } = ref.sgdStep(param, grads[step], opts, velocity));
          }
          expectClose(await download(gpu, pb, n), param, { atol: 1e-6, rtol: 1e-5, label: `param ${variant}` });
          if (vb) expectClose(await download(gpu, vb, n), velocity!, { atol: 1e-6, rtol: 1e-5, label: `velocity ${variant}` });
        }
        for (const b of [pb, ...gbs, ...(vb ? [vb] : [])]) gpu.pool.release(b);
      });
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
