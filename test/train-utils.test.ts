import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Dataset } from '../src/data/dataset.js';
import { normalizedBatch } from '../src/data/digits.js';
import { readDigitPng } from '../src/data/images.js';
import { pixelStats, splitTrainVal } from '../src/data/split.js';
import { UsageError } from '../src/errors.js';
import { EarlyStopping } from '../src/train/early-stopping.js';
import { writeFileAtomic } from '../src/util/files.js';
import { formatHelp, parseFlags, parseFlagsOrHelp } from '../src/util/flags.js';
import { formatDuration, ProgressBar } from '../src/util/progress.js';
import { mulberry32, shuffleInPlace } from '../src/util/random.js';

const tmp = mkdtempSync(join(tmpdir(), 'train-utils-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('random', () => {
  it('mulberry32 is deterministic per seed and in [0, 1)', () => {
    const a = mulberry32(42),
      b = mulberry32(42),
      c = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b()));
    expect(xs.slice(0, 5)).not.toEqual(Array.from({ length: 5 }, () => c()));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
  });
  it('shuffleInPlace permutes arrays and typed arrays', () => {
    const arr = shuffleInPlace(
      Array.from({ length: 50 }, (_, i) => i),
      mulberry32(1),
    );
    expect([...arr].sort((x, y) => x - y)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(arr).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const typed = shuffleInPlace(Uint32Array.from(arr.keys()), mulberry32(1));
    expect(Array.from(typed)).toEqual(arr);
  });
});

describe('splitTrainVal', () => {
  it('splits into disjoint sets covering every index, repeatably by seed', () => {
    const { train, val } = splitTrainVal(1000, 0.1, 7);
    expect(val.length).toBe(100);
    expect(train.length).toBe(900);
    const all = new Set([...train, ...val]);
    expect(all.size).toBe(1000);
    expect(Math.max(...all)).toBe(999);
    const again = splitTrainVal(1000, 0.1, 7);
    expect(again.val).toEqual(val);
    expect(again.train).toEqual(train);
    expect(splitTrainVal(1000, 0.1, 8).val).not.toEqual(val);
  });
  it('keeps at least one image on each side', () => {
    expect(splitTrainVal(10, 0.01, 1).val.length).toBe(1);
    expect(splitTrainVal(10, 0.99, 1).train.length).toBe(1);
  });
  it('rejects fractions outside (0, 1) naming --val-split', () => {
    for (const f of [0, 1, -0.1, 1.5, NaN]) {
      expect(() => splitTrainVal(100, f, 1)).toThrowError(UsageError);
      expect(() => splitTrainVal(100, f, 1)).toThrow(/--val-split/);
    }
  });
});

describe('pixelStats', () => {
  it('computes mean and std over the selected images in [0, 1] units', () => {
    const ds: Dataset = { images: new Uint8Array(3 * 4), labels: new Uint8Array(3), count: 3, rows: 2, cols: 2 };
    ds.images.set([0, 255, 0, 255], 0); // image 0: mean 0.5, std 0.5
    ds.images.set([255, 255, 255, 255], 4); // image 1: all ones
    ds.images.set([51, 51, 51, 51], 8); // image 2: all 0.2
    const s0 = pixelStats(ds, [0]);
    expect(s0.mean).toBeCloseTo(0.5, 12);
    expect(s0.std).toBeCloseTo(0.5, 12);
    const s12 = pixelStats(ds, Uint32Array.from([1, 2]));
    expect(s12.mean).toBeCloseTo(0.6, 12);
    expect(s12.std).toBeCloseTo(0.4, 12);
  });
});

describe('EarlyStopping', () => {
  it('stops after `patience` epochs without improvement and reports the best epoch', () => {
    const es = new EarlyStopping({ patience: 3 });
    const losses = [1.0, 0.8, 0.9, 0.7, 0.75, 0.71, 0.72, 0.5];
    let stopAt = 0;
    const improved: boolean[] = [];
    for (const [i, l] of losses.entries()) {
      const r = es.step(l);
      improved.push(r.improved);
      if (r.stop) {
        stopAt = i + 1;
        break;
      }
    }
    expect(improved).toEqual([true, true, false, true, false, false, false]);
    expect(stopAt).toBe(7);
    expect(es.bestEpoch).toBe(4);
    expect(es.bestValue).toBe(0.7);
  });
  it('requires an improvement larger than minDelta, ignores NaN, supports max mode', () => {
    const es = new EarlyStopping({ patience: 2, minDelta: 0.1 });
    expect(es.step(1).improved).toBe(true);
    expect(es.step(0.95).improved).toBe(false);
    expect(es.step(NaN)).toEqual({ improved: false, stop: true });
    expect(es.bestEpoch).toBe(1);
    const acc = new EarlyStopping({ patience: 5, mode: 'max' });
    expect([0.5, 0.6, 0.55, Infinity].map((v) => acc.step(v).improved)).toEqual([true, true, false, false]);
    expect(acc.bestEpoch).toBe(2);
    expect(acc.counter).toBe(2);
  });
  it('round-trips its state through JSON for resume', () => {
    const es = new EarlyStopping({ patience: 4 });
    expect(EarlyStopping.from(JSON.parse(JSON.stringify(es.state()))).step(3).improved).toBe(true);
    for (const v of [2, 1, 1.5, 1.2]) es.step(v);
    const resumed = EarlyStopping.from(JSON.parse(JSON.stringify(es.state())));
    expect(resumed.state()).toEqual(es.state());
    expect(resumed.step(1.1)).toEqual({ improved: false, stop: false });
    expect(resumed.step(1.3)).toEqual({ improved: false, stop: true });
    expect(resumed.bestEpoch).toBe(2);
  });
  it('rejects a bad patience naming the flag', () => {
    expect(() => new EarlyStopping({ patience: 0 })).toThrow(/--patience/);
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file and leaves no temp files', () => {
    const p = join(tmp, 'history.json');
    writeFileAtomic(p, '{"a":1}');
    writeFileAtomic(p, new Uint8Array([123, 125]));
    expect(readFileSync(p, 'utf8')).toBe('{}');
    expect(readdirSync(tmp).filter((f) => f.startsWith('history.json'))).toEqual(['history.json']);
  });
  it('throws when the directory does not exist, touching nothing', () => {
    const before = readdirSync(tmp).sort();
    expect(() => writeFileAtomic(join(tmp, 'missing-dir', 'history.json'), 'x')).toThrow();
    expect(readFileSync(join(tmp, 'history.json'), 'utf8')).toBe('{}');
    expect(existsSync(join(tmp, 'missing-dir'))).toBe(false);
    expect(readdirSync(tmp).sort()).toEqual(before);
  });
  it('cleans up and leaves the target alone when the rename fails', () => {
    // Renaming a file over a non-empty directory fails after the temp file has been written and synced.
    const dir = join(tmp, 'target-is-dir');
    mkdirSync(join(dir, 'child'), { recursive: true });
    expect(() => writeFileAtomic(dir, 'data')).toThrow();
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
    expect(readdirSync(dir)).toEqual(['child']);
  });
});

describe('ProgressBar', () => {
  const sink = (isTTY: boolean) => {
    const out: string[] = [];
    return {
      out,
      stream: {
        isTTY,
        columns: 120,
        write: (s: string) => {
          out.push(s);
          return true;
        },
      },
    };
  };
  it('redraws one line with percentage, counts, elapsed, ETA and rate on a TTY', () => {
    let t = 0;
    const { out, stream } = sink(true);
    const bar = new ProgressBar({ total: 100, label: 'Epoch progress', unit: 'epoch', stream, now: () => t });
    t = 133_000 * 1.0;
    bar.update(37, 'loss 0.123');
    const line = out.at(-1)!;
    expect(line.startsWith('\r')).toBe(true);
    expect(line).toContain('Epoch progress  37%|');
    expect(line).toContain('| 37/100 [02:13<03:46, 3.6s/epoch] loss 0.123');
    expect(line).toMatch(/█{5,}/);
    bar.log('epoch 37 done');
    expect(out.at(-1)).toContain('epoch 37 done\n');
    expect(out.at(-1)).toContain('37/100');
    t = 360_000;
    bar.update(100);
    bar.finish();
    expect(out.at(-1)).toContain('100%|');
    expect(out.at(-1)!.endsWith('\n')).toBe(true);
  });
  it('prints only log lines when not a TTY', () => {
    const { out, stream } = sink(false);
    const bar = new ProgressBar({ total: 10, label: 'x', stream });
    bar.update(5);
    bar.log('hello');
    bar.finish();
    expect(out).toEqual(['hello\n']);
  });
  it('formats durations like tqdm', () => {
    expect(formatDuration(5)).toBe('00:05');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(NaN)).toBe('?');
  });
});

describe('parseFlags', () => {
  const spec = {
    epochs: { type: 'int', default: 10, min: 1, help: 'Number of epochs' },
    lr: { type: 'float', default: 0.01, min: 0, exclusiveMin: true, help: 'Learning rate' },
    'val-split': { type: 'float', default: 0.1, min: 0, max: 1, help: 'Validation fraction' },
    optimizer: { type: 'string', default: 'adam', choices: ['sgd', 'adam'], help: 'Optimizer' },
    out: { type: 'string', help: 'Output directory' },
    bn: { type: 'bool', default: true, help: 'Batch normalisation' },
    verbose: { type: 'bool', help: 'More output' },
  } as const;

  it('parses values, defaults, --no- booleans and positionals', () => {
    const f = parseFlags(['data', '--epochs', '5', '--lr=0.5', '--no-bn', '--optimizer', 'sgd', '--verbose', '--', '--raw'], spec, 'train');
    expect(f).toEqual({
      _: ['data', '--raw'],
      help: false,
      epochs: 5,
      lr: 0.5,
      valSplit: 0.1,
      optimizer: 'sgd',
      out: undefined,
      bn: false,
      verbose: true,
      given: new Set(['epochs', 'lr', 'bn', 'optimizer', 'verbose']),
    });
    const epochs: number = f.epochs;
    const out: string | undefined = f.out;
    expect([epochs, out]).toEqual([5, undefined]);
    expect(parseFlags(['--bn=false', '--val-split', '0.25', '-h'], spec, 'train')).toMatchObject({ bn: false, valSplit: 0.25, help: true });
  });

  const cases: [string[], RegExp][] = [
    [['--lr', 'abc'], /--lr: expected a number > 0, got "abc"/],
    [['--lr', '0'], /--lr: expected a number > 0, got "0"/],
    [['--epochs', '1.5'], /--epochs: expected an integer >= 1, got "1.5"/],
    [['--val-split=2'], /--val-split: expected a number >= 0 and <= 1, got "2"/],
    [['--optimizer', 'rmsprop'], /--optimizer: expected one of sgd, adam, got "rmsprop"/],
    [['--epochs'], /--epochs: expected an integer >= 1, but no value was given/],
    [['--out', '--lr', '1'], /--out: expected a value, but no value was given/],
    [['--epoch', '3'], /unknown flag --epoch \(did you mean --epochs\?\)/],
    [['--no-lr'], /unknown flag --no-lr/],
    [['-x'], /unknown flag -x/],
    [['--bn=maybe'], /--bn: expected true or false, got "maybe"/],
  ];
  it.each(cases)('rejects %j', (argv, re) => {
    let err: unknown;
    try {
      parseFlags(argv, spec, 'train');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(re);
    expect((err as Error).message).toContain('webgpu-nn train --help');
  });

  it('formats help with types, defaults and ranges', () => {
    const help = formatHelp('train', spec, 'Train the MNIST CNN.');
    expect(help).toContain('Usage: webgpu-nn train [flags]');
    expect(help).toContain('Train the MNIST CNN.');
    expect(help).toMatch(/--epochs <int>\s+Number of epochs \(default: 10; >= 1\)/);
    expect(help).toMatch(/--optimizer <sgd\|adam>\s+Optimizer \(default: adam\)/);
    expect(help).toMatch(/--\[no-\]bn\s+Batch normalisation \(default: true\)/);
    expect(help).toMatch(/-h, --help\s+Show this help/);
  });

  const bench = { name: 'bench:x', usage: 'npm run bench:x --' };
  const repeatable = {
    filter: { type: 'string', repeat: true, help: 'Substring' },
    quick: { type: 'bool', default: false, help: 'Fewer samples' },
  } as const;

  it('collects a repeated flag into a list, empty by default', () => {
    expect(parseFlags([], repeatable, bench).filter).toEqual([]);
    const f = parseFlags(['--filter', 'a', '--quick', '--filter=B'], repeatable, bench);
    const list: string[] = f.filter;
    expect(list).toEqual(['a', 'B']);
    expect(formatHelp(bench, repeatable, 'X.')).toMatch(/--filter <value>\s+Substring \(may be repeated\)/);
  });

  it('names another program in errors and help', () => {
    expect(() => parseFlags(['--nope'], repeatable, bench)).toThrow(/^bench:x: unknown flag --nope\. Run "npm run bench:x -- --help"/);
    expect(formatHelp(bench, repeatable, 'X.')).toContain('Usage: npm run bench:x -- [flags]');
  });

  it('parseFlagsOrHelp prints --help and returns null, and refuses stray arguments unless allowed', () => {
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(parseFlagsOrHelp(['-h'], spec, 'train', 'Train the MNIST CNN.')).toBeNull();
      expect(log).toHaveBeenCalledWith(formatHelp('train', spec, 'Train the MNIST CNN.'));
    } finally {
      log.mockRestore();
    }
    expect(() => parseFlagsOrHelp(['data'], spec, 'train', 'T.', { hint: '; use --data' })).toThrow(UsageError);
    expect(() => parseFlagsOrHelp(['data'], spec, 'train', 'T.', { hint: '; use --data' })).toThrow(
      'webgpu-nn train: unexpected argument "data"; use --data',
    );
    expect(parseFlagsOrHelp(['a.png', '--epochs', '3'], spec, 'predict', 'P.', { positionals: true })).toMatchObject({
      _: ['a.png'],
      epochs: 3,
    });
  });
});

describe('digit PNGs', () => {
  /** A PNG of the 28x28 gray image `px` (0..255), each pixel scaled up to a `scale`-square, optionally dark on light. */
  const png = (px: Uint8Array, scale: number, paper: boolean) => {
    const size = 28 * scale;
    const image = new PNG({ width: size, height: size });
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = px[Math.floor(y / scale) * 28 + Math.floor(x / scale)];
        image.data.set(paper ? [255 - v, 255 - v, 255 - v, 255] : [v, v, v, 255], 4 * (y * size + x));
      }
    }
    const file = join(tmp, `digit-${scale}-${paper}.png`);
    writeFileAtomic(file, PNG.sync.write(image));
    return file;
  };
  // A bright square on black, like an MNIST stroke.
  const px = Uint8Array.from({ length: 784 }, (_, i) => (i % 28 >= 10 && i % 28 < 18 && i >= 280 && i < 504 ? 255 : 0));

  it('reads white-on-black 28x28 as it is, and a 2x larger dark-on-light image averaged down and inverted', () => {
    const plain = readDigitPng(png(px, 1, false));
    expect(plain.inverted).toBe(false);
    expect(Array.from(plain.pixels)).toEqual(Array.from(px, (v) => v / 255));
    const paper = readDigitPng(png(px, 2, true));
    expect(paper.inverted).toBe(true);
    expectCloseArray(
      paper.pixels,
      Array.from(px, (v) => v / 255),
      1e-6,
    );
  });

  it("normalizedBatch stacks images with the run's mean and std", () => {
    const a = new Float32Array(784).fill(0.5),
      b = new Float32Array(784).fill(1);
    const batch = normalizedBatch([a, b], { mean: 0.25, std: 0.5 });
    expect(batch.length).toBe(2 * 784);
    expect([batch[0], batch[783], batch[784], batch[2 * 784 - 1]]).toEqual([0.5, 0.5, 1.5, 1.5]);
  });

  it('names the file that is not a PNG', () => {
    const file = join(tmp, 'not-a.png');
    writeFileAtomic(file, 'hello');
    expect(() => readDigitPng(file)).toThrow(/not-a\.png: not a PNG image/);
  });
});

function expectCloseArray(got: ArrayLike<number>, want: ArrayLike<number>, tol: number): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) if (Math.abs(got[i] - want[i]) > tol) expect(got[i], `pixel ${i}`).toBeCloseTo(want[i], 6);
}
