// Training versus evaluation mode behave as PyTorch's do, and early stopping restores the best weights.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadEmbeddedDigits } from '../src/data/dataset.js';
import { GpuDataset } from '../src/data/gpu-data.js';
import { splitTrainVal } from '../src/data/split.js';
import { BatchNorm2d, Dropout } from '../src/nn/modules.js';
import * as F from '../src/nn/ops.js';
import { noGrad } from '../src/nn/tensor.js';
import { loadModel, writeBestCheckpoint } from '../src/train/checkpoint.js';
import { confusionMatrix, correctCount } from '../src/train/metrics.js';
import { createMnistCnn } from '../src/train/model.js';
import { CHECKPOINT_FORMAT, type RunConfig } from '../src/train/saved-model.js';
import { SEED_TRAINING, Trainer } from '../src/train/trainer.js';
import { readSafetensors } from '../src/util/safetensors-file.js';
import { expectClose, randomArray } from './helpers/compare.js';
import { useGpu } from './helpers/gpu.js';
import * as ref from './reference/index.js';

const ctx = useGpu({ tensors: true });

describe('--bn-position', () => {
  it("'before' puts each batch norm right after its convolution: the same as composing the ops in that order by hand", async () => {
    const settings = { ...SEED_TRAINING, dropout: 0 };
    const before = createMnistCnn({ ...settings, bnPosition: 'before' });
    const after = createMnistCnn(settings);
    const x = F.tensor(Float32Array.from(randomArray(3 * 784, 9, 0, 1)), [3, 1, 28, 28]);
    const m = before;
    const bn = (h: Parameters<typeof F.relu>[0], b: BatchNorm2d) => F.batchNorm(h, null, null, b.weight, b.bias, { training: true });
    const manual = noGrad(() => {
      let h = F.relu(F.maxPool2d(bn(F.conv2d(x, m.conv1.weight, m.conv1.bias), m.bn1!)));
      h = F.relu(F.maxPool2d(bn(F.conv2d(h, m.conv2.weight, m.conv2.bias), m.bn2!)));
      return F.linear(F.relu(F.linear(h.reshape([3, 320]), m.fc1.weight, m.fc1.bias)), m.fc2.weight, m.fc2.bias);
    });
    const got = await noGrad(() => before.logits(x)).toArray();
    expectClose(got, await manual.toArray(), { label: 'bn before logits', atol: 1e-5, rtol: 1e-4 });
    // Same weights (same seed), another network: the position matters.
    const other = await noGrad(() => after.logits(x)).toArray();
    expect(Math.max(...Array.from(got, (v, i) => Math.abs(v - other[i])))).toBeGreaterThan(1e-3);
  });
});

describe('train() and eval() as in PyTorch', () => {
  it('Dropout: training zeroes about p of the values and scales the rest by 1/(1-p); evaluation is the identity', async () => {
    const n = 20000,
      p = 0.5;
    const data = randomArray(n, 1, 0.5, 1.5); // no zeros in the input, so a zero means "dropped"
    const x = F.tensor(Float32Array.from(data), [n]);
    const drop = new Dropout(p);
    const y = (await drop.forward(x).toArray()) as Float32Array;
    const kept = y.filter((v) => v !== 0).length;
    // Binomial(n, 1-p): 5 standard deviations is sqrt(n·p·(1-p))·5 ≈ 354 values.
    expect(Math.abs(kept - n * (1 - p))).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
    const mask = Array.from(y, (v) => (v !== 0 ? 1 : 0));
    expectClose(y, ref.dropoutApply(data, mask, p), { label: 'dropout train', atol: 1e-6, rtol: 1e-6 });
    drop.eval();
    expectClose(await drop.forward(x).toArray(), data, { label: 'dropout eval', atol: 0, rtol: 1e-7 });
  });

  it('BatchNorm2d: training normalises with batch statistics and updates running stats (momentum 0.1, unbiased var); evaluation uses them and changes nothing', async () => {
    const s = { N: 4, C: 3, H: 5, W: 6 };
    const data = randomArray(s.N * s.C * s.H * s.W, 2, -2, 3);
    const x = F.tensor(Float32Array.from(data), [s.N, s.C, s.H, s.W]);
    const bn = new BatchNorm2d(s.C);
    const gamma = new Float64Array(s.C).fill(1),
      beta = new Float64Array(s.C);
    const train = ref.batchNorm2dTrain(data, gamma, beta, s);
    expectClose(await noGrad(() => bn.forward(x)).toArray(), train.y, { label: 'bn train forward', atol: 1e-5, rtol: 1e-4 });
    const running = ref.updateRunningStats(
      new Float64Array(s.C),
      new Float64Array(s.C).fill(1),
      train.mean,
      train.varBiased,
      s.N * s.H * s.W,
      0.1,
      true,
    );
    expectClose(await bn.runningMean.toArray(), running.runningMean, { label: 'running_mean', atol: 1e-6, rtol: 1e-5 });
    expectClose(await bn.runningVar.toArray(), running.runningVar, { label: 'running_var', atol: 1e-6, rtol: 1e-5 });

    const meanBeforeEval = Array.from(await bn.runningMean.toArray());
    bn.eval();
    const evalY = await noGrad(() => bn.forward(x)).toArray();
    expectClose(evalY, ref.batchNorm2dEval(data, gamma, beta, running.runningMean, running.runningVar, s), {
      label: 'bn eval forward',
      atol: 1e-5,
      rtol: 1e-4,
    });
    expect(Array.from(await bn.runningMean.toArray()), 'running_mean unchanged by eval').toEqual(meanBeforeEval);
  });

  it("the seed's biased running-variance update is available", async () => {
    const s = { N: 2, C: 2, H: 3, W: 3 };
    const data = randomArray(s.N * s.C * s.H * s.W, 3);
    const bn = new BatchNorm2d(s.C, { unbiasedRunningVar: false });
    noGrad(() => bn.forward(F.tensor(Float32Array.from(data), [s.N, s.C, s.H, s.W])));
    const train = ref.batchNorm2dTrain(data, new Float64Array(s.C).fill(1), new Float64Array(s.C), s);
    const running = ref.updateRunningStats(
      new Float64Array(s.C),
      new Float64Array(s.C).fill(1),
      train.mean,
      train.varBiased,
      18,
      0.1,
      false,
    );
    expectClose(await bn.runningVar.toArray(), running.runningVar, { label: 'biased running_var', atol: 1e-6, rtol: 1e-5 });
  });
});

describe('training loop', () => {
  const options = { ...SEED_TRAINING, epochs: 2 };

  it('restoreBest() brings back the snapshotted weights and statistics, not the last ones', async () => {
    const ds = loadEmbeddedDigits(640);
    const split = splitTrainVal(ds.count, 0.2, 1);
    const data = GpuDataset.upload(ctx.gpu, ds, 'train');
    const trainer = new Trainer(ctx.gpu, options);
    await trainer.trainEpoch({ data, indices: split.train }, 1);
    trainer.snapshotBest();
    const best = await trainer.stateArrays();
    await trainer.trainEpoch({ data, indices: split.train }, 2);
    const last = await trainer.stateArrays();
    expect(Array.from(last['fc1.weight'].data)).not.toEqual(Array.from(best['fc1.weight'].data));
    expect(Array.from(last['bn1.running_mean'].data)).not.toEqual(Array.from(best['bn1.running_mean'].data));
    expect(trainer.restoreBest()).toBe(true);
    const restored = await trainer.stateArrays();
    for (const key of Object.keys(best)) expect(Array.from(restored[key].data), key).toEqual(Array.from(best[key].data));
    data.dispose();
  });

  it('a best checkpoint loads back as the same model in evaluation mode, whose confusion matrix agrees with evaluate()', async () => {
    const ds = loadEmbeddedDigits(320);
    const split = splitTrainVal(ds.count, 0.2, 3);
    const data = GpuDataset.upload(ctx.gpu, ds, 'train');
    const norm = { mean: 0.13, std: 0.31 };
    const config: RunConfig = { ...options, data: null, valSplit: 0.2, limit: 320, normalize: true, norm };
    const trainer = new Trainer(ctx.gpu, config, norm);
    await trainer.trainEpoch({ data, indices: split.train }, 1);
    const state = await trainer.stateArrays();
    const dir = mkdtempSync(join(tmpdir(), 'checkpoint-'));
    try {
      writeBestCheckpoint(dir, state, config, {
        epoch: 1,
        trainLoss: 1,
        valLoss: 2,
        valAcc: 0.5,
        epochSeconds: 1,
        trainSeconds: 1,
        samplesPerSecond: 1,
      });
      expect(readSafetensors(join(dir, 'best.safetensors')).metadata).toMatchObject({
        format: CHECKPOINT_FORMAT,
        epoch: '1',
        valLoss: '2',
      });
      const loaded = loadModel(dir);
      expect(loaded.config).toEqual(config);
      expect(loaded.norm).toEqual(norm);
      expect(loaded.model.training).toBe(false);
      for (const [key, t] of loaded.model.stateDict())
        expect(Array.from((await t.toArray()) as Float32Array), key).toEqual(Array.from(state[key].data));
      const confusion = await confusionMatrix(loaded.model, data, split.val, { batchSize: 23, norm });
      expect(confusion.flat().reduce((a, b) => a + b, 0)).toBe(split.val.length);
      const { accuracy } = await trainer.evaluate({ data, indices: split.val });
      expect(correctCount(confusion) / split.val.length).toBe(accuracy);
    } finally {
      rmSync(dir, { recursive: true, force: true });
      data.dispose();
    }
  });

  it('equal seeds give equal runs', async () => {
    const ds = loadEmbeddedDigits(320);
    const split = splitTrainVal(ds.count, 0.2, 7);
    const data = GpuDataset.upload(ctx.gpu, ds, 'train');
    const losses: number[] = [];
    for (let run = 0; run < 2; run++) losses.push(await new Trainer(ctx.gpu, options).trainEpoch({ data, indices: split.train }, 1));
    expect(losses[0]).toBe(losses[1]);
    data.dispose();
  });
});
