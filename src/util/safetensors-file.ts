// Safetensors files (Node): the format itself is safetensors.ts, which works on bytes.
import { readFileSync } from 'node:fs';
import { FileFormatError } from '../errors.js';
import { writeFileAtomic } from './files.js';
import { decodeSafetensors, encodeSafetensors, type TensorMap } from './safetensors.js';

/** Writes a safetensors file atomically. */
export function writeSafetensors(path: string, tensors: TensorMap, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

/** Reads and validates a safetensors file. */
export function readSafetensors(path: string): { tensors: TensorMap; metadata: Record<string, string> } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new FileFormatError(`${path}: cannot read checkpoint: ${(err as Error).message}`);
  }
  return decodeSafetensors(bytes, path);
}
