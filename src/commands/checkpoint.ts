// Loading a trained model back from a `webgpu-nn train` output directory (best.safetensors + its metadata).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FileFormatError, UsageError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { readSafetensors } from '../util/safetensors.js';
import { Trainer } from '../train/trainer.js';
import type { RunConfig } from './train.js';

/** A Trainer (model + settings) holding the weights of DIR/best.safetensors, in evaluation mode. */
export function loadTrained(gpu: Gpu, dir: string, flag = '--model'): { trainer: Trainer; config: RunConfig; file: string } {
  const file = existsSync(join(dir, 'best.safetensors')) ? join(dir, 'best.safetensors') : dir;
  if (!existsSync(file)) throw new UsageError(`${flag} ${dir}: no such file or directory; give a webgpu-nn train output directory`);
  if (!file.endsWith('.safetensors')) throw new UsageError(`${flag} ${dir}: no best.safetensors in it; give a webgpu-nn train output directory`);
  const { tensors, metadata } = readSafetensors(file);
  if (metadata.format !== 'webgpu-nn MnistCnn' || !metadata.config) {
    throw new FileFormatError(`${file}: not a webgpu-nn MnistCnn checkpoint (its metadata has no format/config)`);
  }
  let config: RunConfig;
  try {
    config = JSON.parse(metadata.config) as RunConfig;
  } catch (e) {
    throw new FileFormatError(`${file}: corrupt config in metadata (${(e as Error).message})`);
  }
  const trainer = new Trainer(gpu, config, config.norm);
  trainer.model.loadStateDict(tensors);
  trainer.model.eval();
  return { trainer, config, file };
}
