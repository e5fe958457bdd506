// The planning pass (prepareTraining) records the run's steps on a throwaway model: the run it prepares
// trains exactly as it would have without it, bit for bit, and it leaves no buffers behind.
import { describe, expect, it } from 'vitest';
import { loadEmbeddedDigits } from '../../src/data/dataset.js';
import { GpuDataset } from '../../src/data/gpu-data.js';
import { batchSizesOf, prepareTraining } from '../../src/train/prepare.js';
import { SEED_TRAINING, Trainer } from '../../src/train/trainer.js';
import { useGpu } from '../helpers/gpu.js';

const ctx = useGpu({ tensors: true });

describe('prepareTraining', () => {
  it('the batch sizes of an epoch: full batches and the shorter last one', () => {
    expect(batchSizesOf(200, 64)).toEqual([64, 8]);
    expect(batchSizesOf(128, 64)).toEqual([64]);
    expect(batchSizesOf(10, 64)).toEqual([10]);
  });

  it('changes nothing of the run it prepares', async () => {
    const { gpu } = ctx;
    const ds = loadEmbeddedDigits(200);
    const data = GpuDataset.upload(gpu, ds, 'prepare test');
    const train = { data, indices: Uint32Array.from({ length: 150 }, (_, i) => i) };
    const val = { data, indices: Uint32Array.from({ length: 50 }, (_, i) => 150 + i) };
    const options = { ...SEED_TRAINING, batchSize: 32 };
    const run = async (prepare: boolean) => {
      const trainer = new Trainer(gpu, options);
      if (prepare) {
        const bytes = gpu.pool.stats().bytesInUse;
        await prepareTraining(trainer, { train, val });
        expect(gpu.pool.stats().bytesInUse).toBe(bytes);
      }
      const losses = [await trainer.trainEpoch(train, 1), (await trainer.evaluate(val)).loss, await trainer.trainEpoch(train, 2)];
      const state = await trainer.stateArrays();
      for (const t of trainer.model.stateDict().values()) t.dispose();
      trainer.optimizer.zeroGrad();
      return { losses, state };
    };
    const plain = await run(false);
    const prepared = await run(true);
    expect(prepared.losses).toEqual(plain.losses);
    for (const [k, v] of Object.entries(plain.state)) expect(prepared.state[k].data, k).toEqual(v.data);
    data.dispose();
  });
});
