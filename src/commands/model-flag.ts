// --model, the flag of the commands that read a trained model (evaluate, predict).
import { UsageError } from '../errors.js';
import type { FlagSpec } from '../util/flags.js';

/** --model DIR: a `webgpu-nn train` output directory, read by `loadModel`. */
export const MODEL_FLAG = {
  type: 'string',
  help: 'a webgpu-nn train output directory (or its best.safetensors)',
} as const satisfies FlagSpec;

/** The --model value, which the command cannot do without. */
export function requireModel(model: string | undefined, command: string): string {
  if (!model) throw new UsageError(`webgpu-nn ${command}: --model DIR is required (a webgpu-nn train output directory)`);
  return model;
}
