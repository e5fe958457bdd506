// What a `webgpu-nn train` checkpoint holds, from its decoded contents: the run's settings (RunConfig) checked
// field by field, the tensors checked for values that would load silently and then predict nonsense (NaN or
// infinite values, a negative running variance), and the trained network built from them. No file or Node API
// here: `webgpu-nn evaluate`/`predict` and --resume (checkpoint.ts reads the files) and the web page (a file
// picked or dropped there) share it.
import { FileFormatError } from '../errors.js';
import { INITIALIZERS } from '../nn/init.js';
import type { TensorMap } from '../util/safetensors.js';
import { BN_POSITIONS, createMnistCnn, type MnistCnn } from './model.js';
import type { TrainOptions } from './trainer.js';

/** The `format` metadata of every checkpoint `webgpu-nn train` writes. */
export const CHECKPOINT_FORMAT = 'webgpu-nn MnistCnn';

/** last.safetensors stores the optimizer's state (SGD: `velocity.<i>`) under this prefix, */
export const OPTIMIZER_PREFIX = 'optimizer.';
/** and the best epoch's state under this one. */
export const BEST_PREFIX = 'best.';

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
export function checkTensors(tensors: TensorMap, file: string): void {
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

/** A trained model's checkpoint, read and checked on the CPU (before any GPU is opened). */
export interface ModelCheckpoint {
  file: string;
  config: RunConfig;
  tensors: TensorMap;
  /** All of the file's metadata (best.safetensors: also epoch, valLoss, valAcc). */
  metadata: Record<string, string>;
}

/**
 * The model checkpoint in a decoded `webgpu-nn train` checkpoint (best.safetensors, or last.safetensors for
 * its last state), checked: its format, its stored settings, finite values. `file` is named in errors.
 */
export function parseModelCheckpoint(contents: { tensors: TensorMap; metadata: Record<string, string> }, file: string): ModelCheckpoint {
  const { tensors, metadata } = contents;
  if (metadata.format !== CHECKPOINT_FORMAT || !metadata.config) {
    throw new FileFormatError(`${file}: not a ${CHECKPOINT_FORMAT} checkpoint (its metadata has no format/config)`);
  }
  const config = parseRunConfig(metadata.config, file);
  checkTensors(tensors, file);
  // last.safetensors: its last state, without the best and optimizer states beside it.
  const own = Object.fromEntries(Object.entries(tensors).filter(([k]) => !k.startsWith(OPTIMIZER_PREFIX) && !k.startsWith(BEST_PREFIX)));
  return { file, config, tensors: own, metadata };
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
