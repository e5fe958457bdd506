// Silent wrong answers in the library, and misuse that used to end in untyped errors: bad class targets and
// sample indices caught on the device, NaN and infinity handled as PyTorch does, checkpoints that would load
// and predict nonsense, layers without their options, shapes and data of the wrong kind, kernel-library
// buffers too small for their sizes, and metrics that cannot be (bugs of ours, reported as such).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { report } from '../../src/commands/report.js';
import type { Dataset } from '../../src/data/dataset.js';
import { GpuDataset } from '../../src/data/gpu-data.js';
import { DataError, FileFormatError, InternalError, ShapeError, StateError, UsageError } from '../../src/errors.js';
import { manualSeed } from '../../src/nn/init.js';
import * as nn from '../../src/nn/modules.js';
import * as F from '../../src/nn/ops.js';
import { Tensor } from '../../src/nn/tensor.js';
import { batchNormForwardEval } from '../../src/shaders/batch-norm/index.js';
import { conv2d } from '../../src/shaders/conv2d/index.js';
import { dropout } from '../../src/shaders/dropout.js';
import { relu, reluBackward } from '../../src/shaders/elementwise.js';
import { gatherImages } from '../../src/shaders/gather.js';
import { matmul } from '../../src/shaders/matmul/index.js';
import { MAX_POOL2D, maxPool2d } from '../../src/shaders/pool.js';
import { sgdStepMany } from '../../src/shaders/sgd.js';
import { logSoftmaxNllLossBackward, nllLoss, nllLossBackward } from '../../src/shaders/softmax.js';
import { readModelCheckpoint, readResumeState, writeLastCheckpoint } from '../../src/train/checkpoint.js';
import { checkCorrect, checkLoss, checkProbabilities } from '../../src/train/metrics.js';
import { createMnistCnn } from '../../src/train/model.js';
import { CHECKPOINT_FORMAT, type RunConfig } from '../../src/train/saved-model.js';
import { SEED_TRAINING, Trainer } from '../../src/train/trainer.js';
import type { TensorMap } from '../../src/util/safetensors.js';
import { writeSafetensors } from '../../src/util/safetensors-file.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { exactBuffer } from '../helpers/exact-buffer.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import { checkPoolKernels } from '../helpers/pool.js';
import { runnableVariants } from '../helpers/variants.js';
import * as ref from '../reference/index.js';

const ctx = useGpu({ tensors: true });
const tmp = mkdtempSync(join(tmpdir(), 'webgpu-nn-library-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const i32 = (v: number[]) => F.tensor(v, [v.length], { dtype: 'int32' });

describe('device-side checks: class targets and sample indices', () => {
  it('nllLoss and crossEntropy: a target outside 0..C−1 is a DataError at the next read naming op, row, target and range', async () => {
    const x = F.tensor(randomArray(12, 1), [4, 3]);
    await expect(F.nllLoss(F.logSoftmax(x, 1), i32([0, 2, 7, 1])).item()).rejects.toThrow(
      /^nllLoss: target 7 at row 2 is not a class index in 0\.\.2 \(3 classes\)/,
    );
    await expect(F.crossEntropy(x, i32([0, -1, 1, 1])).item()).rejects.toThrow(DataError);
    // Reported once; the Gpu goes on working, and a valid loss reads back equal to the reference.
    const t = [0, 2, 1, 1];
    const got = await F.crossEntropy(x, i32(t)).item();
    const logp = ref.logSoftmax(Float64Array.from(await x.toArray()), 4, 3);
    expect(got).toBeCloseTo(-(logp[0] + logp[5] + logp[7] + logp[10]) / 4, 5);
    // The backward kernels check too, for callers of the kernel library that run them alone.
    const { gpu } = ctx;
    const tb = exactBuffer(gpu, Int32Array.from([0, 3])),
      dx = empty(gpu, 6),
      lp = upload(gpu, new Float32Array(6));
    nllLossBackward(gpu, tb, null, dx, { rows: 2, cols: 3 });
    await expect(gpu.sync()).rejects.toThrow(/^nllLossBackward: target 3 at row 1 is not a class index in 0\.\.2/);
    logSoftmaxNllLossBackward(gpu, lp, tb, null, dx, { rows: 2, cols: 3, op: 'myLoss' });
    await expect(gpu.sync()).rejects.toThrow(/^myLoss: target 3 at row 1/);
    tb.destroy();
    gpu.pool.release(dx);
    gpu.pool.release(lp);
  });

  it('a training epoch on labels outside the classes fails at its one readback, naming crossEntropy', async () => {
    const count = 96;
    const labels = Uint8Array.from({ length: count }, (_, i) => (i === 50 ? 12 : i % 10));
    const ds: Dataset = { images: new Uint8Array(count * 784).fill(3), labels, count, rows: 28, cols: 28 };
    const data = GpuDataset.upload(ctx.gpu, ds, 'bad labels');
    const trainer = new Trainer(ctx.gpu, { ...SEED_TRAINING, batchSize: 16 });
    const reads = ctx.gpu.counters.reads;
    await expect(trainer.trainEpoch({ data, indices: Uint32Array.from({ length: count }, (_, i) => i) }, 1)).rejects.toThrow(
      /^crossEntropy: target 12 at row \d+ is not a class index in 0\.\.9/,
    );
    // Six steps, and the fault still costs no readback of its own: the epoch's loss readback brought it.
    expect(ctx.gpu.counters.reads - reads).toBe(1);
    data.dispose();
  });

  it('a sample index past the data gathers zeros and is a DataError naming it', async () => {
    const ds: Dataset = { images: new Uint8Array(3 * 784).fill(255), labels: Uint8Array.from([1, 2, 3]), count: 3, rows: 28, cols: 28 };
    const data = GpuDataset.upload(ctx.gpu, ds, 'three');
    const idx = data.indexList(Uint32Array.from([0, 5]));
    const { x } = data.batch(idx, 0, 2, { mean: 0, std: 1 });
    await expect(x.toArray()).rejects.toThrow(/^gatherBatch: sample index 5 at position 1 of the index list is past the 3 samples/);
    data.dispose();
  });
});

describe('NaN and infinity as PyTorch handles them', () => {
  const special = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -0.5, 0.5, -2, 3];

  it('relu keeps NaN and lets the gradient through it (threshold_backward), against the reference', async () => {
    const { gpu } = ctx;
    const x = Float64Array.from({ length: 40 }, (_, i) => special[i % special.length]);
    const dy = randomArray(40, 3, 0.5, 1.5);
    const xb = upload(gpu, x),
      dyb = upload(gpu, dy),
      yb = empty(gpu, 40),
      dxb = empty(gpu, 40);
    relu(gpu, xb, yb, 40);
    reluBackward(gpu, xb, dyb, dxb, 40);
    expectClose(await download(gpu, yb, 40), ref.relu(x), { label: 'relu', atol: 0, rtol: 0 });
    expectClose(await download(gpu, dxb, 40), ref.reluBackward(x, Float64Array.from(Float32Array.from(dy))), {
      label: 'relu backward',
      atol: 0,
      rtol: 0,
    });
    for (const b of [xb, dyb, yb, dxb]) gpu.pool.release(b);
  });

  for (const s of [
    { N: 2, C: 2, H: 8, W: 8, kernel: 2, stride: 2 }, // v1 and v2
    { N: 1, C: 2, H: 7, W: 7, kernel: 3, stride: 2 }, // overlapping windows, v1
  ]) {
    it(`max pooling takes a NaN anywhere in its window, fused with relu or not, every variant: ${s.H}x${s.W} k${s.kernel} s${s.stride}`, async () => {
      const { gpu } = ctx;
      const n = s.N * s.C * s.H * s.W;
      const x = randomArray(n, 5, -1, 0.5);
      for (let i = 3; i < n; i += 7) x[i] = Number.NaN; // not always the window's first element
      x[10] = Number.POSITIVE_INFINITY;
      const pooled = ref.maxPool2d(x, s);
      const m = pooled.y.length;
      const dy = randomArray(m, 9, 0.5, 1.5);
      for (const variant of runnableVariants(gpu, MAX_POOL2D, s)) {
        for (const fused of [false, true]) {
          const { argmax } = await checkPoolKernels(gpu, s, variant, x, dy, fused);
          pooled.y.forEach((v, i) => {
            if (Number.isNaN(v)) expect(argmax[i], `${variant} argmax of a NaN window`).toBe(pooled.argmax[i]);
          });
        }
      }
      // The autograd ops: fused and unfused agree, NaN for NaN, in value and gradient.
      const outs: Float32Array[] = [];
      const grads: Float32Array[] = [];
      for (const fused of [true, false]) {
        const xt = F.tensor(Float32Array.from(x), [s.N, s.C, s.H, s.W], { requiresGrad: true });
        const y = fused ? F.maxPool2dRelu(xt, s.kernel, s.stride) : F.relu(F.maxPool2d(xt, s.kernel, s.stride));
        y.backward(F.tensor(Float32Array.from(dy), y.shape));
        outs.push((await y.toArray()) as Float32Array);
        grads.push((await xt.grad!.toArray()) as Float32Array);
      }
      expectClose(outs[0], outs[1], { label: 'fused vs unfused value', atol: 0, rtol: 0 });
      expectClose(grads[0], grads[1], { label: 'fused vs unfused gradient', atol: 0, rtol: 0 });
      expect(outs[0].some(Number.isNaN)).toBe(true);
    });
  }

  it('dropout gives NaN for a dropped NaN or infinity (x·0) and keeps finite values exact', async () => {
    const { gpu } = ctx;
    const n = 64,
      p = 0.5;
    const probe = upload(gpu, new Float32Array(n).fill(1)),
      out = empty(gpu, n);
    dropout(gpu, probe, out, { n, p, seed: 11, step: 4 });
    const mask = Uint8Array.from(await download(gpu, out, n), (v) => (v !== 0 ? 1 : 0));
    expect(mask.includes(0) && mask.includes(1)).toBe(true);
    const x = Float64Array.from({ length: n }, (_, i) => special[i % special.length]);
    const xb = upload(gpu, x);
    dropout(gpu, xb, out, { n, p, seed: 11, step: 4 });
    expectClose(await download(gpu, out, n), ref.dropoutApply(x, mask, p), { label: 'dropout of NaN/inf', atol: 0, rtol: 0 });
    for (const b of [probe, out, xb]) gpu.pool.release(b);
  });
});

describe('misuse is a typed error naming the op and the value', () => {
  it('layers need no options object, as in PyTorch: they draw from a process-wide generator that manualSeed reseeds', async () => {
    const weights = async (m: nn.Linear) => Array.from((await m.weight.toArray()) as Float32Array);
    manualSeed(7);
    const a = new nn.Linear(4, 3);
    manualSeed(7);
    const b = new nn.Linear(4, 3);
    const c = new nn.Linear(4, 3);
    expect(await weights(a)).toEqual(await weights(b));
    expect(await weights(c)).not.toEqual(await weights(a));
    for (const w of await weights(a)) expect(Math.abs(w)).toBeLessThanOrEqual(0.5); // U(±1/√in_features)
    expect(new nn.Conv2d(1, 2, 3).forward(F.zeros([1, 1, 5, 5])).shape).toEqual([1, 2, 3, 3]);
    // Two dropout layers made without a seed draw different masks (they used to share one).
    const x = F.ones([256]);
    const [m1, m2] = [new nn.Dropout(0.5), new nn.Dropout(0.5)].map((d) => d.forward(x));
    expect(Array.from((await m1.toArray()) as Float32Array)).not.toEqual(Array.from((await m2.toArray()) as Float32Array));
  });

  it('shapes, dtypes, data and arguments of the wrong kind', () => {
    const disposed = F.tensor([1, 2], [2]);
    disposed.dispose();
    const int = i32([1, 2]);
    const x4 = F.zeros([1, 1, 5, 5]);
    const cases: [() => unknown, new (...a: never[]) => Error, RegExp][] = [
      [() => disposed.reshape([2]), StateError, /^reshape: tensor \[2\] was disposed/],
      [() => F.zeros([0]).reshape([-1, 0]), ShapeError, /-1 is ambiguous when the other sizes multiply to 0/],
      [() => F.zeros([2]).reshape([-1, -1]), ShapeError, /only one size may be -1/],
      [() => F.zeros([2]).reshape([-2, -1]), ShapeError, /sizes must be non-negative integers/],
      [() => F.zeros([-1]), ShapeError, /bad shape \[-1\]/],
      [() => F.tensor(['a', 'b'] as unknown as number[]), DataError, /^tensor\(\): element 0 is "a", not a number/],
      [() => F.tensor([1, null] as unknown as number[]), DataError, /element 1 is null/],
      [() => F.tensor('abc' as unknown as number[]), DataError, /data must be an array or a typed array of numbers, got "abc"/],
      [() => F.tensor([1.5], [1], { dtype: 'int32' }), DataError, /element 0 is 1\.5, not an int32/],
      [() => F.tensor([2 ** 40], [1], { dtype: 'int32' }), DataError, /not an int32/],
      [() => F.tensor([1], [1], { dtype: 'float64' as 'float32' }), DataError, /dtype "float64" is not supported; use float32 or int32/],
      [() => Tensor.empty([2], { dtype: 'uint8' as 'int32' }), DataError, /dtype "uint8" is not supported/],
      [() => F.tensor([1], [1], { dtype: 'int32', requiresGrad: true }), DataError, /only float32 tensors can require gradients/],
      [() => F.conv2d(x4, F.zeros([1, 1, 3, 3]), null, { stride: 0 }), ShapeError, /^conv2d: stride must be a positive integer, got 0/],
      [() => F.conv2d(x4, F.zeros([1, 1, 3, 3]), null, { padding: -1 }), ShapeError, /^conv2d: padding must be a non-negative integer/],
      [() => F.conv2d('x' as unknown as Tensor, F.zeros([1, 1, 3, 3])), DataError, /^conv2d: input must be a Tensor, got "x"/],
      [
        () => F.conv2dMaxPool2dRelu(x4, [1] as unknown as Tensor),
        DataError,
        /^conv2dMaxPool2dRelu: weight must be a Tensor, got an array of 1/,
      ],
      [() => F.conv2dMaxPool2dRelu(x4, F.zeros([1, 1, 3, 3]), null, { stride: 0 }), ShapeError, /^conv2dMaxPool2dRelu: stride must be/],
      [() => F.maxPool2d(x4, 0), ShapeError, /^maxPool2d: kernel size must be a positive integer, got 0/],
      [() => F.maxPool2dRelu(x4, 2, 0), ShapeError, /^maxPool2dRelu: stride must be a positive integer, got 0/],
      [() => F.sum(int), DataError, /^sum: input must be float32, got int32/],
      [() => F.mulScalar(int, 2), DataError, /^mulScalar: input must be float32/],
      [() => F.relu([1, 2] as unknown as Tensor), DataError, /^relu: input must be a Tensor, got an array of 2/],
      [() => F.nllLoss(F.zeros([2, 3]), [0, 1] as unknown as Tensor), DataError, /^nllLoss: target must be a Tensor/],
      [
        () => F.batchNorm(F.zeros([2, 1, 2, 2]), null, null, F.ones([1]), F.zeros([1]), { training: true, eps: -1 }),
        DataError,
        /eps must be/,
      ],
      [() => F.dropout(F.ones([4]), 0.5, true, { seed: 2 ** 33 }), DataError, /must be below 2\^32/],
      [() => new nn.Linear(-1, 2), ShapeError, /^nn\.Linear: in_features must be a positive integer, got -1/],
      [() => new nn.Linear(2.5, 2), ShapeError, /in_features must be a positive integer, got 2\.5/],
      [() => new nn.Conv2d(1, 2, 3, { stride: 0 }), ShapeError, /^nn\.Conv2d: stride must be a positive integer, got 0/],
      [() => new nn.Conv2d(1, 2, 3, { init: 'he' as 'pytorch' }), DataError, /^nn\.Conv2d: init "he" is not one of/],
      [() => new nn.BatchNorm2d(0), ShapeError, /^nn\.BatchNorm2d: num_features must be a positive integer, got 0/],
      [() => new nn.MaxPool2d(0), ShapeError, /^nn\.MaxPool2d: kernel_size must be a positive integer/],
      [() => new nn.Dropout(1.5), DataError, /^nn\.Dropout: p must be a finite number in \[0, 1\], got 1\.5/],
      [() => manualSeed(-1), DataError, /^manualSeed: seed must be an integer from 0 to 2\^32/],
    ];
    for (const [fn, type, message] of cases) {
      let err: unknown;
      try {
        fn();
      } catch (e) {
        err = e;
      }
      expect(err, String(message)).toBeInstanceOf(type);
      expect((err as Error).message).toMatch(message);
    }
    const y = F.sum(F.tensor([1, 2], [2], { requiresGrad: true }));
    y.dispose();
    expect(() => y.backward()).toThrow(/^backward\(\): tensor \[\] was disposed/);
  });

  it('kernel-library functions refuse buffers smaller than their sizes need, naming the op and the buffer', () => {
    const { gpu } = ctx;
    const small = exactBuffer(gpu, new Float32Array(4)),
      big = exactBuffer(gpu, new Float32Array(4096));
    const cases: [() => void, RegExp][] = [
      [
        () => matmul(gpu, small, big, big, { M: 4, N: 4, K: 4 }),
        /^matmul: buffer a \("exact test buffer"\) holds 4 elements of 4 bytes, but the sizes given need 16/,
      ],
      [() => relu(gpu, big, small, 100), /^relu: buffer y .* need 100/],
      [() => reluBackward(gpu, big, big, small, 100), /^reluBackward: buffer dx/],
      [() => conv2d(gpu, big, small, null, big, { N: 1, C: 1, H: 8, W: 8, O: 2, KH: 3, KW: 3 }), /^conv2d\.forward: buffer w .* need 18/],
      [() => nllLoss(gpu, big, small, big, { rows: 10, cols: 3 }), /^nll_loss: buffer target .* need 10/],
      [() => maxPool2d(gpu, big, small, null, { N: 1, C: 1, H: 8, W: 8 }), /^max_pool2d: buffer y .* need 16/],
      [() => gatherImages(gpu, big, small, big, { batch: 8, offset: 0, pixels: 4 }), /^gatherImages: buffer idx .* need 8/],
      [
        () =>
          sgdStepMany(
            gpu,
            [
              { param: big, grad: small, velocity: null, n: 10 },
              { param: big, grad: big, velocity: null, n: 10 },
            ],
            { lr: 0.1 },
          ),
        /^sgdStepMany: buffer grad of tensor 0 .* need 10/,
      ],
      [
        () => batchNormForwardEval(gpu, big, small, big, big, big, big, { N: 1, C: 8, H: 2, W: 2 }),
        /^batch_norm_eval: buffer gamma .* need 8/,
      ],
    ];
    for (const [fn, message] of cases) {
      expect(fn, String(message)).toThrow(ShapeError);
      expect(fn).toThrow(message);
    }
    small.destroy();
    big.destroy();
  });

  it("modules' extra state (dropout's step counter) round-trips, so a restored model draws the same masks", async () => {
    const make = () => new nn.Sequential(new nn.Dropout(0.5, 1), new nn.Linear(8, 8, { rng: () => 0.5 }), new nn.Dropout(0.5, 2));
    const a = make();
    const x = F.ones([4, 8]);
    for (let i = 0; i < 3; i++) a.forward(x);
    expect(a.namedExtraStates()).toEqual({ '0': { step: 3 }, '2': { step: 3 } });
    const b = make();
    b.loadNamedExtraStates(a.namedExtraStates());
    expect(Array.from((await b.forward(x).toArray()) as Float32Array)).toEqual(Array.from((await a.forward(x).toArray()) as Float32Array));
    expect(() => b.loadNamedExtraStates({ '0': { step: 1 } })).toThrow(/^loadNamedExtraStates: missing 2/);
  });
});

describe('checkpoints that would load silently and then predict nonsense are refused', () => {
  const config: RunConfig = { ...SEED_TRAINING, data: null, valSplit: 0.2, limit: 320, normalize: true, norm: { mean: 0.13, std: 0.31 } };
  const stateOf = async (): Promise<TensorMap> => {
    const model = createMnistCnn(config);
    const out: TensorMap = {};
    for (const [k, t] of model.stateDict()) out[k] = { shape: [...t.shape], data: (await t.toArray()) as Float32Array };
    return out;
  };
  const save = (name: string, tensors: TensorMap, cfg: unknown = config) => {
    const file = join(tmp, name);
    writeSafetensors(file, tensors, { format: CHECKPOINT_FORMAT, config: JSON.stringify(cfg) });
    return file;
  };
  const fileError = (fn: () => unknown, message: RegExp) => {
    expect(fn).toThrow(FileFormatError);
    expect(fn).toThrow(message);
  };

  it('NaN or infinite values, a negative running variance, a std that is not positive, incomplete settings', async () => {
    const good = await stateOf();
    expect(readModelCheckpoint(save('good.safetensors', good)).config).toEqual(config);
    const poisoned = (key: string, i: number, v: number) => {
      const copy = { ...good, [key]: { shape: good[key].shape, data: Float32Array.from(good[key].data) } };
      copy[key].data[i] = v;
      return copy;
    };
    fileError(
      () => readModelCheckpoint(save('nan.safetensors', poisoned('conv1.weight', 7, Number.NaN))),
      /tensor "conv1\.weight" holds NaN at index 7/,
    );
    fileError(
      () => readModelCheckpoint(save('inf.safetensors', poisoned('fc2.bias', 3, -Infinity))),
      /tensor "fc2\.bias" holds -Infinity at index 3/,
    );
    fileError(
      () => readModelCheckpoint(save('var.safetensors', poisoned('bn2.running_var', 1, -0.5))),
      /"bn2\.running_var" holds the negative variance -0\.5/,
    );
    fileError(
      () => readModelCheckpoint(save('std.safetensors', good, { ...config, norm: { mean: 0.1, std: 0 } })),
      /incomplete or damaged \(norm is/,
    );
    const { lr: _, ...noLr } = config;
    fileError(
      () => readModelCheckpoint(save('nolr.safetensors', good, noLr)),
      /the stored run settings are incomplete or damaged \(lr is missing\)/,
    );
    fileError(() => readModelCheckpoint(save('badinit.safetensors', good, { ...config, init: 'he' })), /init is "he"/);
    const dir = join(tmp, 'resume');
    rmSync(dir, { recursive: true, force: true });
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    const stopping = { patience: 20, minDelta: 0, mode: 'min' as const, bestValue: 1, bestEpoch: 1, counter: 0, epoch: 1 };
    const history = [{ epoch: 1, trainLoss: 1, valLoss: 1, valAcc: 0.5, epochSeconds: 1, trainSeconds: 1, samplesPerSecond: 1 }];
    const velocity = { 'velocity.0': { shape: [4], data: Float32Array.from([0, Number.NaN, 0, 0]) } };
    writeLastCheckpoint(dir, { last: good, best: good, optimizer: velocity, extra: {}, stopping, history }, config);
    fileError(() => readResumeState(dir), /tensor "optimizer\.velocity\.0" holds NaN at index 1/);
    writeLastCheckpoint(dir, { last: good, best: good, optimizer: {}, extra: {}, stopping: { ...stopping, epoch: 3 }, history }, config);
    fileError(() => readResumeState(dir), /history and early-stopping state do not agree/);
  });
});

describe('metrics outside their range are bugs of ours, never numbers to print', () => {
  it('impossible losses, counts and probabilities are InternalErrors asking for a report', () => {
    const bug = (fn: () => void, message: RegExp) => {
      expect(fn).toThrow(InternalError);
      expect(fn).toThrow(message);
      expect(fn).toThrow(/This is a bug in webgpu-nn, not a fault of yours: please report it/);
    };
    bug(() => checkLoss('the evaluation loss', -0.5), /the evaluation loss is -0\.5, below zero/);
    bug(() => checkCorrect('evaluation', 2_000_000_000, 2000), /evaluation counts 2000000000 correct predictions among 2000 samples/);
    bug(() => checkCorrect('the confusion matrix', 1999, 2000, true), /counts 1999 samples among 2000/);
    bug(() => checkProbabilities('a.png', [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]), /a\.png are \[1\.00, 1\.00, 0\.00/);
    // Rounding and a diverging run (NaN, reported as such by the trainer) are not bugs.
    for (const ok of [() => checkLoss('x', -1e-7), () => checkLoss('x', Number.NaN), () => checkCorrect('x', 2000, 2000)])
      expect(ok).not.toThrow();
  });

  it("the command's report: one line for the user's or the machine's fault, a stack and a request for a bug", () => {
    const printed: string[] = [];
    const print = vi.fn((t: string) => printed.push(t));
    expect(report(new UsageError('--lr: expected a number'), print)).toBe(2);
    expect(report(new DataError('nllLoss: target 7 at row 2'), print)).toBe(1);
    const disk = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', path: '/x/y' });
    expect(report(disk, print)).toBe(1);
    expect(printed).toEqual([
      'webgpu-nn: --lr: expected a number',
      'webgpu-nn: nllLoss: target 7 at row 2',
      'webgpu-nn: /x/y: no space left on the device (ENOSPC) (in write)',
    ]);
    printed.length = 0;
    expect(report(new InternalError('evaluation counts 11 correct predictions among 10 samples'), print)).toBe(1);
    expect(printed.join('\n')).toMatch(/^webgpu-nn: evaluation counts 11 .* please report it[\s\S]*\n\s+at /);
    printed.length = 0;
    expect(report(new TypeError("Cannot read properties of undefined (reading 'x')"), print)).toBe(1);
    expect(printed.join('\n')).toMatch(/^TypeError: Cannot read[\s\S]*\n\s+at [\s\S]*please report it/);
  });
});
