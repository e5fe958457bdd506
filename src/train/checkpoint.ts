// The checkpoints of a `webgpu-nn train` output directory, both safetensors files whose metadata says
// `format: webgpu-nn MnistCnn` and holds the run's settings as JSON (`config`):
//   best.safetensors  the best epoch's weights and batch-norm statistics, with epoch, valLoss and valAcc
//   last.safetensors  the last epoch's state plus the optimizer's momentum (`optimizer.velocity.<i>`), with the
//                     early-stopping counters (`stopping`) and the history: everything --resume needs
// Both are rewritten atomically after every epoch that produces them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, UsageError, WebGpuNnError } from '../errors.js';
import type { OptimizerState } from '../nn/optim.js';
import type { TensorMap } from '../util/safetensors.js';
import { readSafetensors, writeSafetensors } from '../util/safetensors-file.js';
import type { EarlyStopping, EarlyStoppingState } from './early-stopping.js';
import { type EpochRecord, writeHistory } from './history.js';
import type { MnistCnn } from './model.js';
import { CHECKPOINT_FORMAT, modelFromCheckpoint } from './saved-model.js';
import type { Trainer, TrainOptions } from './trainer.js';

/** last.safetensors stores the optimizer's state (SGD: `velocity.<i>`) under this prefix. */
const OPTIMIZER_PREFIX = 'optimizer.';

/** The settings a run is made of: saved in config.json and in the checkpoints' metadata. */
export interface RunConfig extends TrainOptions {
  data: string | null;
  valSplit: number;
  limit: number | null;
  normalize: boolean;
  /** Input normalisation: pixels in [0, 1] become (v - mean) / std. */
  norm: { mean: number; std: number };
}

/** DIR/best.safetensors: the model state of the epoch `record` describes. */
export function writeBestCheckpoint(dir: string, state: TensorMap, config: RunConfig, record: EpochRecord): void {
  writeSafetensors(join(dir, 'best.safetensors'), state, {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(config),
    epoch: String(record.epoch),
    valLoss: String(record.valLoss),
    valAcc: String(record.valAcc),
  });
}

/** DIR/last.safetensors and DIR/history.json: everything --resume needs, written after every epoch. */
export async function writeLastCheckpoint(
  dir: string,
  trainer: Trainer,
  state: TensorMap,
  stopper: EarlyStopping,
  history: EpochRecord[],
  config: RunConfig,
): Promise<void> {
  const tensors = { ...state };
  for (const [key, value] of Object.entries(await trainer.optimizer.stateArrays())) tensors[`${OPTIMIZER_PREFIX}${key}`] = value;
  writeSafetensors(join(dir, 'last.safetensors'), tensors, {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(config),
    stopping: JSON.stringify(stopper.state()),
    history: JSON.stringify(history),
  });
  writeHistory(dir, history);
}

/** An interrupted run, as its last and best checkpoints hold it. */
export interface ResumeState {
  config: RunConfig;
  history: EpochRecord[];
  stopping: EarlyStoppingState;
  last: TensorMap;
  best: TensorMap;
  optimizer: OptimizerState;
}

/** Reads DIR/last.safetensors and DIR/best.safetensors for `webgpu-nn train --resume DIR`. */
export function readResumeState(dir: string): ResumeState {
  const lastPath = join(dir, 'last.safetensors');
  const bestPath = join(dir, 'best.safetensors');
  for (const p of [lastPath, bestPath]) {
    if (!existsSync(p))
      throw new UsageError(
        `--resume ${dir}: ${p} is missing; is this a webgpu-nn train output directory with at least one finished epoch?`,
      );
  }
  const last = readSafetensors(lastPath);
  const meta = last.metadata;
  if (meta.format !== CHECKPOINT_FORMAT || !meta.config || !meta.stopping || !meta.history) {
    throw new FileFormatError(`${lastPath}: not a webgpu-nn training checkpoint (metadata lacks format/config/stopping/history)`);
  }
  const model: TensorMap = {};
  const optimizer: OptimizerState = {};
  for (const [k, v] of Object.entries(last.tensors)) {
    if (k.startsWith(OPTIMIZER_PREFIX)) optimizer[k.slice(OPTIMIZER_PREFIX.length)] = v;
    else model[k] = v;
  }
  try {
    return {
      config: JSON.parse(meta.config) as RunConfig,
      history: JSON.parse(meta.history) as EpochRecord[],
      stopping: JSON.parse(meta.stopping) as EarlyStoppingState,
      last: model,
      best: readSafetensors(bestPath).tensors,
      optimizer,
    };
  } catch (e) {
    if (e instanceof WebGpuNnError) throw e;
    throw new FileFormatError(`${lastPath}: corrupt metadata (${(e as Error).message})`);
  }
}

/** Puts an interrupted run's state back: best snapshot, last weights and the optimizer's momentum. */
export function restoreTrainer(trainer: Trainer, previous: ResumeState): void {
  trainer.model.loadStateDict(previous.best);
  trainer.snapshotBest();
  trainer.model.loadStateDict(previous.last);
  trainer.optimizer.loadStateArrays(previous.optimizer);
}

/**
 * The trained model of a `webgpu-nn train` output directory (its best.safetensors; `path` may also name a
 * checkpoint file), on the tensors' default Gpu, in evaluation mode, with the run's settings and input
 * normalisation. `flag` is the command-line flag `path` came from, named in errors.
 */
export function loadModel(path: string, flag = '--model'): { model: MnistCnn; config: RunConfig; norm: RunConfig['norm']; file: string } {
  const file = existsSync(join(path, 'best.safetensors')) ? join(path, 'best.safetensors') : path;
  if (!existsSync(file)) throw new UsageError(`${flag} ${path}: no such file or directory; give a webgpu-nn train output directory`);
  if (!file.endsWith('.safetensors'))
    throw new UsageError(`${flag} ${path}: no best.safetensors in it; give a webgpu-nn train output directory`);
  return { ...modelFromCheckpoint(readSafetensors(file), file), file };
}
