// Before the first step of a run: the planning pass. It records the steps the run will make — a training
// step and an evaluation batch at each batch size the epochs use — on a throwaway copy of the model, so
// nothing of the real run changes (weights, batch-norm statistics, dropout counters, optimizer state). A dry
// recording of it first tells which kernels the run uses, and they are compiled at once, in parallel where the
// driver allows (src/gpu/precompile.ts); then, with a tuner attached (src/tune/), the pass is where the tuner
// collects the op calls it has no measured choice for and times their candidates.

import { type PrecompileReport, precompile } from '../gpu/precompile.js';
import * as F from '../nn/ops.js';
import { noGrad, type Tensor, tidy } from '../nn/tensor.js';
import { tunerOf } from '../tune/cache.js';
import type { TuneReport } from '../tune/tuner.js';
import { type Split, Trainer } from './trainer.js';

export interface PrepareReport {
  /** The kernels compiled before the planning pass (src/gpu/precompile.ts). */
  compiled: PrecompileReport;
  /** What the tuner measured (empty without a tuner, or when everything was tuned already). */
  tuned: TuneReport[];
  /** Seconds the planning pass took, tuning included. */
  seconds: number;
  /** Seconds of it spent tuning. */
  tuneSeconds: number;
}

/** The batch sizes an epoch over n samples uses: full batches and the last, shorter one. */
export const batchSizesOf = (n: number, batch: number): number[] => [...new Set([Math.min(n, batch), n % batch].filter((b) => b > 0))];

/**
 * Records (and runs) the steps `trainer`'s run will make on a throwaway model with the same settings:
 * compiles their kernels and tunes what the tuner attached to its Gpu has not measured yet.
 */
export async function prepareTraining(
  trainer: Trainer,
  splits: { train: Split; val?: Split },
  opts: { log?: (line: string) => void; retune?: boolean } = {},
): Promise<PrepareReport> {
  const t0 = performance.now();
  const { gpu, options } = trainer;
  const scratch = new Trainer(gpu, options, trainer.norm);
  const data = splits.train.data;
  const first = splits.train.indices.subarray(0, Math.min(splits.train.indices.length, options.batchSize));
  const idx = data.indexList(first).keep();
  const sums = F.zeros([1], { label: 'planning loss sum' }).keep();
  const correct = F.zeros([1], { label: 'planning correct count' }).keep();
  const trainSizes = batchSizesOf(splits.train.indices.length, options.batchSize);
  const evalSizes = splits.val ? batchSizesOf(splits.val.indices.length, options.batchSize) : [];
  // One part per batch size, weighed by how many batches of that size an epoch has (for the tuner's shares).
  const count = (n: number, b: number) => (b === options.batchSize ? Math.floor(n / b) : 1);
  const parts = [
    ...trainSizes.map((b) => ({
      weight: count(splits.train.indices.length, b),
      record: () => {
        scratch.model.train();
        tidy(() => scratch.trainStep(...batchOf(b)));
      },
    })),
    ...evalSizes.map((b) => ({
      weight: count(splits.val!.indices.length, b),
      record: () => {
        scratch.model.eval();
        noGrad(() => tidy(() => scratch.evalStep(...batchOf(b), correct)));
      },
    })),
  ];
  const record = () => {
    for (const p of parts) p.record();
  };
  const batchOf = (b: number): [Tensor, Tensor, Tensor] => {
    const { x, y } = data.batch(idx, 0, b, trainer.norm);
    return [x, y, sums];
  };
  let tuned: TuneReport[] = [];
  let tuneSeconds = 0;
  let compiled: PrecompileReport = { kernels: 0, helper: false, seconds: 0 };
  try {
    // Every kernel the steps use, compiled at once (in parallel where the driver allows) before they run.
    compiled = await precompile(gpu, record);
    const tuner = tunerOf(gpu);
    if (tuner) {
      const observed = await tuner.collect(parts, { retune: opts.retune });
      try {
        if (observed.length) {
          opts.log?.(`tuning ${observed.length} kernel calls for this adapter (once; kept in ${describeStore(tuner.store)})`);
          const t1 = performance.now();
          tuned = await tuner.tune(observed, { log: opts.log });
          tuneSeconds = (performance.now() - t1) / 1000;
        }
      } finally {
        tuner.release(observed);
      }
    } else {
      record();
    }
    await gpu.sync();
  } finally {
    scratch.optimizer.zeroGrad();
    for (const t of scratch.model.stateDict().values()) t.dispose();
    for (const t of [idx, sums, correct]) t.dispose();
  }
  return { compiled, tuned, seconds: (performance.now() - t0) / 1000, tuneSeconds };
}

const describeStore = (store: object): string => ('path' in store ? String(store.path) : 'memory');
