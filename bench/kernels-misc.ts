// Benchmark entries for the non-matmul kernel families at the seed's shapes (batch 64): max pooling, batch
// norm, log-softmax/NLL, dropout, SGD, and the elementwise and reduction helpers, every version of each.
// Each entry validates against the float64 CPU reference (test/reference) before bench/harness.ts times it.
//
//   npm run build && npm run bench:kernels -- --filter max_pool2d
import type { Gpu } from '../src/gpu/runtime.js';
import * as bn from '../src/shaders/batch-norm/index.js';
import * as drop from '../src/shaders/dropout.js';
import * as ew from '../src/shaders/elementwise.js';
import * as pool from '../src/shaders/pool.js';
import * as red from '../src/shaders/reduce.js';
import * as sgd from '../src/shaders/sgd.js';
import * as sm from '../src/shaders/softmax.js';
import { download, empty, upload } from '../test/helpers/buffers.js';
import { expectClose, randomArray } from '../test/helpers/compare.js';
import * as ref from '../test/reference/index.js';
import type { BenchCase, BenchEntry } from './harness.js';

const f = (a: ArrayLike<number>) => Float64Array.from(Float32Array.from(a));

/** Pooled buffers for one instance, released together. */
class Buffers {
  private list: GPUBuffer[] = [];
  constructor(private gpu: Gpu) {}
  upload(data: ArrayLike<number> | Int32Array): GPUBuffer {
    return this.track(upload(this.gpu, data, 'bench'));
  }
  empty(n: number): GPUBuffer {
    return this.track(empty(this.gpu, n, 'bench'));
  }
  read(b: GPUBuffer, n: number): Promise<Float32Array> {
    return download(this.gpu, b, n);
  }
  private track(b: GPUBuffer): GPUBuffer {
    this.list.push(b);
    return b;
  }
  release(): void {
    for (const b of this.list) this.gpu.pool.release(b);
    this.list = [];
  }
}

// ---- entries -----------------------------------------------------------------------------------------------
// Each case's validate() runs the kernel once itself, then compares with the reference.

function poolBench(N: number, C: number, H: number, W: number, variant: pool.PoolVariant, backward: boolean): BenchEntry {
  const sizes: pool.PoolSizes = { N, C, H, W, variant };
  return {
    name: `max_pool2d${backward ? '_grad' : ''}_${variant}`,
    shape: `${N}x${C}x${H}x${W} k2`,
    cost: (backward ? pool.MAX_POOL2D_BACKWARD : pool.MAX_POOL2D).cost(sizes),
    setup(gpu): BenchCase {
      const B = new Buffers(gpu);
      const n = N * C * H * W;
      const x = f(randomArray(n, 1));
      const expected = ref.maxPool2d(x, sizes);
      const m = expected.y.length;
      const dy = f(randomArray(m, 2));
      const xb = B.upload(x),
        yb = B.empty(m),
        ab = B.upload(expected.argmax),
        dyb = B.upload(dy),
        dxb = B.empty(n);
      const run = () => (backward ? pool.maxPool2dBackward(gpu, dyb, ab, dxb, sizes) : pool.maxPool2d(gpu, xb, yb, ab, sizes));
      return {
        run,
        async validate() {
          run();
          if (backward)
            expectClose(await B.read(dxb, n), ref.maxPool2dBackward(dy, expected.argmax, sizes), { label: 'max_pool2d dx', atol: 1e-6 });
          else expectClose(await B.read(yb, m), expected.y, { label: 'max_pool2d y', atol: 0, rtol: 0 });
        },
        dispose: () => B.release(),
      };
    },
  };
}

// With `dropout`, the dropout mask (p = 0.5) is folded in, as the seed's training step runs it; the check then
// compares against the reference with the mask applied (dropout's own reference, on the same element indices).
function batchNormBench(
  N: number,
  C: number,
  H: number,
  W: number,
  variant: bn.BatchNormVariant,
  backward: boolean,
  dropout = false,
): BenchEntry {
  const mask = dropout ? { p: 0.5, seed: 42, step: 3 } : undefined;
  const sizes = { N, C, H, W, variant, dropout: mask };
  return {
    name: `batch_norm_${backward ? 'grad' : 'train'}_${variant}${dropout ? ' +dropout' : ''}`,
    shape: `${N}x${C}x${H}x${W}`,
    cost: (backward ? bn.BATCH_NORM_BACKWARD : bn.BATCH_NORM_TRAIN).cost(sizes),
    setup(gpu): BenchCase {
      const B = new Buffers(gpu);
      const n = N * C * H * W;
      const x = f(randomArray(n, 3)),
        gamma = f(randomArray(C, 4, 0.5, 1.5)),
        beta = f(randomArray(C, 5)),
        dy = f(randomArray(n, 6));
      const expected = ref.batchNorm2dTrain(x, gamma, beta, sizes);
      const keep = mask && ref.dropoutMask(n, mask.p, mask.seed, mask.step);
      const wantY = keep ? ref.dropoutApply(expected.y, keep, mask.p) : expected.y;
      const dyIn = keep ? ref.dropoutBackward(dy, keep, mask.p) : dy; // the gradient batch norm sees
      const grads = ref.batchNorm2dBackward(x, gamma, dyIn, expected.mean, expected.invStd, sizes);
      const xb = B.upload(x),
        gb = B.upload(gamma),
        bb = B.upload(beta),
        yb = B.empty(n);
      const mean = B.upload(expected.mean),
        inv = B.upload(expected.invStd);
      const rm = B.upload(new Float32Array(C)),
        rv = B.upload(new Float32Array(C).fill(1));
      const dyb = B.upload(dy),
        dxb = B.empty(n),
        dg = B.empty(C),
        db = B.empty(C);
      // Training forward with the running-statistics update fused in, as a training step runs it.
      const run = () =>
        backward
          ? bn.batchNormBackward(gpu, xb, dyb, gb, mean, inv, dxb, dg, db, sizes)
          : bn.batchNormForwardTrain(gpu, xb, gb, bb, yb, mean, inv, sizes, { mean: rm, var: rv });
      return {
        run,
        async validate() {
          run();
          if (backward) {
            expectClose(await B.read(dxb, n), grads.dx, { label: 'batch norm dx', atol: 1e-4, rtol: 1e-4 });
            expectClose(await B.read(dg, C), grads.dgamma, { label: 'batch norm dgamma', atol: 1e-3, rtol: 1e-4 });
          } else expectClose(await B.read(yb, n), wantY, { label: 'batch norm y', atol: 1e-5, rtol: 1e-4 });
        },
        dispose: () => B.release(),
      };
    },
  };
}

function lossBench(rows: number, cols: number, variant: sm.SoftmaxVariant, fused: boolean): BenchEntry {
  return {
    name: fused ? `cross_entropy_${variant} +grad +correct` : `log_softmax + nll_loss_${variant}`,
    shape: `${rows}x${cols}`,
    cost: sm.lossCost({ rows, cols }),
    setup(gpu): BenchCase {
      const B = new Buffers(gpu);
      const x = f(randomArray(rows * cols, 7, -5, 5));
      const t = Int32Array.from(randomArray(rows, 8, 0, cols), Math.floor);
      const xb = B.upload(x),
        tb = B.upload(t),
        lp = B.empty(rows * cols),
        loss = B.empty(1),
        dl = B.empty(rows * cols),
        correct = B.empty(1);
      const s = { rows, cols, variant };
      const run = () => {
        if (fused) sm.logSoftmaxNllLoss(gpu, xb, tb, null, loss, s, { dlogits: dl, correct });
        else {
          sm.logSoftmax(gpu, xb, lp, s);
          sm.nllLoss(gpu, lp, tb, loss, s);
        }
      };
      return {
        run,
        async validate() {
          run();
          expectClose(await B.read(loss, 1), [ref.crossEntropyFromLogits(x, t, rows, cols)], { label: 'loss', atol: 1e-5, rtol: 1e-5 });
          if (fused)
            expectClose(await B.read(dl, rows * cols), ref.crossEntropyFromLogitsBackward(x, t, rows, cols), {
              label: 'dlogits',
              atol: 1e-6,
              rtol: 1e-4,
            });
        },
        dispose: () => B.release(),
      };
    },
  };
}

function sgdBench(n: number, variant: ew.ElementwiseVariant, momentum: number): BenchEntry {
  const opts = { lr: 0.01, weightDecay: 1e-4, momentum };
  return {
    name: `sgd${momentum ? '_momentum' : ''}_${variant}`,
    shape: `${n}`,
    cost: sgd.sgdCost({ n, momentum }),
    setup(gpu): BenchCase {
      const B = new Buffers(gpu);
      const p0 = f(randomArray(n, 9)),
        g = f(randomArray(n, 10));
      const pb = B.upload(p0),
        gb = B.upload(g),
        vb = momentum ? B.empty(n) : null;
      const run = () => sgd.sgdStep(gpu, pb, gb, vb, { n, ...opts, firstStep: true, variant });
      return {
        run,
        async validate() {
          run();
          expectClose(await B.read(pb, n), ref.sgdStep(p0, g, opts, null).param, { label: 'sgd param', atol: 1e-6, rtol: 1e-6 });
        },
        dispose: () => B.release(),
      };
    },
  };
}

function dropoutBench(n: number, variant: ew.ElementwiseVariant): BenchEntry {
  return {
    name: `dropout_${variant}`,
    shape: `${n} p=0.5`,
    cost: drop.dropoutCost({ n }),
    setup(gpu): BenchCase {
      const B = new Buffers(gpu);
      const x = f(randomArray(n, 11, 0.5, 1.5));
      const xb = B.upload(x),
        yb = B.empty(n);
      const run = () => drop.dropout(gpu, xb, yb, { n, p: 0.5, seed: 1, step: 2, variant });
      return {
        run,
        async validate() {
          run();
          const y = await B.read(yb, n);
          const mask = Uint8Array.from(y, (v) => (v !== 0 ? 1 : 0));
          expectClose(y, ref.dropoutApply(x, mask, 0.5), { label: 'dropout', atol: 0, rtol: 1e-6 });
          const kept = mask.reduce((a, b) => a + b, 0);
          if (Math.abs(kept - n / 2) > 5 * Math.sqrt(n / 4)) throw new Error(`dropout kept ${kept} of ${n}`);
        },
        dispose: () => B.release(),
      };
    },
  };
}

function axpyBench(n: number, variant: ew.ElementwiseVariant): BenchEntry {
  return {
    name: `axpy_${variant}`,
    shape: `${n}`,
    cost: ew.axpyCost({ n }),
    setup(gpu): BenchCase {
      const B = new Buffers(gpu);
      const x = f(randomArray(n, 12));
      const xb = B.upload(x),
        yb = B.empty(n);
      return {
        run: () => ew.axpy(gpu, xb, yb, { n, alpha: 0.5, variant }),
        async validate() {
          ew.fill(gpu, yb, { n, value: 1 });
          ew.axpy(gpu, xb, yb, { n, alpha: 0.5, variant });
          expectClose(
            await B.read(yb, n),
            x.map((v) => 1 + 0.5 * v),
            { label: 'axpy', atol: 1e-7, rtol: 1e-6 },
          );
        },
        dispose: () => B.release(),
      };
    },
  };
}

function sumBench(n: number, variant: red.ReduceVariant): BenchEntry {
  return {
    name: `reduce_sum_${variant}`,
    shape: `${n}`,
    cost: red.reduceCost({ n }),
    setup(gpu): BenchCase {
      const B = new Buffers(gpu);
      const x = f(randomArray(n, 13));
      const xb = B.upload(x),
        out = B.empty(1);
      const run = () => red.sum(gpu, xb, out, { n, variant });
      return {
        run,
        async validate() {
          run();
          expectClose(await B.read(out, 1), [ref.sum(x)], { label: 'sum', atol: 1e-6 * n, rtol: 0 });
        },
        dispose: () => B.release(),
      };
    },
  };
}

const each = <V extends string>(vs: readonly V[], make: (v: V) => BenchEntry) => vs.map(make);

/** The entries, at the seed's shapes for batch 64. */
export const entries: BenchEntry[] = [
  ...each(pool.MAX_POOL2D.names, (v) => poolBench(64, 10, 24, 24, v, false)),
  ...each(pool.MAX_POOL2D_BACKWARD.names, (v) => poolBench(64, 10, 24, 24, v, true)),
  ...each(pool.MAX_POOL2D.names, (v) => poolBench(64, 20, 8, 8, v, false)),
  ...each(pool.MAX_POOL2D_BACKWARD.names, (v) => poolBench(64, 20, 8, 8, v, true)),
  ...[false, true].flatMap((drop) => [
    ...each(bn.BATCH_NORM_TRAIN.names, (v) => batchNormBench(64, 10, 12, 12, v, false, drop)),
    ...each(bn.BATCH_NORM_BACKWARD.names, (v) => batchNormBench(64, 10, 12, 12, v, true, drop)),
    ...each(bn.BATCH_NORM_TRAIN.names, (v) => batchNormBench(64, 20, 4, 4, v, false, drop)),
    ...each(bn.BATCH_NORM_BACKWARD.names, (v) => batchNormBench(64, 20, 4, 4, v, true, drop)),
  ]),
  ...each(sm.CROSS_ENTROPY.names, (v) => lossBench(64, 10, v, true)),
  ...each(sm.NLL_LOSS.names, (v) => lossBench(64, 10, v, false)),
  ...each(sgd.SGD_STEP.names, (v) => sgdBench(16_000, v, 0)),
  ...each(sgd.SGD_MOMENTUM_STEP.names, (v) => sgdBench(16_000, v, 0.9)),
  ...each(drop.DROPOUT.names, (v) => dropoutBench(64 * 10 * 12 * 12, v)),
  ...each(ew.AXPY.names, (v) => axpyBench(64 * 10 * 12 * 12, v)),
  ...each(red.REDUCE_SUM.names, (v) => sumBench(64 * 10 * 12 * 12, v)),
];
