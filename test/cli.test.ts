// The `webgpu-nn` command end to end, as a user runs it: train on the embedded digits, then predict on PNGs
// this test writes, evaluate, interrupt and resume, and bad input. Needs the build (`npm test` makes it).
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadEmbeddedDigits } from '../src/data/dataset.js';
import { readSafetensors } from '../src/util/safetensors-file.js';
import { CLI, COLD_START_TIMEOUT, runCli } from './helpers/cli.js';

const run = (args: string[]) => runCli(args);

/** A digit as a PNG: 28x28 gray (white on black, like MNIST), or larger RGB dark-on-light (like paper). */
function digitPng(pixels: Uint8Array, opts: { scale: number; paper: boolean }): Buffer {
  const size = 28 * opts.scale;
  const png = new PNG({ width: size, height: size });
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = pixels[Math.floor(y / opts.scale) * 28 + Math.floor(x / opts.scale)];
      const g = opts.paper ? 255 - v : v;
      png.data.set([g, g, opts.paper ? Math.min(255, g + 10) : g, 255], 4 * (y * size + x));
    }
  }
  return PNG.sync.write(png);
}

const dir = mkdtempSync(join(tmpdir(), 'webgpu-nn-cli-'));
const runDir = join(dir, 'run');

describe('webgpu-nn train / predict / evaluate', () => {
  let train: Awaited<ReturnType<typeof run>>;
  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` (npm test does)`).toBe(true);
    train = await run(['train', '--limit', '2000', '--epochs', '3', '--lr', '0.05', '--momentum', '0.9', '--out', runDir]);
  }, COLD_START_TIMEOUT);

  it('trains on the embedded digits well above chance and writes history.json, loss.png, best.safetensors, config.json', () => {
    expect(train.code, train.err).toBe(0);
    expect(train.out).toMatch(/^adapter: /m);
    expect(train.out).toMatch(/^epoch +3 +train loss \d\.\d+ +val loss \d\.\d+ +val acc [\d.]+%/m);
    const history = JSON.parse(readFileSync(join(runDir, 'history.json'), 'utf8'));
    expect(history).toHaveLength(3);
    for (const h of history) for (const k of ['epoch', 'trainLoss', 'valLoss', 'valAcc', 'epochSeconds']) expect(h).toHaveProperty(k);
    // Chance is 10% (the 10 classes are balanced). With lr 0.05 and momentum 0.9, 3 epochs of 1,600 images
    // reached 91% here; a wrong gradient sign or a broken layer stays near chance. 75% leaves room for
    // seed-to-seed variation while failing anything that does not really learn.
    expect(Math.max(...history.map((h: { valAcc: number }) => h.valAcc))).toBeGreaterThan(0.75);
    expect(history[2].trainLoss).toBeLessThan(history[0].trainLoss);
    const png = PNG.sync.read(readFileSync(join(runDir, 'loss.png')));
    expect([png.width, png.height]).toEqual([800, 500]);
    const ckpt = readSafetensors(join(runDir, 'best.safetensors'));
    expect(ckpt.tensors['conv1.weight'].shape).toEqual([10, 1, 5, 5]);
    expect(ckpt.tensors['bn2.running_var'].shape).toEqual([20]);
    expect(ckpt.metadata.format).toBe('webgpu-nn MnistCnn');
    expect(JSON.parse(readFileSync(join(runDir, 'config.json'), 'utf8')).adapter.description).toBeTruthy();
  });

  it(
    'predict classifies PNGs it has never seen, gray 28x28 and RGB 56x56 dark-on-light alike',
    async () => {
      const digits = loadEmbeddedDigits(); // images after the first 2,000 were not in the training run
      const files: string[] = [];
      const labels: number[] = [];
      for (let i = 9000; i < 9010; i++) {
        const px = digits.images.subarray(i * 784, (i + 1) * 784);
        for (const [name, opts] of [
          ['gray', { scale: 1, paper: false }],
          ['paper', { scale: 2, paper: true }],
        ] as const) {
          const f = join(dir, `digit-${i}-${name}.png`);
          writeFileSync(f, digitPng(px, opts));
          files.push(f);
        }
        labels.push(digits.labels[i]);
      }
      const { code, out, err } = await run(['predict', '--model', runDir, ...files]);
      expect(code, err).toBe(0);
      const predicted = out
        .trim()
        .split('\n')
        .filter((l) => l.includes('digit-'))
        .map((l) => {
          const m = /: (\d) \(([\d.]+)%\)/.exec(l);
          expect(m, l).not.toBeNull();
          return Number(m![1]);
        });
      expect(predicted).toHaveLength(20);
      for (let i = 0; i < 10; i++) expect(predicted[2 * i + 1], `paper version of image ${i}`).toBe(predicted[2 * i]);
      const correct = labels.filter((l, i) => predicted[2 * i] === l).length;
      expect(correct).toBeGreaterThanOrEqual(6); // a ~90% model; chance would get 1
      expect(out).toMatch(/inverted: dark digit on light background/);
    },
    COLD_START_TIMEOUT,
  );

  it(
    'evaluate prints the accuracy and a confusion matrix',
    async () => {
      const { code, out, err } = await run(['evaluate', '--model', runDir]);
      expect(code, err).toBe(0);
      expect(out).toMatch(/accuracy on the validation split of the embedded digits .*: [\d.]+% \(\d+\/400\)/);
      expect(out).toMatch(/confusion matrix/);
      expect(out.split('\n').filter((l) => /^ +\d +( +\d+){10} +[\d.]+%$/.test(l))).toHaveLength(10);
    },
    COLD_START_TIMEOUT,
  );
});

describe('init-histograms', () => {
  it(
    'draws the input and every initialiser on shared axes in one figure, with the output statistics theory predicts',
    async () => {
      const out = join(dir, 'init');
      const r = await run(['init-histograms', '--out', out, '--batch', '32']);
      expect(r.code, r.err).toBe(0);
      expect(PNG.sync.read(readFileSync(join(out, 'init-histograms.png'))).width).toBe(1400);
      expect(existsSync(join(out, 'init-std.png'))).toBe(false); // one layer: nothing to follow
      const stat = (name: string) => {
        const m = new RegExp(`^${name} +mean +([\\d.-]+) +std +([\\d.-]+) +zeros +([\\d.]+)%`, 'm').exec(r.out);
        expect(m, name).not.toBeNull();
        return { mean: Number(m![1]), zeros: Number(m![3]) };
      };
      // Kaiming-normal keeps the pre-activation variance at 2·E[x²] = 2 for N(0, 1) inputs, so the ReLU output
      // has mean σ/√(2π) = √2/√(2π) ≈ 0.564 and is zero half the time.
      expect(Math.abs(stat('kaiming-normal').mean - Math.sqrt(2) / Math.sqrt(2 * Math.PI))).toBeLessThan(0.06);
      expect(Math.abs(stat('kaiming-normal').zeros - 50)).toBeLessThan(3);
      expect(stat('zeros').zeros).toBe(100);
      // N(0, 1) weights blow the scale up by √784 = 28: mean ≈ 28/√(2π) ≈ 11.2.
      expect(Math.abs(stat('normal').mean - 28 / Math.sqrt(2 * Math.PI))).toBeLessThan(1.5);
      const json = JSON.parse(readFileSync(join(out, 'init-histograms.json'), 'utf8'));
      expect(json.histograms.counts.input.reduce((a: number, b: number) => a + b, 0)).toBe(32 * 784);
    },
    COLD_START_TIMEOUT,
  );

  it(
    "--layers and --activation follow a deeper stack and draw each initialiser's std per layer",
    async () => {
      const out = join(dir, 'init-tanh');
      const r = await run(['init-histograms', '--out', out, '--batch', '8', '--layers', '4', '--activation', 'sigmoid']);
      expect(r.code, r.err).toBe(0);
      expect(PNG.sync.read(readFileSync(join(out, 'init-std.png'))).width).toBe(900);
      const json = JSON.parse(readFileSync(join(out, 'init-histograms.json'), 'utf8'));
      expect(json.layers['kaiming-normal']).toHaveLength(4);
      // Sigmoid outputs lie in (0, 1): every mean does.
      for (const l of json.layers['kaiming-normal']) expect(l.mean > 0 && l.mean < 1).toBe(true);
      const bad = await run(['init-histograms', '--activation', 'gelu']);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/--activation: expected one of relu, tanh, sigmoid, got "gelu"/);
    },
    COLD_START_TIMEOUT,
  );
});

describe('bn-gradients', () => {
  it(
    "draws the deep network's gradient histograms and records every step's weight-gradient norm of the CNN's layers",
    async () => {
      const out = join(dir, 'bng');
      const r = await run([
        'bn-gradients',
        '--depth',
        '12',
        '--width',
        '16',
        '--batch',
        '32',
        '--epochs',
        '1',
        '--limit',
        '640',
        '--out',
        out,
      ]);
      expect(r.code, r.err).toBe(0);
      const steps = Math.ceil(512 / 64); // 80% of 640 images, batch 64
      const json = JSON.parse(readFileSync(join(out, 'bn-gradients.json'), 'utf8'));
      expect(json.layer).toBe(6);
      for (const h of [json.withBn, json.withoutBn]) {
        expect(h.count).toBe(16 * 16);
        expect(h.counts.reduce((a: number, b: number) => a + b, 0)).toBe(h.count);
        expect(h.std).toBeGreaterThan(0);
      }
      for (const run of [json.cnn.withBn, json.cnn.withoutBn]) {
        for (const layer of ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight']) {
          expect(run.norms[layer], layer).toHaveLength(steps);
          for (const v of run.norms[layer]) expect(Number.isFinite(v) && v > 0).toBe(true);
        }
      }
      expect(PNG.sync.read(readFileSync(join(out, 'bn-gradients.png'))).width).toBe(1200);
      expect(PNG.sync.read(readFileSync(join(out, 'bn-gradients-cnn.png'))).width).toBe(1000);
    },
    COLD_START_TIMEOUT,
  );
});

describe('normalization and bn-benefits flags', () => {
  it(
    'each runs with its own flags and writes its PNG and JSON; bad lists are named',
    async () => {
      const norm = await run(['normalization', '--quick', '--steps', '40', '--out', join(dir, 'norm')]);
      expect(norm.code, norm.err).toBe(0);
      expect(norm.out).toMatch(/^raw +condition number +[\d.]+/m);
      expect(JSON.parse(readFileSync(join(dir, 'norm', 'normalization.json'), 'utf8')).problems[0].path).toHaveLength(41);
      const out = join(dir, 'bnb');
      const b = await run([
        'bn-benefits',
        '--epochs',
        '1',
        '--limit',
        '300',
        '--lrs',
        '0.1',
        '--inits',
        'pytorch',
        '--variants',
        'after,none',
        '--out',
        out,
      ]);
      expect(b.code, b.err).toBe(0);
      const json = JSON.parse(readFileSync(join(out, 'bn-benefits.json'), 'utf8'));
      expect(json.cells.map((c: { variant: string }) => c.variant)).toEqual(['after', 'none']);
      expect(PNG.sync.read(readFileSync(join(out, 'bn-benefits.png'))).width).toBe(1250);
      const bad = await run(['bn-benefits', '--inits', 'pytorch,he']);
      expect(bad.code).toBe(2);
      expect(bad.err).toMatch(/--inits: unknown he; choose from/);
    },
    COLD_START_TIMEOUT,
  );
});

describe('interrupt and resume', () => {
  it(
    'Ctrl-C saves history and the best checkpoint; --resume continues from the next epoch',
    async () => {
      const out = join(dir, 'interrupted');
      const first = await runCli(['train', '--limit', '640', '--epochs', '50', '--out', out], {
        interruptOn: { line: /^epoch +2 /, signal: 'SIGINT' },
      });
      expect(first.code, first.err).toBe(130);
      expect(first.out).toMatch(/continue with --resume/);
      const history = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8'));
      expect(history.length).toBeGreaterThanOrEqual(2);
      expect(existsSync(join(out, 'best.safetensors'))).toBe(true);
      const done = history.length;

      const second = await run(['train', '--resume', out, '--epochs', String(done + 2)]);
      expect(second.code, second.err).toBe(0);
      expect(second.out).toMatch(new RegExp(`resuming after epoch ${done}`));
      expect(second.out).toMatch(new RegExp(`^epoch +${done + 1} `, 'm'));
      const after = JSON.parse(readFileSync(join(out, 'history.json'), 'utf8'));
      expect(after.map((h: { epoch: number }) => h.epoch)).toEqual(Array.from({ length: done + 2 }, (_, i) => i + 1));
    },
    COLD_START_TIMEOUT,
  );
});

describe('--data DIR with MNIST IDX files', () => {
  /** An IDX file: big-endian header (magic 0x0000080N: unsigned bytes, N dimensions), then the bytes. */
  const idx = (dims: number[], data: Uint8Array) => {
    const header = Buffer.alloc(4 + 4 * dims.length);
    header.writeUInt32BE(0x800 + dims.length, 0);
    for (const [i, d] of dims.entries()) header.writeUInt32BE(d, 4 + 4 * i);
    return Buffer.concat([header, data]);
  };

  it(
    'trains on the train-* files, reports test accuracy from t10k-*, and evaluate uses the test set',
    async () => {
      const digits = loadEmbeddedDigits();
      const data = join(dir, 'mnist');
      mkdirSync(data);
      const part = (from: number, n: number) => ({
        images: digits.images.subarray(from * 784, (from + n) * 784),
        labels: digits.labels.subarray(from, from + n),
      });
      const train = part(0, 1000),
        test = part(9000, 300);
      // Gzipped training files and raw test files: both forms a full MNIST download comes in.
      writeFileSync(join(data, 'train-images-idx3-ubyte.gz'), gzipSync(idx([1000, 28, 28], train.images)));
      writeFileSync(join(data, 'train-labels-idx1-ubyte.gz'), gzipSync(idx([1000], train.labels)));
      writeFileSync(join(data, 't10k-images-idx3-ubyte'), idx([300, 28, 28], test.images));
      writeFileSync(join(data, 't10k-labels-idx1-ubyte'), idx([300], test.labels));
      const out = join(dir, 'idx-run');
      const r = await run(['train', '--data', data, '--epochs', '2', '--lr', '0.05', '--momentum', '0.9', '--out', out]);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(new RegExp(`data: ${data.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 800 train, 200 validation, 300 test`));
      expect(r.out).toMatch(/^test: loss [\d.]+, accuracy [\d.]+% on 300 images$/m);
      const ev = await run(['evaluate', '--model', out]);
      expect(ev.code, ev.err).toBe(0);
      expect(ev.out).toMatch(/accuracy on the test set of .*: [\d.]+% \(\d+\/300\)/);

      writeFileSync(join(data, 't10k-labels-idx1-ubyte'), idx([299], test.labels.subarray(0, 299)));
      const bad = await run(['train', '--data', data, '--epochs', '1']);
      expect(bad.code).toBe(1);
      expect(bad.err).toMatch(/t10k/); // names the mismatched files
    },
    COLD_START_TIMEOUT,
  );
});

describe('divergence', () => {
  it(
    'a NaN loss stops the run with a message and exit status 1, keeping the history',
    async () => {
      const out = join(dir, 'diverged');
      // N(0, 1) weights without batch norm and an absurd learning rate overflow float32 within the first epoch.
      const r = await run(['train', '--limit', '640', '--epochs', '3', '--lr', '1e30', '--no-bn', '--init', 'normal', '--out', out]);
      expect(r.code, r.err).toBe(1);
      expect(r.out).toMatch(/epoch 1: the loss is (NaN|Infinity|-Infinity); stopping\. Lower --lr/);
      expect(JSON.parse(readFileSync(join(out, 'history.json'), 'utf8'))).toHaveLength(1);
      expect(r.out).not.toMatch(/best\.safetensors/); // no epoch was good, so there is no best checkpoint to claim
    },
    COLD_START_TIMEOUT,
  );
});

describe('bad input', () => {
  it(
    'names the flag, the file or the directory',
    async () => {
      const lr = await run(['train', '--lr', 'abc']);
      expect(lr.code).toBe(2);
      expect(lr.err).toMatch(/--lr: expected a number > 0, got "abc"/);
      const missing = await run(['train', '--data', join(dir, 'no-such-dir')]);
      expect(missing.code).toBe(1);
      expect(missing.err).toContain('no-such-dir');
      const notPng = join(dir, 'not-a-png.png');
      writeFileSync(notPng, 'hello');
      const pred = await run(['predict', '--model', runDir, notPng]);
      expect(pred.code).toBe(1);
      expect(pred.err).toMatch(/not-a-png\.png: not a PNG image/);
      const resume = await run(['train', '--resume', join(dir, 'nothing-here')]);
      expect(resume.code).toBe(2);
      expect(resume.err).toMatch(/--resume .*nothing-here: no such directory/);
      mkdirSync(join(dir, 'empty-dir'));
      const empty = await run(['train', '--resume', join(dir, 'empty-dir')]);
      expect(empty.code).toBe(2);
      expect(empty.err).toMatch(/--resume .*empty-dir.*last\.safetensors is missing, and so is config\.json/);
      const before = readFileSync(join(runDir, 'history.json'), 'utf8');
      const again = await run(['train', '--out', runDir, '--epochs', '1']);
      expect(again.code).toBe(2);
      expect(again.err).toMatch(
        /--out .* already holds a run \(history\.json, best\.safetensors, last\.safetensors\); continue it with --resume/,
      );
      expect(readFileSync(join(runDir, 'history.json'), 'utf8')).toBe(before); // untouched
      const unknown = await run(['trian']);
      expect(unknown.code).toBe(2);
      expect(unknown.err).toMatch(/unknown command "trian"/);
    },
    COLD_START_TIMEOUT,
  );
});
