// Reader for the MNIST IDX format (big-endian header: two zero bytes, a type byte, a dimension
// count, one u32 per dimension, then the raw data), raw or gzipped, and a loader for the four
// standard MNIST files in a directory.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FileFormatError } from '../errors.js';
import type { Dataset } from './dataset.js';

const IDX_TYPES: Record<number, string> = {
  8: 'unsigned byte',
  9: 'signed byte',
  11: 'short',
  12: 'int',
  13: 'float',
  14: 'double',
};

const hex = (n: number, digits: number) => `0x${n.toString(16).padStart(digits, '0')}`;

/** Parses IDX bytes; only the unsigned-byte type MNIST uses is supported. `file` is named in every error. */
export function parseIdx(bytes: Uint8Array, file: string): { dims: number[]; data: Uint8Array } {
  if (bytes.length < 4) {
    throw new FileFormatError(`${file}: not an IDX file: expected at least a 4-byte header, found ${bytes.length} bytes`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new FileFormatError(
      `${file}: not an IDX file: expected magic 0x000008NN (0x00000803 for images, 0x00000801 for labels), found ${hex(magic, 8)}`,
    );
  }
  const type = bytes[2];
  if (type !== 0x08) {
    const name = IDX_TYPES[type] ? ` (${IDX_TYPES[type]})` : '';
    throw new FileFormatError(`${file}: unsupported IDX data type: expected 0x08 (unsigned byte), found ${hex(type, 2)}${name}`);
  }
  const ndims = bytes[3];
  if (ndims === 0) throw new FileFormatError(`${file}: IDX header declares 0 dimensions; expected at least 1`);
  const headerLen = 4 + 4 * ndims;
  if (bytes.length < headerLen) {
    throw new FileFormatError(`${file}: truncated IDX header: expected ${headerLen} bytes for ${ndims} dimensions, found ${bytes.length}`);
  }
  const dims: number[] = [];
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const found = bytes.length - headerLen;
  if (found < expected) {
    throw new FileFormatError(`${file}: truncated IDX data: dimensions [${dims.join(', ')}] need ${expected} bytes, found ${found}`);
  }
  if (found > expected) {
    throw new FileFormatError(
      `${file}: ${found - expected} unexpected trailing bytes after the IDX data (dimensions [${dims.join(', ')}] need ${expected} bytes)`,
    );
  }
  return { dims, data: bytes.subarray(headerLen) };
}

/** Reads and parses an IDX file, gunzipping it first when it starts with the gzip magic 1f 8b. */
export function readIdxFile(path: string): { dims: number[]; data: Uint8Array } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new FileFormatError(`${path}: cannot read IDX file: ${(err as Error).message}`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (err) {
      throw new FileFormatError(`${path}: corrupt gzip data: ${(err as Error).message}; re-download the file`);
    }
  }
  // A plain Uint8Array view rather than a Buffer, whose slice() shares memory instead of copying.
  return parseIdx(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), path);
}

/** Finds `base` or `base.gz` in `dir`; returns null when neither exists. */
function findFile(dir: string, base: string): string | null {
  for (const name of [base, `${base}.gz`]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  return null;
}

function loadPair(imagesPath: string, labelsPath: string): Dataset {
  const img = readIdxFile(imagesPath);
  const lab = readIdxFile(labelsPath);
  if (img.dims.length !== 3 || img.dims[1] !== 28 || img.dims[2] !== 28) {
    throw new FileFormatError(`${imagesPath}: expected MNIST images of shape [N, 28, 28], found [${img.dims.join(', ')}]`);
  }
  if (lab.dims.length !== 1) {
    throw new FileFormatError(`${labelsPath}: expected a 1-dimensional label file, found shape [${lab.dims.join(', ')}]`);
  }
  if (img.dims[0] !== lab.dims[0]) {
    throw new FileFormatError(
      `image and label counts differ: ${imagesPath} has ${img.dims[0]} images but ${labelsPath} has ${lab.dims[0]} labels`,
    );
  }
  const bad = lab.data.findIndex((l) => l > 9);
  if (bad >= 0) {
    throw new FileFormatError(`${labelsPath}: label ${lab.data[bad]} at index ${bad} is out of range; expected 0..9`);
  }
  return { images: img.data, labels: lab.data, count: img.dims[0], rows: img.dims[1], cols: img.dims[2] };
}

/** Loads the MNIST training files (required) and test files (optional, both or neither) from `dir`. */
export function loadMnistDir(dir: string): { train: Dataset; test: Dataset | null } {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new FileFormatError(`${dir}: MNIST data directory does not exist or is not a directory`);
  }
  const names = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
  const [trainImg, trainLab, testImg, testLab] = names.map((n) => findFile(dir, n));
  if (!trainImg || !trainLab) {
    const missing = names
      .slice(0, 2)
      .filter((_, i) => ![trainImg, trainLab][i])
      .map((n) => `${n} or ${n}.gz`);
    throw new FileFormatError(`MNIST training files not found in ${dir}: looked for ${missing.join(', and ')}`);
  }
  if (!testImg !== !testLab) {
    const [have, want] = testImg ? [testImg, names[3]] : [testLab!, names[2]];
    throw new FileFormatError(
      `${have} is present but its partner is missing in ${dir}: looked for ${want} or ${want}.gz (provide both test files or neither)`,
    );
  }
  return {
    train: loadPair(trainImg, trainLab),
    test: testImg && testLab ? loadPair(testImg, testLab) : null,
  };
}
