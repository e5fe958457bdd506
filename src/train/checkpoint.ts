// The checkpoints of a `webgpu-nn train` output directory, both safetensors files whose metadata says
// `format: webgpu-nn MnistCnn` and holds the run's settings as JSON (`config`):
//   best.safetensors  the best epoch's weights and batch-norm statistics, with epoch, valLoss and valAcc: the
//                     trained model, readable by any safetensors reader
//   last.safetensors  everything --resume needs, consistent in one file: the last epoch's state, the best
//                     state (`best.<name>`), the optimizer's (`optimizer.<name>`), and in its metadata the
//                     early-stopping counters (`stopping`), the modules' extra state such as dropout's step
//                     counter (`extraState`) and the history
// Both are rewritten atomically after every epoch that produces them. Reading refuses what would load
// silently and then predict nonsense: NaN or infinite values, a negative running variance, a normalisation
// std that is not positive, a stored config with missing or wrong fields.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, UsageError } from '../errors.js';
import { INITIALIZERS } from '../nn/init.js';
import type { ExtraState } from '../nn/modules.js';
import type { OptimizerState } from '../nn/optim.js';
import { writeFileAtomic } from '../util/files.js';
import type { OutputDir } from '../util/output-dir.js';
import { encodeSafetensors, readSafetensors, type TensorMap } from '../util/safetensors.js';
import type { EarlyStoppingState } from './early-stopping.js';
import type { EpochRecord } from './history.js';
import { BN_POSITIONS, createMnistCnn, type MnistCnn } from './model.js';
import type { Trainer, TrainOptions } from './trainer.js';

/** last.safetensors stores the optimizer's state (SGD: `velocity.<i>`) under this prefix, */
const OPTIMIZER_PREFIX = 'optimizer.';
/** and the best epoch's state under this one. */
const BEST_PREFIX = 'best.';

/** The `format` metadata of every checkpoint `webgpu-nn train` writes. */
export const CHECKPOINT_FORMAT = 'webgpu-nn MnistCnn';

/** The settings a run is made of: saved in config.json and in the checkpoints' metadata. */
export interface RunConfig extends TrainOptions {
  data: string | null;
  valSplit: number;
  limit: number | null;
  normalize: boolean;
  /** Input normalisation: pixels in [0, 1] become (v - mean) / std. */
  norm: { mean: number; std: number };
  /** sha256 of the data the run read (dataFingerprint()); lets a resumed run take the same data from a new place. Absent in runs from before it was kept. */
  dataFingerprint?: string;
}

/** The fields of a RunConfig and what each must be: a stored config is checked against this before use. */
const CONFIG_FIELDS: Record<keyof RunConfig, (v: unknown) => boolean> = {
  data: (v) => v === null || (typeof v === 'string' && v !== ''),
  epochs: (v) => Number.isSafeInteger(v) && (v as number) >= 1,
  patience: (v) => Number.isSafeInteger(v) && (v as number) >= 1,
  minDelta: (v) => typeof v === 'number' && v >= 0 && Number.isFinite(v),
  batchSize: (v) => Number.isSafeInteger(v) && (v as number) >= 1,
  lr: (v) => typeof v === 'number' && v > 0 && Number.isFinite(v),
  weightDecay: (v) => typeof v === 'number' && v >= 0 && Number.isFinite(v),
  momentum: (v) => typeof v === 'number' && v >= 0 && v <= 1,
  valSplit: (v) => typeof v === 'number' && v > 0 && v < 1,
  seed: (v) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffffff,
  limit: (v) => v === null || (Number.isSafeInteger(v) && (v as number) >= 2),
  init: (v) => (INITIALIZERS as readonly unknown[]).includes(v),
  batchNorm: (v) => typeof v === 'boolean',
  bnPosition: (v) => v === undefined || (BN_POSITIONS as readonly unknown[]).includes(v),
  dropout: (v) => typeof v === 'number' && v >= 0 && v <= 1,
  unbiasedRunningVar: (v) => typeof v === 'boolean',
  normalize: (v) => typeof v === 'boolean',
  norm: (v) => {
    const n = v as { mean?: unknown; std?: unknown } | null;
    return typeof n === 'object' && n !== null && Number.isFinite(n.mean) && Number.isFinite(n.std) && (n.std as number) > 0;
  },
  dataFingerprint: (v) => v === undefined || (typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)),
};

/** A stored config (JSON text or parsed), every field checked; `file` is named in the error. */
export function parseRunConfig(json: string | unknown, file: string): RunConfig {
  let v: unknown = json;
  if (typeof json === 'string') {
    try {
      v = JSON.parse(json);
    } catch (e) {
      throw new FileFormatError(`${file}: the stored run settings are not valid JSON (${(e as Error).message})`);
    }
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    throw new FileFormatError(`${file}: the stored run settings are not an object`);
  const config = v as Record<string, unknown>;
  const bad = Object.entries(CONFIG_FIELDS)
    .filter(([k, ok]) => !ok(config[k]))
    .map(([k]) => (config[k] === undefined ? `${k} is missing` : `${k} is ${JSON.stringify(config[k])}`));
  if (bad.length) {
    throw new FileFormatError(
      `${file}: the stored run settings are incomplete or damaged (${bad.join('; ')}); the file was not written by this webgpu-nn, or was edited`,
    );
  }
  return config as unknown as RunConfig;
}

/** Refuses tensors holding NaN or infinite values, and negative running variances: they would predict nonsense. */
function checkTensors(tensors: TensorMap, file: string): void {
  for (const [name, t] of Object.entries(tensors)) {
    const i = t.data.findIndex((v) => !Number.isFinite(v));
    if (i >= 0) {
      throw new FileFormatError(
        `${file}: tensor "${name}" holds ${t.data[i]} at index ${i}; a checkpoint with NaN or infinite values would give nonsense (was it saved from a diverged run, or damaged?)`,
      );
    }
    if (name.endsWith('running_var')) {
      const j = t.data.findIndex((v) => v < 0);
      if (j >= 0)
        throw new FileFormatError(
          `${file}: tensor "${name}" holds the negative variance ${t.data[j]} at index ${j}; the checkpoint is damaged`,
        );
    }
  }
}

/** Writes `name` in `dir` (a run's OutputDir, or a plain directory path) atomically. */
function writeIn(dir: string | OutputDir, name: string, bytes: Uint8Array): void {
  if (typeof dir === 'string') writeFileAtomic(join(dir, name), bytes);
  else dir.write(name, bytes);
}

/** DIR/best.safetensors: the model state of the epoch `record` describes. */
export function writeBestCheckpoint(dir: string | OutputDir, state: TensorMap, config: RunConfig, record: EpochRecord): void {
  writeIn(
    dir,
    'best.safetensors',
    encodeSafetensors(state, {
      format: CHECKPOINT_FORMAT,
      config: JSON.stringify(config),
      epoch: String(record.epoch),
      valLoss: String(record.valLoss),
      valAcc: String(record.valAcc),
    }),
  );
}

/** Everything a resumed run continues from, as one epoch left it. */
export interface RunState {
  /** The model's state after the last finished epoch. */
  last: TensorMap;
  /** The best epoch's state (what restoreBest brings back). */
  best: TensorMap;
  optimizer: OptimizerState;
  /** The modules' extra state (namedExtraStates), e.g. dropout's step counter. */
  extra: Record<string, ExtraState>;
  stopping: EarlyStoppingState;
  history: EpochRecord[];
}

/** DIR/last.safetensors: everything --resume needs, in one file so it is always consistent. */
export function writeLastCheckpoint(dir: string | OutputDir, s: RunState, config: RunConfig): void {
  const tensors: TensorMap = { ...s.last };
  for (const [key, value] of Object.entries(s.best)) tensors[`${BEST_PREFIX}${key}`] = value;
  for (const [key, value] of Object.entries(s.optimizer)) tensors[`${OPTIMIZER_PREFIX}${key}`] = value;
  writeIn(
    dir,
    'last.safetensors',
    encodeSafetensors(tensors, {
      format: CHECKPOINT_FORMAT,
      config: JSON.stringify(config),
      stopping: JSON.stringify(s.stopping),
      extraState: JSON.stringify(s.extra),
      history: JSON.stringify(s.history),
    }),
  );
}

/** The state of a run that finished no epoch yet, or of an interrupted one: its settings and, after an epoch, its RunState. */
export interface ResumeState {
  config: RunConfig;
  state: RunState | null;
}

/**
 * Reads DIR's resume state: last.safetensors when an epoch has finished, else the settings in config.json (a
 * run interrupted in its first epoch starts again from epoch 1). `flag` is named in errors.
 */
export function readResumeState(dir: string, flag = '--resume'): ResumeState {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new UsageError(`${flag} ${dir}: no such directory; give the output directory of the webgpu-nn train run to continue`);
  }
  const lastPath = join(dir, 'last.safetensors');
  if (!existsSync(lastPath)) {
    const configPath = join(dir, 'config.json');
    if (!existsSync(configPath)) {
      throw new UsageError(
        `${flag} ${dir}: ${lastPath} is missing, and so is config.json: is this a webgpu-nn train output directory? ` +
          `(A run killed before it started leaves nothing to resume: start it again with --out ${dir}.)`,
      );
    }
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (e) {
      throw new FileFormatError(`${configPath}: cannot read it (${(e as Error).message})`);
    }
    return { config: parseRunConfig(text, configPath), state: null };
  }
  const last = readSafetensors(lastPath);
  const meta = last.metadata;
  if (meta.format !== CHECKPOINT_FORMAT || !meta.config || !meta.stopping || !meta.history) {
    throw new FileFormatError(`${lastPath}: not a webgpu-nn training checkpoint (metadata lacks format/config/stopping/history)`);
  }
  const config = parseRunConfig(meta.config, lastPath);
  const model: TensorMap = {};
  const optimizer: OptimizerState = {};
  let best: TensorMap = {};
  for (const [k, v] of Object.entries(last.tensors)) {
    if (k.startsWith(OPTIMIZER_PREFIX)) optimizer[k.slice(OPTIMIZER_PREFIX.length)] = v;
    else if (k.startsWith(BEST_PREFIX)) best[k.slice(BEST_PREFIX.length)] = v;
    else model[k] = v;
  }
  checkTensors(last.tensors, lastPath);
  // Checkpoints from before the best state moved into last.safetensors keep it in best.safetensors only.
  if (!Object.keys(best).length) {
    const bestPath = join(dir, 'best.safetensors');
    if (!existsSync(bestPath)) throw new FileFormatError(`${lastPath}: holds no best state, and ${bestPath} is missing`);
    best = readSafetensors(bestPath).tensors;
    checkTensors(best, bestPath);
  }
  const parse = <T>(key: string, fallback?: T): T => {
    if (meta[key] === undefined && fallback !== undefined) return fallback;
    try {
      return JSON.parse(meta[key]) as T;
    } catch (e) {
      throw new FileFormatError(`${lastPath}: corrupt "${key}" metadata (${(e as Error).message})`);
    }
  };
  const history = parse<EpochRecord[]>('history');
  const stopping = parse<EarlyStoppingState>('stopping');
  if (!Array.isArray(history) || history.some((h, i) => h?.epoch !== i + 1) || stopping?.epoch !== history.length) {
    throw new FileFormatError(`${lastPath}: its history and early-stopping state do not agree; the checkpoint is damaged`);
  }
  // Runs from before extra state was kept: their dropout counter is not known, so they resume at step 0.
  const extra = parse<Record<string, ExtraState>>('extraState', {});
  return { config, state: { last: model, best, optimizer, extra, stopping, history } };
}

/** Puts an interrupted run's state back into a trainer: best snapshot, last weights, optimizer, extra state. */
export function restoreTrainer(trainer: Trainer, s: RunState): void {
  trainer.model.loadStateDict(s.best);
  trainer.snapshotBest();
  trainer.model.loadStateDict(s.last);
  trainer.optimizer.loadStateArrays(s.optimizer);
  if (Object.keys(s.extra).length) trainer.model.loadNamedExtraStates(s.extra);
}

/** A trained model's checkpoint, read and checked on the CPU (before any GPU is opened). */
export interface ModelCheckpoint {
  file: string;
  config: RunConfig;
  tensors: TensorMap;
}

/**
 * The model checkpoint of a `webgpu-nn train` output directory (its best.safetensors; `path` may also name a
 * checkpoint file), read and checked: its format, its stored settings, finite values. `flag` is the
 * command-line flag `path` came from, named in errors.
 */
export function readModelCheckpoint(path: string, flag = '--model'): ModelCheckpoint {
  const file = existsSync(join(path, 'best.safetensors')) ? join(path, 'best.safetensors') : path;
  if (!existsSync(file)) throw new UsageError(`${flag} ${path}: no such file or directory; give a webgpu-nn train output directory`);
  if (statSync(file).isDirectory()) {
    throw new UsageError(
      `${flag} ${path}: no best.safetensors in it (no epoch of that run finished?); give a webgpu-nn train output directory`,
    );
  }
  const { tensors, metadata } = readSafetensors(file);
  if (metadata.format !== CHECKPOINT_FORMAT || !metadata.config) {
    throw new FileFormatError(`${file}: not a ${CHECKPOINT_FORMAT} checkpoint (its metadata has no format/config)`);
  }
  const config = parseRunConfig(metadata.config, file);
  checkTensors(tensors, file);
  // last.safetensors named as a file: its last state, without the best and optimizer states beside it.
  const own = Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.startsWith(OPTIMIZER_PREFIX) && !k.startsWith(BEST_PREFIX)));
  return { file, config, tensors: own };
}

/** The checkpoint's model on the tensors' default Gpu, in evaluation mode, with the run's settings and input normalisation. */
export function modelFromCheckpoint(c: ModelCheckpoint): { model: MnistCnn; config: RunConfig; norm: RunConfig['norm']; file: string } {
  const model = createMnistCnn(c.config);
  try {
    model.loadStateDict(c.tensors);
  } catch (e) {
    throw new FileFormatError(`${c.file}: its tensors do not fit the network its settings describe (${(e as Error).message})`);
  }
  model.eval();
  return { model, config: c.config, norm: c.config.norm, file: c.file };
}

/** readModelCheckpoint then modelFromCheckpoint: the trained model of a run directory or checkpoint file. */
export function loadModel(path: string, flag = '--model'): { model: MnistCnn; config: RunConfig; norm: RunConfig['norm']; file: string } {
  return modelFromCheckpoint(readModelCheckpoint(path, flag));
}
