import { describe, expect, it } from 'vitest';
import {
  BATCH_NORM_BACKWARD,
  BATCH_NORM_BACKWARD_EVAL,
  BATCH_NORM_STATS,
  BATCH_NORM_TRAIN,
  batchNormBackward,
  batchNormBackwardEval,
  batchNormForwardEval,
  batchNormForwardTrain,
  batchNormStats,
  updateRunningStats,
} from '../../src/shaders/batch-norm/index.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();
const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));

// [N, C, H, W, offset]: offset shifts x far from zero (mean ≫ std), where E[x²] − E[x]² would fail.
const SHAPES: [number, number, number, number, number][] = [
  [64, 10, 12, 12, 0], // the seed, after the first pool
  [64, 20, 4, 4, 0], // the seed, after the second pool
  [1, 1, 1, 2, 0],
  [2, 3, 1, 1, 0], // [N, C] input (BatchNorm1d) is H = W = 1
  [64, 50, 1, 1, 0],
  [7, 129, 1, 1, 0],
  [3, 1, 1, 1, 0],
  [33, 9, 1, 1, 500],
  [1, 3, 5, 7, 0],
  [3, 2, 5, 7, 0],
  [17, 5, 3, 3, 0],
  [1, 1, 33, 33, 0],
  [256, 3, 2, 2, 0],
  [5, 4, 6, 6, 0],
  [8, 2, 64, 64, 0],
  [64, 10, 12, 12, 1000],
  [7, 3, 5, 5, -300],
];

/** Every variant of the statistics, training forward and backward (all three registries name the same ones). */
function variants(sizes: { N: number; C: number; H: number; W: number }) {
  const names = runnableVariants(ctx.gpu, BATCH_NORM_TRAIN, sizes);
  expect(runnableVariants(ctx.gpu, BATCH_NORM_STATS, sizes)).toEqual(names);
  expect(runnableVariants(ctx.gpu, BATCH_NORM_BACKWARD, sizes)).toEqual(names);
  expect(runnableVariants(ctx.gpu, BATCH_NORM_BACKWARD_EVAL, sizes)).toEqual(names);
  return names;
}

describe('batch norm', () => {
  for (const [N, C, H, W, offset] of SHAPES) {
    const M = N * H * W;
    const shape = `${N}x${C}x${H}x${W}${offset ? ` offset ${offset}` : ''}`;
    it(`${shape}, every variant: statistics, training forward with running stats, evaluation, backward in both modes`, async () => {
      for (const variant of variants({ N, C, H, W })) {
        const label = `${variant} ${shape}`;
        const { gpu } = ctx;
        const n = N * C * H * W;
        const sizes = { N, C, H, W, eps: 1e-5, variant };
        const x = f(randomArray(n, n + C, offset - 1.5, offset + 2.5));
        const gamma = f(randomArray(C, C + 1, 0.5, 1.5));
        const beta = f(randomArray(C, C + 2, -0.5, 0.5));
        const rm0 = f(randomArray(C, C + 3, -1, 1));
        const rv0 = f(randomArray(C, C + 4, 0.5, 2));
        const expected = ref.batchNorm2dTrain(x, gamma, beta, sizes);
        // Everything is relative to the spread of x (std ≈ 1.15) and the offset's rounding in float32.
        const atol = 2e-5 + 2e-7 * Math.abs(offset) * 10;

        const xb = upload(gpu, x),
          gb = upload(gpu, gamma),
          bb = upload(gpu, beta);
        const mean = empty(gpu, C),
          varb = empty(gpu, C),
          inv = empty(gpu, C),
          yb = empty(gpu, n);
        batchNormStats(gpu, xb, mean, varb, inv, sizes);
        expectClose(await download(gpu, mean, C), expected.mean, { atol, rtol: 1e-6, label: `${label} stats mean` });
        expectClose(await download(gpu, varb, C), expected.varBiased, { atol: 1e-5, rtol: 1e-4, label: `${label} stats var` });
        expectClose(await download(gpu, inv, C), expected.invStd, { atol: 1e-5, rtol: 1e-4, label: `${label} stats invStd` });

        if (M >= 2) {
          for (const unbiased of [true, false]) {
            const rm = upload(gpu, rm0),
              rv = upload(gpu, rv0);
            gpu.write(mean, new Float32Array(C).fill(NaN));
            batchNormForwardTrain(
              gpu,
              xb,
              gb,
              bb,
              yb,
              mean,
              inv,
              { ...sizes, momentum: 0.3, unbiasedRunningVar: unbiased },
              { mean: rm, var: rv },
            );
            expectClose(await download(gpu, yb, n), expected.y, { atol: atol * 2, rtol: 1e-4, label: `${label} train y` });
            expectClose(await download(gpu, mean, C), expected.mean, { atol, rtol: 1e-6, label: `${label} train mean` });
            expectClose(await download(gpu, inv, C), expected.invStd, { atol: 1e-5, rtol: 1e-4, label: `${label} train invStd` });
            const run = ref.updateRunningStats(rm0, rv0, expected.mean, expected.varBiased, M, 0.3, unbiased);
            expectClose(await download(gpu, rm, C), run.runningMean, {
              atol,
              rtol: 1e-5,
              label: `${label} running mean (unbiased ${unbiased})`,
            });
            expectClose(await download(gpu, rv, C), run.runningVar, {
              atol: 1e-5,
              rtol: 1e-4,
              label: `${label} running var (unbiased ${unbiased})`,
            });
            // The standalone update from (mean, invStd) agrees, with PyTorch's default momentum.
            gpu.write(rm, Float32Array.from(rm0));
            gpu.write(rv, Float32Array.from(rv0));
            updateRunningStats(gpu, mean, inv, rm, rv, { ...sizes, unbiasedRunningVar: unbiased });
            const run2 = ref.updateRunningStats(rm0, rv0, expected.mean, expected.varBiased, M, 0.1, unbiased);
            expectClose(await download(gpu, rm, C), run2.runningMean, { atol, rtol: 1e-5, label: `${label} updateRunningStats mean` });
            expectClose(await download(gpu, rv, C), run2.runningVar, { atol: 1e-5, rtol: 1e-4, label: `${label} updateRunningStats var` });
            // Without running buffers the forward gives the same y.
            batchNormForwardTrain(gpu, xb, gb, bb, yb, mean, inv, sizes);
            expectClose(await download(gpu, yb, n), expected.y, { atol: atol * 2, rtol: 1e-4, label: `${label} train y without running` });
            gpu.pool.release(rm);
            gpu.pool.release(rv);
          }
        } else {
          expect(() => batchNormForwardTrain(gpu, xb, gb, bb, yb, mean, inv, sizes)).toThrow(/more than one value per channel/);
        }

        // Evaluation from running statistics (both map versions).
        const rmb = upload(gpu, rm0),
          rvb = upload(gpu, rv0);
        batchNormForwardEval(gpu, xb, gb, bb, rmb, rvb, yb, sizes);
        expectClose(await download(gpu, yb, n), ref.batchNorm2dEval(x, gamma, beta, rm0, rv0, sizes), {
          atol: 1e-5 + 1e-6 * Math.abs(offset),
          rtol: 1e-5,
          label: `${label} eval y`,
        });

        // Backward from the reference's saved statistics (rounded to float32, as the GPU holds them).
        const sm = f(expected.mean),
          si = f(expected.invStd);
        const dy = f(randomArray(n, n + 9, -1, 1));
        const g = ref.batchNorm2dBackward(x, gamma, dy, sm, si, sizes);
        const smb = upload(gpu, sm),
          sib = upload(gpu, si),
          dyb = upload(gpu, dy),
          dxb = empty(gpu, n);
        const dg = upload(gpu, new Float32Array(C).fill(1)),
          db = upload(gpu, new Float32Array(C).fill(-1));
        batchNormBackward(gpu, xb, dyb, gb, smb, sib, dxb, dg, db, { ...sizes, accumulate: true });
        const scale = Math.max(...si) * Math.max(...gamma);
        expectClose(await download(gpu, dxb, n), g.dx, {
          atol: 2e-5 * scale + 1e-7 * Math.abs(offset) * scale * 10,
          rtol: 1e-4,
          label: `${label} dx`,
        });
        const sumTol = (1e-6 * n) / C + 1e-5;
        expectClose(
          await download(gpu, dg, C),
          g.dgamma.map((v) => v + 1),
          { atol: sumTol * (1 + Math.abs(offset) / 100), rtol: 1e-4, label: `${label} dgamma (accumulated)` },
        );
        expectClose(
          await download(gpu, db, C),
          g.dbeta.map((v) => v - 1),
          { atol: sumTol, rtol: 1e-4, label: `${label} dbeta (accumulated)` },
        );
        batchNormBackward(gpu, xb, dyb, gb, smb, sib, dxb, dg, db, sizes);
        expectClose(await download(gpu, db, C), g.dbeta, { atol: sumTol, rtol: 1e-4, label: `${label} dbeta (overwritten)` });

        // Backward in evaluation mode, from the running statistics (overwriting, then accumulating).
        const ge = ref.batchNorm2dEvalBackward(x, gamma, dy, rm0, rv0, sizes);
        batchNormBackwardEval(gpu, xb, dyb, gb, rmb, rvb, dxb, dg, db, sizes);
        const evalScale = Math.max(...gamma) / Math.sqrt(Math.min(...rv0));
        expectClose(await download(gpu, dxb, n), ge.dx, { atol: 1e-6 * evalScale, rtol: 1e-5, label: `${label} eval dx` });
        const evalSumTol = sumTol * (1 + Math.abs(offset));
        expectClose(await download(gpu, dg, C), ge.dgamma, { atol: evalSumTol, rtol: 1e-4, label: `${label} eval dgamma` });
        expectClose(await download(gpu, db, C), ge.dbeta, { atol: sumTol, rtol: 1e-4, label: `${label} eval dbeta` });
        batchNormBackwardEval(gpu, xb, dyb, gb, rmb, rvb, dxb, dg, db, { ...sizes, accumulate: true });
        expectClose(
          await download(gpu, db, C),
          ge.dbeta.map((v) => 2 * v),
          { atol: 2 * sumTol, rtol: 1e-4, label: `${label} eval dbeta (accumulated)` },
        );

        for (const b of [xb, gb, bb, mean, varb, inv, yb, rmb, rvb, smb, sib, dyb, dxb, dg, db]) gpu.pool.release(b);
      }
    });
  }

  it('both eval map versions agree', async () => {
    const { gpu } = ctx;
    const [N, C, H, W] = [3, 5, 5, 7];
    const n = N * C * H * W;
    const x = f(randomArray(n, 1)),
      gamma = f(randomArray(C, 2)),
      beta = f(randomArray(C, 3)),
      rm = f(randomArray(C, 4)),
      rv = f(randomArray(C, 5, 0.5, 2));
    const bufs = [x, gamma, beta, rm, rv].map((a) => upload(gpu, a));
    const expected = ref.batchNorm2dEval(x, gamma, beta, rm, rv, { N, C, H, W });
    for (const mapVariant of ['v1', 'v2'] as const) {
      const y = empty(gpu, n);
      batchNormForwardEval(gpu, bufs[0], bufs[1], bufs[2], bufs[3], bufs[4], y, { N, C, H, W, mapVariant });
      expectClose(await download(gpu, y, n), expected, { atol: 1e-5, rtol: 1e-5, label: `eval ${mapVariant}` });
      gpu.pool.release(y);
    }
    for (const b of bufs) gpu.pool.release(b);
  });

  it('releases what it acquired', () => {
    expect(ctx.gpu.pool.stats().bytesInUse).toBe(0);
  });
});
