import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { loadEmbeddedDigits } from '../src/data/dataset.js';
import { loadMnistDir, parseIdx, readIdxFile } from '../src/data/idx.js';
import { FileFormatError } from '../src/errors.js';

const tmp = mkdtempSync(join(tmpdir(), 'train-idx-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function idx(dims: number[], data: Uint8Array, type = 0x08): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const view = new DataView(out.buffer);
  out[2] = type;
  out[3] = dims.length;
  for (const [i, d] of dims.entries()) view.setUint32(4 + 4 * i, d);
  out.set(data, 4 + 4 * dims.length);
  return out;
}

const N = 5;
const images = Uint8Array.from({ length: N * 784 }, (_, i) => (i * 7) % 256);
const labels = Uint8Array.from([3, 1, 4, 1, 5]);

function mnistDir(name: string, files: Record<string, Uint8Array>): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const [f, bytes] of Object.entries(files)) writeFileSync(join(dir, f), bytes);
  return dir;
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

describe('parseIdx', () => {
  it('reads the big-endian header', () => {
    const bytes = idx([N, 28, 28], images);
    expect(bytes.subarray(0, 8)).toEqual(Uint8Array.from([0, 0, 8, 3, 0, 0, 0, 5]));
    const { dims, data } = parseIdx(bytes, 'a.idx');
    expect(dims).toEqual([N, 28, 28]);
    expect(data).toEqual(images);
  });
  it.each([
    ['bad magic', Uint8Array.from([0x50, 0x4b, 3, 4, 0, 0, 0, 0]), /a\.idx: not an IDX file: expected magic .* found 0x504b0304/],
    [
      'float type',
      idx([1], new Uint8Array(4), 0x0d),
      /a\.idx: unsupported IDX data type: expected 0x08 \(unsigned byte\), found 0x0d \(float\)/,
    ],
    ['truncated header', Uint8Array.from([0, 0, 8, 3, 0, 0]), /a\.idx: truncated IDX header: expected 16 bytes/],
    [
      'truncated data',
      idx([N, 28, 28], images).subarray(0, 100),
      /a\.idx: truncated IDX data: dimensions \[5, 28, 28\] need 3920 bytes, found 84/,
    ],
    ['trailing bytes', idx([2], Uint8Array.from([1, 2, 3])), /a\.idx: 1 unexpected trailing bytes/],
  ])('rejects %s naming the file', (_, bytes, re) => {
    const err = errorOf(() => parseIdx(bytes, 'a.idx'));
    expect(err).toBeInstanceOf(FileFormatError);
    expect(err.message).toMatch(re);
  });
});

describe('readIdxFile / loadMnistDir', () => {
  it('loads raw and gzipped files with and without the test pair', () => {
    const raw = mnistDir('raw', {
      'train-images-idx3-ubyte': idx([N, 28, 28], images),
      'train-labels-idx1-ubyte': idx([N], labels),
    });
    const { train, test } = loadMnistDir(raw);
    expect(test).toBeNull();
    expect(train).toMatchObject({ count: N, rows: 28, cols: 28 });
    expect(train.images).toEqual(images);
    expect(train.labels).toEqual(labels);

    const gz = mnistDir('gz', {
      'train-images-idx3-ubyte.gz': gzipSync(idx([N, 28, 28], images)),
      'train-labels-idx1-ubyte.gz': gzipSync(idx([N], labels)),
      't10k-images-idx3-ubyte.gz': gzipSync(idx([2, 28, 28], images.subarray(0, 2 * 784))),
      't10k-labels-idx1-ubyte': idx([2], labels.subarray(0, 2)),
    });
    const both = loadMnistDir(gz);
    expect(both.train.images).toEqual(images);
    expect(both.test?.count).toBe(2);
    expect(both.test?.labels).toEqual(Uint8Array.from([3, 1]));
  });

  it('reports a missing training file with the names looked for and the directory', () => {
    const dir = mnistDir('missing', { 'train-images-idx3-ubyte': idx([N, 28, 28], images) });
    const err = errorOf(() => loadMnistDir(dir));
    expect(err).toBeInstanceOf(FileFormatError);
    expect(err.message).toContain('train-labels-idx1-ubyte or train-labels-idx1-ubyte.gz');
    expect(err.message).toContain(dir);
    expect(errorOf(() => loadMnistDir(join(tmp, 'nope'))).message).toContain(join(tmp, 'nope'));
  });

  it('requires both test files or neither', () => {
    const dir = mnistDir('half-test', {
      'train-images-idx3-ubyte': idx([N, 28, 28], images),
      'train-labels-idx1-ubyte': idx([N], labels),
      't10k-images-idx3-ubyte': idx([N, 28, 28], images),
    });
    expect(errorOf(() => loadMnistDir(dir)).message).toMatch(
      /t10k-images-idx3-ubyte is present .* t10k-labels-idx1-ubyte or t10k-labels-idx1-ubyte\.gz/,
    );
  });

  it('reports count mismatches naming both files, and labels above 9', () => {
    const dir = mnistDir('mismatch', {
      'train-images-idx3-ubyte': idx([N, 28, 28], images),
      'train-labels-idx1-ubyte': idx([4], labels.subarray(0, 4)),
    });
    const err = errorOf(() => loadMnistDir(dir));
    expect(err.message).toContain(join(dir, 'train-images-idx3-ubyte'));
    expect(err.message).toContain(join(dir, 'train-labels-idx1-ubyte'));
    expect(err.message).toMatch(/5 images .* 4 labels/);

    const bad = mnistDir('bad-label', {
      'train-images-idx3-ubyte': idx([N, 28, 28], images),
      'train-labels-idx1-ubyte': idx([N], Uint8Array.from([1, 2, 10, 3, 4])),
    });
    expect(errorOf(() => loadMnistDir(bad)).message).toMatch(/train-labels-idx1-ubyte: label 10 at index 2 is out of range/);
  });

  it('names the file for corrupt gzip, a broken header and images of the wrong size', () => {
    const file = join(tmp, 'corrupt.gz');
    writeFileSync(file, Uint8Array.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
    const err = errorOf(() => readIdxFile(file));
    expect(err).toBeInstanceOf(FileFormatError);
    expect(err.message).toMatch(/corrupt\.gz: corrupt gzip data/);
    const dir = mnistDir('wrong-size', {
      'train-images-idx3-ubyte': idx([1, 8, 8], new Uint8Array(64)),
      'train-labels-idx1-ubyte': idx([1], Uint8Array.from([1])),
    });
    expect(errorOf(() => loadMnistDir(dir)).message).toMatch(
      /train-images-idx3-ubyte: expected MNIST images of shape \[N, 28, 28\], found \[1, 8, 8\]/,
    );
  });
});

describe('loadEmbeddedDigits', () => {
  it('loads the 10,000 bundled digits deterministically in a class-balanced order', () => {
    const ds = loadEmbeddedDigits();
    expect(ds).toMatchObject({ count: 10000, rows: 28, cols: 28 });
    expect(ds.images.length).toBe(10000 * 784);
    expect(ds.labels.length).toBe(10000);
    // Pinned so that a change to the order (and so to every --limit run) is noticed.
    expect(Array.from(ds.labels.subarray(0, 20))).toEqual([4, 2, 1, 9, 8, 0, 5, 7, 6, 3, 1, 6, 9, 3, 2, 4, 5, 0, 7, 7]);
    expect(new Set(ds.labels)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    expect(Math.max(...ds.images.subarray(0, 784 * 50))).toBe(255);
    expect(Math.min(...ds.images.subarray(0, 784 * 50))).toBe(0);
    // Every image has ink, and a real digit is mostly background.
    const ink = ds.images.subarray(0, 784).filter((v) => v > 0).length;
    expect(ink).toBeGreaterThan(40);
    expect(ink).toBeLessThan(500);

    const small = loadEmbeddedDigits(200);
    expect(small.count).toBe(200);
    expect(small.labels).toEqual(ds.labels.subarray(0, 200));
    expect(small.images).toEqual(ds.images.subarray(0, 200 * 784));
    const perClass = Array.from({ length: 10 }, (_, d) => small.labels.filter((l) => l === d).length);
    expect(Math.min(...perClass)).toBeGreaterThanOrEqual(14);
    expect(Math.max(...perClass)).toBeLessThanOrEqual(26);
    // Returned arrays are copies: mutating one load does not affect the next.
    small.images.fill(0);
    expect(loadEmbeddedDigits(200).images).toEqual(ds.images.subarray(0, 200 * 784));
  });
});
