// sgdStepMany (several tensors per dispatch) against the float64 reference SGD applied tensor by tensor:
// plain, with momentum over three steps (the first initialises the buffer), and Nesterov.
import { describe, it } from 'vitest';
import { type SgdTensor, sgdStepMany } from '../../src/shaders/sgd.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, upload, useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();
// The seed model's parameter sizes plus odd ones; more tensors than fit one dispatch, so groups split.
const SIZES = [250, 10, 10, 10, 5000, 20, 20, 20, 16000, 50, 500, 10, 1, 3, 7];

describe('sgdStepMany', () => {
  for (const opts of [
    { lr: 0.01, weightDecay: 1e-4 },
    { lr: 0.05, weightDecay: 1e-3, momentum: 0.9, dampening: 0.1 },
    { lr: 0.05, momentum: 0.9, nesterov: true },
  ]) {
    it(JSON.stringify(opts), async () => {
      const { gpu } = ctx;
      const params = SIZES.map((n, i) => randomArray(n, 100 + i));
      const expected = params.map((p) => ({ param: p, velocity: null as Float64Array | null }));
      const tensors: SgdTensor[] = params.map((p) => ({
        param: upload(gpu, p),
        grad: gpu.pool.acquire(4 * p.length, 'grad'),
        velocity: opts.momentum ? gpu.pool.acquire(4 * p.length, 'velocity') : null,
        n: p.length,
      }));
      for (let step = 0; step < 3; step++) {
        const grads = SIZES.map((n, i) => randomArray(n, 1000 * step + i));
        for (const [i, t] of tensors.entries()) gpu.write(t.grad, Float32Array.from(grads[i]));
        sgdStepMany(gpu, tensors, { ...opts, firstStep: step === 0 });
        for (const [i, e] of expected.entries()) Object.assign(e, ref.sgdStep(e.param, grads[i], opts, e.velocity));
      }
      for (const [i, t] of tensors.entries()) {
        expectClose(await download(gpu, t.param, t.n), expected[i].param, { label: `param ${i} (n=${t.n})`, atol: 1e-6, rtol: 1e-5 });
        if (t.velocity)
          expectClose(await download(gpu, t.velocity, t.n), expected[i].velocity!, { label: `velocity ${i}`, atol: 1e-6, rtol: 1e-5 });
      }
      for (const t of tensors) for (const b of [t.param, t.grad, t.velocity]) if (b) gpu.pool.release(b);
    });
  }
});
