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
// std that is not positive, a stored config with missing or wrong fields (those checks, and the model built
// from a checkpoint, are saved-model.ts's, which a page uses too; this file reads and writes the files).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, UsageError } from '../errors.js';
import type { ExtraState } from '../nn/modules.js';
import type { OptimizerState } from '../nn/optim.js';
import { writeFileAtomic } from '../util/files.js';
import type { OutputDir } from '../util/output-dir.js';
import { encodeSafetensors, type TensorMap } from '../util/safetensors.js';
import { readSafetensors } from '../util/safetensors-file.js';
import type { EarlyStoppingState } from './early-stopping.js';
import type { EpochRecord } from './history.js';
import type { MnistCnn } from './model.js';
import {
  BEST_PREFIX,
  CHECKPOINT_FORMAT,
  checkTensors,
  type ModelCheckpoint,
  modelFromCheckpoint,
  OPTIMIZER_PREFIX,
  parseModelCheckpoint,
  parseRunConfig,
  type RunConfig,
} from './saved-model.js';
import type { Trainer } from './trainer.js';

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
  return parseModelCheckpoint(readSafetensors(file), file);
}

/** readModelCheckpoint then modelFromCheckpoint: the trained model of a run directory or checkpoint file. */
export function loadModel(path: string, flag = '--model'): { model: MnistCnn; config: RunConfig; norm: RunConfig['norm']; file: string } {
  return modelFromCheckpoint(readModelCheckpoint(path, flag));
}
