// Seeded train/validation splits, prefixes (--limit) and pixel statistics of an in-memory Dataset. No file or
// Node API here: the web page splits the embedded digits with the same code as `webgpu-nn train`.
import { DataError, UsageError } from '../errors.js';
import { mulberry32, shuffleInPlace } from '../util/random.js';
import type { Dataset } from './dataset.js';

/** Seeded random split of indices 0..count-1; the validation part has round(count*valFraction) items (at least 1, leaving at least 1). */
export function splitTrainVal(count: number, valFraction: number, seed: number): { train: Uint32Array; val: Uint32Array } {
  if (!(valFraction > 0 && valFraction < 1)) {
    throw new UsageError(`--val-split: expected a fraction between 0 and 1 (exclusive), got ${valFraction}`);
  }
  if (!Number.isInteger(count) || count < 2)
    throw new DataError(`cannot split ${count} images into training and validation sets; need at least 2`);
  const perm = new Uint32Array(count);
  for (let i = 0; i < count; i++) perm[i] = i;
  shuffleInPlace(perm, mulberry32(seed));
  const nVal = Math.min(count - 1, Math.max(1, Math.round(count * valFraction)));
  return { train: perm.slice(nVal), val: perm.slice(0, nVal) };
}

/** Mean and standard deviation of the pixels (scaled to [0,1]) of the images at `indices`. */
export function pixelStats(ds: Dataset, indices: ArrayLike<number>): { mean: number; std: number } {
  if (indices.length === 0) throw new DataError('pixelStats: no images selected');
  const size = ds.rows * ds.cols;
  // A 256-bin histogram keeps the sums exact integers however many pixels there are.
  const hist = new Float64Array(256);
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k];
    if (!(i >= 0 && i < ds.count)) throw new DataError(`pixelStats: index ${i} out of range for ${ds.count} images`);
    const img = ds.images.subarray(i * size, (i + 1) * size);
    for (let p = 0; p < size; p++) hist[img[p]]++;
  }
  let n = 0,
    sum = 0;
  for (let v = 0; v < 256; v++) {
    n += hist[v];
    sum += hist[v] * v;
  }
  const mean = sum / n;
  let sq = 0;
  for (let v = 0; v < 256; v++) sq += hist[v] * (v - mean) ** 2;
  return { mean: mean / 255, std: Math.sqrt(sq / n) / 255 };
}

/** The first n images (all of them when n ≥ count), as views: --limit N. */
export function takeFirst(ds: Dataset, n: number): Dataset {
  const count = Math.min(n, ds.count);
  const px = ds.rows * ds.cols;
  return { ...ds, images: ds.images.subarray(0, count * px), labels: ds.labels.subarray(0, count), count };
}
