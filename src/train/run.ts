// A training run as a library object: `webgpu-nn train` parses its flags, calls this, and prints. It owns
// the run's output directory (an OutputDir: checked and locked before any work), its data (loaded and
// fingerprinted before the GPU is opened), the epoch loop with early stopping, and the checkpoints:
//
//   const run = TrainingRun.prepare({ settings, out: 'runs/a' });    // or { resume: 'runs/a', given: {...} }
//   try { const outcome = await run.train(gpu, { log, interrupted: () => stop }); } finally { run.close(); }
//
// What it guarantees (the README's "Output directories, interruption and resumption"):
//   - after every finished epoch, history.json, best.safetensors and last.safetensors are rewritten atomically,
//     and last.safetensors alone holds everything the next epoch depends on (weights, batch-norm statistics,
//     best state, optimizer state, dropout's step counter, early-stopping counters, history), so a run
//     interrupted anywhere and resumed computes bit for bit what an uninterrupted one does;
//   - history.json and loss.png are written on every way out (done, early stop, interrupt, divergence, error);
//   - a resumed run takes its settings from the checkpoint: more epochs and the same data (by fingerprint)
//     from a new place may be given; any other setting that differs is refused, naming its flag.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Dataset, dataFingerprint, loadMnist } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { pixelStats, splitTrainVal } from '../data/split.js';
import { UsageError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { OutputDir } from '../util/output-dir.js';
import type { TensorMap } from '../util/safetensors.js';
import { type RunState, readResumeState, restoreTrainer, writeBestCheckpoint, writeLastCheckpoint } from './checkpoint.js';
import { EarlyStopping } from './early-stopping.js';
import { runEpoch } from './epoch.js';
import { type EpochRecord, lossPlot, writeHistory } from './history.js';
import { prepareTraining } from './prepare.js';
import type { RunConfig } from './saved-model.js';
import { Trainer } from './trainer.js';

/** The files a run writes in its directory. */
export const RUN_FILES = ['config.json', 'history.json', 'loss.png', 'best.safetensors', 'last.safetensors'] as const;

/** What a user chooses for a new run: every setting but those derived from the data. */
export type RunSettings = Omit<RunConfig, 'norm' | 'dataFingerprint'>;

/** The command-line flag of each setting, named in errors about it. */
export const SETTING_FLAGS: Record<keyof RunSettings, string> = {
  data: '--data',
  epochs: '--epochs',
  patience: '--patience',
  minDelta: '--min-delta',
  batchSize: '--batch-size',
  lr: '--lr',
  weightDecay: '--weight-decay',
  momentum: '--momentum',
  valSplit: '--val-split',
  seed: '--seed',
  limit: '--limit',
  init: '--init',
  batchNorm: '--bn / --no-bn',
  bnPosition: '--bn-position',
  dropout: '--dropout',
  normalize: '--normalize',
  unbiasedRunningVar: '--biased-running-var',
};

/** Settings that may change when a run is resumed: more epochs, and the same data from another place. */
const CHANGEABLE_ON_RESUME: ReadonlySet<keyof RunSettings> = new Set(['epochs', 'data']);

/** A new run (`out` null: a new directory runs/<timestamp>), or the continuation of the run in `resume`. */
export type RunRequest =
  | { settings: RunSettings; out: string | null }
  | {
      resume: string;
      /** Settings given again with the resume (flags given explicitly): checked against the run's. */
      given: Partial<RunSettings>;
      out?: string | null;
    };

/** What the run tells its caller as it goes. */
export interface RunEvents {
  log(line: string): void;
  /** After each finished epoch, with whether it is the best so far. */
  epoch?(record: EpochRecord, improved: boolean): void;
  /** Epochs done so far, fractional within an epoch. */
  progress?(epochs: number): void;
  /** Polled between steps: true stops the run after the current step, keeping the last finished epoch's files. */
  interrupted(): boolean;
}

/**
 * How the run ended: all its epochs, early stopping, an interrupt, or a NaN or infinite loss. A resumed run
 * that had already ended ends at once with the status it had ('done' or 'early-stop').
 */
export type RunStatus = 'done' | 'early-stop' | 'interrupted' | 'diverged';

export interface RunOutcome {
  status: RunStatus;
  history: EpochRecord[];
  /** The best epoch, whose weights the model holds at the end (null: none finished with a finite loss, or interrupted). */
  best: EpochRecord | null;
  /** Loss and accuracy of the best model on the test set, when the data has one. */
  test: { loss: number; accuracy: number; count: number } | null;
  /** The result files the directory holds at the end. */
  written: string[];
}

/** The data a run reads: the training set (limited), its split, the test set when there is one, its fingerprint. */
interface RunData {
  train: Dataset;
  test: Dataset | null;
  split: { train: Uint32Array; val: Uint32Array };
  fingerprint: string;
}

function loadRunData(s: Pick<RunSettings, 'data' | 'limit' | 'valSplit' | 'seed'>): RunData {
  const { train, test } = loadMnist(s.data, s.limit);
  const split = splitTrainVal(train.count, s.valSplit, s.seed); // neither part empty: splitTrainVal keeps at least 1 in each
  return { train, test, split, fingerprint: dataFingerprint(train, test) };
}

const dirOptions = (flag: string, adopt: readonly string[] = []) => ({ flag, command: 'train', files: RUN_FILES, adopt });

/** runs/<date>T<time> in UTC, to the second, as a directory name. */
const timestamp = () => new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19);

export class TrainingRun {
  private constructor(
    /** The run's directory, locked until close(). */
    readonly dir: OutputDir,
    /** The run's settings (a resumed run's, with the changes allowed). */
    readonly config: RunConfig,
    readonly data: RunData,
    /** Where an interrupted run stopped: null for a new run, or one interrupted before its first epoch ended. */
    private readonly previous: RunState | null,
  ) {}

  /**
   * Everything before the GPU: loads and fingerprints the data, then checks, creates and locks the output
   * directory (or, to resume, reads the run's state and checks the settings given again). Errors name the
   * flag or file at fault.
   */
  static prepare(req: RunRequest): TrainingRun {
    return 'resume' in req ? TrainingRun.prepareResume(req) : TrainingRun.prepareNew(req);
  }

  private static prepareNew({ settings, out }: { settings: RunSettings; out: string | null }): TrainingRun {
    const data = loadRunData(settings);
    const norm = settings.normalize ? pixelStats(data.train, data.split.train) : { mean: 0, std: 1 };
    const dir = out === null ? OutputDir.createUnique('runs', timestamp(), dirOptions('--out')) : OutputDir.open(out, dirOptions('--out'));
    // Never write over another run's results: they may be all someone has of a long training.
    const taken = ['history.json', 'best.safetensors', 'last.safetensors'].filter((f) => dir.holds(f));
    if (taken.length) {
      dir.release();
      throw new UsageError(
        `--out ${dir.path} already holds a run (${taken.join(', ')}); continue it with --resume ${dir.path}, or choose another --out`,
      );
    }
    return new TrainingRun(dir, { ...settings, norm, dataFingerprint: data.fingerprint }, data, null);
  }

  private static prepareResume({ resume, given, out }: { resume: string; given: Partial<RunSettings>; out?: string | null }): TrainingRun {
    if (out !== undefined && out !== null && resolve(out) !== resolve(resume)) {
      throw new UsageError(`--out ${out}: a resumed run goes on writing to its own directory (${resume}); drop --out`);
    }
    readResumeState(resume); // is it a run of ours at all? (before taking its lock and adopting its files)
    const dir = OutputDir.open(resume, dirOptions('--resume', RUN_FILES));
    try {
      const { config: stored, state } = readResumeState(resume); // again, now that no other process writes there
      const config: RunConfig = { ...stored };
      for (const key of Object.keys(given) as (keyof RunSettings)[]) {
        if (given[key] === undefined || CHANGEABLE_ON_RESUME.has(key) || given[key] === stored[key]) continue;
        throw new UsageError(
          `${SETTING_FLAGS[key]} cannot change when resuming: the run has ${key} = ${JSON.stringify(stored[key])} and the flags ask for ` +
            `${JSON.stringify(given[key])}; drop ${SETTING_FLAGS[key]} to continue the run, or start a new one with --out`,
        );
      }
      const done = state?.history.length ?? 0;
      if (given.epochs !== undefined) {
        if (given.epochs < done)
          throw new UsageError(`--epochs ${given.epochs}: the run has already finished ${done} epochs; give at least ${done}`);
        config.epochs = given.epochs;
      }
      const moved = given.data !== undefined && given.data !== stored.data;
      if (!moved && stored.data !== null && !existsSync(stored.data)) {
        throw new UsageError(`the run's data directory ${stored.data} is no longer there; if it moved, give its new place with --data DIR`);
      }
      if (moved && !stored.dataFingerprint) {
        throw new UsageError(
          `--data ${given.data}: this run was made before webgpu-nn kept a fingerprint of its data, so data from another place cannot be checked; resume without --data`,
        );
      }
      const data = loadRunData({ ...stored, data: moved ? (given.data ?? null) : stored.data });
      if (stored.dataFingerprint && data.fingerprint !== stored.dataFingerprint) {
        const now = moved ? `--data ${given.data}` : `the data in ${stored.data ?? 'the embedded digits'}`;
        throw new UsageError(
          `${now}: its images and labels are not those the run was trained on (the fingerprints differ); resume with the same data`,
        );
      }
      if (moved) config.data = given.data ?? null;
      config.dataFingerprint = data.fingerprint;
      return new TrainingRun(dir, config, data, state);
    } catch (e) {
      dir.release();
      throw e;
    }
  }

  /** Epochs finished before this process started (a resumed run's). */
  get resumedAfter(): number {
    return this.previous?.history.length ?? 0;
  }

  /**
   * Trains on `gpu` until the epochs are done, early stopping, `events.interrupted()` or a NaN/infinite loss;
   * saves after every epoch; at the end puts the best weights back and evaluates them on the test set.
   */
  async train(gpu: Gpu, events: RunEvents): Promise<RunOutcome> {
    const { dir, config, data } = this;
    dir.write('config.json', `${JSON.stringify({ ...config, adapter: gpu.adapter }, null, 2)}\n`);
    const trainer = new Trainer(gpu, config, config.norm);
    const s = this.previous;
    const stopper = s ? EarlyStopping.from(s.stopping) : new EarlyStopping({ patience: config.patience, minDelta: config.minDelta });
    const history: EpochRecord[] = s ? [...s.history] : [];
    let best: TensorMap | null = s ? s.best : null;
    if (s) {
      restoreTrainer(trainer, s);
      events.log(
        `resuming after epoch ${history.length} (best so far: epoch ${stopper.bestEpoch}, validation loss ${stopper.bestValue.toFixed(6)})`,
      );
    }
    // A run that had already stopped early is complete: it trains no further epoch.
    let status: RunStatus = stopper.counter >= stopper.patience ? 'early-stop' : 'done';
    const gpuData = GpuDataset.upload(gpu, data.train, 'train');
    const trainSplit = { data: gpuData, indices: data.split.train };
    const valSplit = { data: gpuData, indices: data.split.val };
    // Compiles the run's kernels, and measures the kernel choices this adapter has none for yet (once per adapter).
    const prepared = await prepareTraining(trainer, { train: trainSplit, val: valSplit }, { log: events.log });
    const { compiled } = prepared;
    if (compiled.kernels)
      events.log(`compiled ${compiled.kernels} kernels in ${compiled.seconds.toFixed(1)}s${compiled.helper ? ' (two queues)' : ''}`);
    if (prepared.tuned.length) events.log(`tuned ${prepared.tuned.length} kernel calls in ${prepared.tuneSeconds.toFixed(1)}s`);
    let error: unknown = null;
    try {
      for (let epoch = history.length + 1; status === 'done' && epoch <= config.epochs; epoch++) {
        const record = await runEpoch(trainer, trainSplit, valSplit, epoch, events.interrupted, (done, total) =>
          events.progress?.(epoch - 1 + done / total),
        );
        if (!record) {
          status = 'interrupted';
          break;
        }
        const { trainLoss, valLoss } = record;
        history.push(record);
        if (!Number.isFinite(trainLoss) || !Number.isFinite(valLoss)) {
          status = 'diverged';
          events.log(
            `epoch ${epoch}: the loss is ${Number.isFinite(trainLoss) ? valLoss : trainLoss}; stopping. ` +
              'Lower --lr, or try --normalize; the best checkpoint so far is kept.',
          );
          break;
        }
        const { improved, stop } = stopper.step(valLoss);
        events.epoch?.(record, improved);
        events.progress?.(epoch);
        const state = await trainer.stateArrays(); // one readback serves both checkpoints
        if (improved) {
          trainer.snapshotBest();
          best = state;
          writeBestCheckpoint(dir, state, config, record);
        }
        writeLastCheckpoint(
          dir,
          {
            last: state,
            best: best ?? state,
            optimizer: await trainer.optimizer.stateArrays(),
            extra: trainer.model.namedExtraStates(),
            stopping: stopper.state(),
            history,
          },
          config,
        );
        writeHistory(dir, history);
        if (stop) {
          status = 'early-stop';
          events.log(`early stopping: no improvement in validation loss for ${config.patience} epochs`);
        }
      }
    } catch (e) {
      error = e;
    }
    // history.json and loss.png on every way out; after an error, as far as they can be written (the first
    // error is the one reported).
    try {
      if (history.length) {
        writeHistory(dir, history);
        dir.write('loss.png', lossPlot(history));
      }
    } catch (e) {
      error ??= e;
    }
    if (error) {
      gpuData.dispose();
      throw error;
    }

    let test: RunOutcome['test'] = null;
    let bestRecord: EpochRecord | null = null;
    if (status !== 'interrupted' && trainer.restoreBest()) {
      bestRecord = history.find((h) => h.epoch === stopper.bestEpoch) ?? null;
      if (data.test) {
        const testData = GpuDataset.upload(gpu, data.test, 'test');
        const r = await trainer.evaluate({ data: testData, indices: Uint32Array.from({ length: data.test.count }, (_, i) => i) });
        testData.dispose();
        test = { ...r, count: data.test.count };
      }
    }
    gpuData.dispose();
    const written = ['history.json', 'loss.png', 'best.safetensors', 'last.safetensors'].filter((f) => dir.holds(f));
    return { status, history, best: bestRecord, test, written };
  }

  /** Releases the directory's lock. */
  close(): void {
    this.dir.release();
  }
}
