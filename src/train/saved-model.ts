// The trained network a checkpoint holds, from the checkpoint's decoded contents: the part of loading a model
// that touches no file, shared by `webgpu-nn evaluate`/`predict` (checkpoint.ts reads the file) and the web
// page (a file picked or dropped there).
import { FileFormatError } from '../errors.js';
import type { TensorMap } from '../util/safetensors.js';
import type { RunConfig } from './checkpoint.js';
import { createMnistCnn, type MnistCnn } from './model.js';

/** The `format` metadata of every checkpoint `webgpu-nn train` writes. */
export const CHECKPOINT_FORMAT = 'webgpu-nn MnistCnn';

/**
 * The network of a decoded `webgpu-nn train` checkpoint, on the tensors' default Gpu, in evaluation mode, with
 * the run's settings and input normalisation. `file` is named in errors.
 */
export function modelFromCheckpoint(
  checkpoint: { tensors: TensorMap; metadata: Record<string, string> },
  file: string,
): { model: MnistCnn; config: RunConfig; norm: RunConfig['norm'] } {
  const { tensors, metadata } = checkpoint;
  if (metadata.format !== CHECKPOINT_FORMAT || !metadata.config) {
    throw new FileFormatError(`${file}: not a ${CHECKPOINT_FORMAT} checkpoint (its metadata has no format/config)`);
  }
  let config: RunConfig;
  try {
    config = JSON.parse(metadata.config) as RunConfig;
  } catch (e) {
    throw new FileFormatError(`${file}: corrupt config in metadata (${(e as Error).message})`);
  }
  const model = createMnistCnn(config);
  model.loadStateDict(tensors);
  model.eval();
  return { model, config, norm: config.norm ?? { mean: 0, std: 1 } };
}
