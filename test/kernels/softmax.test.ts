import { describe, expect, it } from 'vitest';
import { DataError } from '../../src/errors.js';
import {
  CORRECT_COUNT,
  CROSS_ENTROPY,
  correctCount,
  LOG_SOFTMAX,
  logSoftmax,
  logSoftmaxBackward,
  logSoftmaxNllLoss,
  logSoftmaxNllLossBackward,
  NLL_LOSS,
  nllLoss,
  nllLossBackward,
} from '../../src/shaders/softmax.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));
function targets(rows: number, cols: number, seed: number): Int32Array {
  return Int32Array.from(randomArray(rows, seed, 0, cols), Math.floor);
}
// The reference's argmax (first maximum), for the correct counts.
function refCorrect(x: Float64Array, t: Int32Array, rows: number, cols: number): number {
  let hits = 0;
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let j = 1; j < cols; j++) if (x[r * cols + j] > x[r * cols + best]) best = j;
    if (best === t[r]) hits++;
  }
  return hits;
}
// The loss variants: one generator makes the three registries, so they must agree.
function lossVariants(rows: number, cols: number) {
  const [nll, ce, count] = [NLL_LOSS, CROSS_ENTROPY, CORRECT_COUNT].map((op) => runnableVariants(ctx.gpu, op, { rows, cols }));
  expect(nll).toEqual(ce);
  expect(count).toEqual(ce);
  return ce;
}
async function readU32(gpu: typeof ctx.gpu, b: GPUBuffer): Promise<number> {
  return new Uint32Array(await gpu.read(b, 4))[0];
}

const SHAPES: [number, number][] = [
  [1, 10],
  [3, 10],
  [17, 37],
  [64, 10],
  [65, 1],
  [256, 10],
  [33, 300],
  [5, 1000],
];

describe('logSoftmax', () => {
  for (const [rows, cols] of SHAPES) {
    for (const mag of [3, 80]) {
      it(`every variant, forward and backward ${rows}x${cols}, |x| ≤ ${mag}`, async () => {
        const { gpu } = ctx;
        for (const variant of runnableVariants(gpu, LOG_SOFTMAX, { rows, cols })) {
          const n = rows * cols;
          const x = f(randomArray(n, n + mag, -mag, mag));
          const dy = f(randomArray(n, n + 1));
          const xb = upload(gpu, x),
            yb = empty(gpu, n),
            dyb = upload(gpu, dy),
            dxb = empty(gpu, n);
          logSoftmax(gpu, xb, yb, { rows, cols, variant });
          const y = await download(gpu, yb, n);
          // |y| reaches ~2·mag, so the absolute error scales with the magnitude of x.
          expectClose(y, ref.logSoftmax(x, rows, cols), { atol: 2e-6 * mag, rtol: 1e-6, label: `logSoftmax ${variant}` });
          logSoftmaxBackward(gpu, yb, dyb, dxb, { rows, cols, variant });
          expectClose(await download(gpu, dxb, n), ref.logSoftmaxBackward(f(y), dy, rows, cols), {
            atol: 1e-5,
            rtol: 1e-5,
            label: `logSoftmax backward ${variant}`,
          });
          for (const b of [xb, yb, dyb, dxb]) gpu.pool.release(b);
        }
      });
    }
  }
});

describe('losses', () => {
  for (const [rows, cols] of [...SHAPES, [300, 10] as [number, number]]) {
    it(`every variant: nllLoss, fused cross-entropy, correctCount ${rows}x${cols}`, async () => {
      const { gpu } = ctx;
      for (const variant of lossVariants(rows, cols)) {
        const n = rows * cols;
        const x = f(randomArray(n, n + 5, -80, 80));
        const t = targets(rows, cols, rows + 3);
        const logp = f(ref.logSoftmax(x, rows, cols));
        const xb = upload(gpu, x),
          tb = upload(gpu, t),
          lpb = upload(gpu, logp);
        const loss = upload(gpu, [0]),
          correct = upload(gpu, new Uint32Array([0]));
        const tol = { atol: 1e-5, rtol: 1e-5 };

        // NLL from log-probabilities, mean and sum, and its gradient with and without an upstream dy.
        nllLoss(gpu, lpb, tb, loss, { rows, cols, variant });
        expectClose(await download(gpu, loss, 1), [ref.nllLoss(logp, t, rows, cols)], { ...tol, label: `nllLoss ${variant}` });
        nllLoss(gpu, lpb, tb, loss, { rows, cols, variant, reduction: 'sum' });
        expectClose(await download(gpu, loss, 1), [rows * ref.nllLoss(logp, t, rows, cols)], {
          ...tol,
          rtol: 1e-5,
          label: `nllLoss sum ${variant}`,
        });
        const g = empty(gpu, n),
          dyb = upload(gpu, [0.5]);
        nllLossBackward(gpu, tb, null, g, { rows, cols });
        expectClose(await download(gpu, g, n), ref.nllLossBackward(t, rows, cols), {
          atol: 0,
          rtol: 1e-6,
          label: `nllLossBackward ${variant}`,
        });
        nllLossBackward(gpu, tb, dyb, g, { rows, cols, scale: 2 });
        expectClose(await download(gpu, g, n), ref.nllLossBackward(t, rows, cols), {
          atol: 0,
          rtol: 1e-6,
          label: `nllLossBackward dy=0.5 scale=2 ${variant}`,
        });

        // Fused forward: loss, log-probabilities, gradient and the correct count in one dispatch.
        const lp2 = empty(gpu, n),
          dl = empty(gpu, n);
        logSoftmaxNllLoss(gpu, xb, tb, lp2, loss, { rows, cols, variant }, { dlogits: dl, correct });
        expectClose(await download(gpu, loss, 1), [ref.crossEntropyFromLogits(x, t, rows, cols)], {
          ...tol,
          label: `fused loss ${variant}`,
        });
        expectClose(await download(gpu, lp2, n), logp, { atol: 2e-4, rtol: 1e-6, label: `fused logp ${variant}` });
        expectClose(await download(gpu, dl, n), ref.crossEntropyFromLogitsBackward(x, t, rows, cols), {
          atol: 1e-6,
          rtol: 1e-4,
          label: `fused dlogits ${variant}`,
        });
        expect(await readU32(gpu, correct), `correct ${variant}`).toBe(refCorrect(x, t, rows, cols));

        // Loss only, and the separate backward from saved logp, with an upstream gradient.
        const dl2 = empty(gpu, n);
        logSoftmaxNllLoss(gpu, xb, tb, null, loss, { rows, cols, variant });
        expectClose(await download(gpu, loss, 1), [ref.crossEntropyFromLogits(x, t, rows, cols)], {
          ...tol,
          label: `fused loss alone ${variant}`,
        });
        logSoftmaxNllLossBackward(gpu, lp2, tb, dyb, dl2, { rows, cols, scale: 4 });
        const twice = ref.crossEntropyFromLogitsBackward(x, t, rows, cols).map((v) => 2 * v);
        expectClose(await download(gpu, dl2, n), twice, {
          atol: 1e-6,
          rtol: 1e-4,
          label: `logSoftmaxNllLossBackward dy=0.5 scale=4 ${variant}`,
        });

        // Accumulation over three "steps": loss and counts sum on the GPU.
        gpu.write(loss, new Float32Array([1]));
        gpu.write(correct, new Uint32Array([7]));
        for (let k = 0; k < 3; k++) logSoftmaxNllLoss(gpu, xb, tb, null, loss, { rows, cols, variant, accumulate: true }, { correct });
        expectClose(await download(gpu, loss, 1), [1 + 3 * ref.crossEntropyFromLogits(x, t, rows, cols)], {
          ...tol,
          label: `accumulated loss ${variant}`,
        });
        expect(await readU32(gpu, correct), `correct ${variant}`).toBe(7 + 3 * refCorrect(x, t, rows, cols));
        correctCount(gpu, xb, tb, correct, { rows, cols, variant });
        expect(await readU32(gpu, correct), `correct ${variant}`).toBe(refCorrect(x, t, rows, cols));
        correctCount(gpu, lpb, tb, correct, { rows, cols, variant, accumulate: true });
        expect(await readU32(gpu, correct), `correct ${variant}`).toBe(2 * refCorrect(x, t, rows, cols));
        nllLoss(gpu, lpb, tb, loss, { rows, cols, variant, accumulate: true });
        expectClose(await download(gpu, loss, 1), [1 + 4 * ref.crossEntropyFromLogits(x, t, rows, cols)], {
          ...tol,
          label: `accumulated nll ${variant}`,
        });

        for (const b of [xb, tb, lpb, loss, correct, g, dyb, lp2, dl, dl2]) gpu.pool.release(b);
      }
    });
  }

  it('reports targets outside [0, cols) at the next sync as a DataError, computing without them, and counts ties as the first maximum', async () => {
    const { gpu } = ctx;
    const rows = 4,
      cols = 3;
    const x = f([1, 1, 0, /**/ 0, 2, 2, /**/ 5, 1, 1, /**/ 0, 0, 0]);
    const t = Int32Array.from([1, 1, -1, 3]);
    for (const variant of lossVariants(rows, cols)) {
      const xb = upload(gpu, x),
        tb = upload(gpu, t),
        loss = empty(gpu, 1),
        correct = empty(gpu, 1),
        dl = empty(gpu, rows * cols);
      logSoftmaxNllLoss(gpu, xb, tb, null, loss, { rows, cols, variant }, { dlogits: dl, correct });
      // The device-side check: one of the two bad rows (whichever invocation got there first) names the op.
      await expect(gpu.sync()).rejects.toThrow(DataError);
      logSoftmaxNllLoss(gpu, xb, tb, null, loss, { rows, cols, variant }, { dlogits: dl, correct });
      await expect(gpu.sync()).rejects.toThrow(
        /^logSoftmaxNllLoss: target (-1 at row 2|3 at row 3) is not a class index in 0\.\.2 \(3 classes\)/,
      );
      await gpu.sync(); // reported once: the fault word is clear again
      expect(await readU32(gpu, correct)).toBe(1); // row 1: argmax 1 (first of the tie) = target
      const logp = ref.logSoftmax(x, rows, cols);
      const expected = -(logp[1] + logp[3 + 1]) / rows;
      expectClose(await download(gpu, loss, 1), [expected], { atol: 1e-6, rtol: 1e-5, label: 'loss with ignored rows' });
      const d = await download(gpu, dl, rows * cols);
      expectClose(
        d.slice(6),
        Float64Array.from(logp.slice(6), (v) => Math.exp(v) / rows),
        { atol: 1e-7, rtol: 1e-5, label: 'ignored rows: softmax only' },
      );
      for (const b of [xb, tb, loss, correct, dl]) gpu.pool.release(b);
    }
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
