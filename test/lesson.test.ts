// `webgpu-nn lesson --quick` end to end: the page and every experiment's files, and each of the lesson's claims
// checked as a property of the numbers this machine measured (never as fixed values). One run serves all.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { beforeAll, describe, expect, it } from 'vitest';

const CLI = join(import.meta.dirname, '..', 'dist', 'src', 'cli.js');
const out = join(mkdtempSync(join(tmpdir(), 'webgpu-nn-lesson-')), 'lesson');
const json = (path: string) => JSON.parse(readFileSync(join(out, path), 'utf8'));

let result: { code: number | null; out: string; err: string };
beforeAll(async () => {
  expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` (npm test does)`).toBe(true);
  result = await new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'lesson', '--quick', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let o = '',
      e = '';
    child.stdout.on('data', (d: Buffer) => (o += d));
    child.stderr.on('data', (d: Buffer) => (e += d));
    child.on('close', (code) => resolve({ code, out: o, err: e }));
  });
}, 900_000);

describe('webgpu-nn lesson --quick', () => {
  it('writes one offline page with every picture inline, the claims, the numbers and the adapter', () => {
    expect(result.code, result.err).toBe(0);
    const html = readFileSync(join(out, 'index.html'), 'utf8');
    const adapter = /^adapter: (.*)$/m.exec(result.out)![1];
    expect(html).toContain(adapter.replace(/&/g, '&amp;'));
    expect((html.match(/<svg /g) ?? []).length).toBeGreaterThanOrEqual(8);
    expect(html).toContain('data:image/png;base64,');
    // Offline: nothing is fetched (the only URL is the SVG namespace).
    expect(html.replace(/xmlns(:xlink)?="http:\/\/www\.w3\.org\/[^"]*"/g, '')).not.toMatch(/(src|href)="https?:/);
    for (const heading of [
      'Input normalisation',
      'Parameter initialisation',
      'Batch norm and the gradients',
      'Faster convergence',
      'Training',
    ])
      expect(html).toContain(heading);
    for (const [file, width] of [
      ['normalization/normalization.png', 1200],
      ['init-histograms/init-histograms-1-layer.png', 1400],
      ['init-histograms/init-std-relu.png', 900],
      ['init-histograms/init-std-tanh.png', 900],
      ['bn-gradients/bn-gradients.png', 1200],
      ['bn-gradients/bn-gradients-cnn.png', 1000],
      ['bn-benefits/bn-benefits.png', 1250],
      ['train/loss.png', 800],
    ] as const)
      expect(PNG.sync.read(readFileSync(join(out, file))).width, file).toBe(width);
  });

  it('input normalisation: the standardised problem is better conditioned and SGD gets within 1% of its minimum in fewer steps', () => {
    const [raw, std] = json('normalization/normalization.json').problems;
    expect(std.conditionNumber).toBeLessThan(raw.conditionNumber / 10);
    expect(std.stepsTo1Percent).not.toBeNull();
    expect(std.stepsTo1Percent).toBeLessThan(raw.stepsTo1Percent ?? Number.POSITIVE_INFINITY);
    // The zig-zag: on the raw inputs the steep coordinate (w2) changes direction at most steps at the start.
    const w2 = raw.path.slice(0, 30).map((p: number[]) => p[1]);
    let turns = 0;
    for (let t = 2; t < w2.length; t++) if ((w2[t] - w2[t - 1]) * (w2[t - 1] - w2[t - 2]) < 0) turns++;
    expect(turns).toBeGreaterThan(15);
  });

  it('initialisation: He keeps a ReLU stack within a small factor, N(0, 1) explodes, small ones vanish; Xavier keeps tanh alive', () => {
    const { relu, tanh, oneLayer } = json('init-histograms/init-histograms.json');
    const ratio = (r: { layers: Record<string, { std: number }[]> }, name: string) => r.layers[name].at(-1)!.std / r.layers[name][0].std;
    expect(ratio(relu, 'kaiming-normal')).toBeGreaterThan(1 / 3);
    expect(ratio(relu, 'kaiming-normal')).toBeLessThan(3);
    expect(ratio(relu, 'normal')).toBeGreaterThan(1e3);
    expect(ratio(relu, 'pytorch')).toBeLessThan(1e-2);
    expect(tanh.layers['xavier-normal'].at(-1).std).toBeGreaterThan(10 * tanh.layers.pytorch.at(-1).std);
    expect(tanh.layers.normal.at(-1).std).toBeGreaterThan(0.9); // saturated at ±1
    // One layer (the lesson's picture): ReLU zeroes about half the outputs; zero weights give only zeros.
    expect(Math.abs(oneLayer.layers['kaiming-normal'][0].zeros - 0.5)).toBeLessThan(0.03);
    expect(oneLayer.layers.zeros[0].zeros).toBe(1);
  });

  it("gradients at initialisation: without batch norm the middle layer's gradients have heavier tails", () => {
    const g = json('bn-gradients/bn-gradients.json');
    expect(g.options.depth).toBeGreaterThanOrEqual(50);
    expect(g.withoutBn.kurtosis).toBeGreaterThan(2 * g.withBn.kurtosis);
    expect(g.withoutBn.maxAbs / g.withoutBn.std).toBeGreaterThan(g.withBn.maxAbs / g.withBn.std);
    // With batch norm the CNN learns in two epochs at the seed's lr; without it stays closer to chance.
    expect(g.cnn.withBn.valAcc).toBeGreaterThan(g.cnn.withoutBn.valAcc);
  });

  it('batch norm: faster convergence, higher learning rates, less sensitivity to the initialiser', () => {
    const { cells, options } = json('bn-benefits/bn-benefits.json');
    type Cell = { lr: number; init: string; variant: string; bestAcc: number; valAcc: number[] };
    const cell = (init: string, lr: number, variant: string) =>
      cells.find((c: Cell) => c.init === init && c.lr === lr && c.variant === variant) as Cell;
    const trainable = ['pytorch', 'xavier-normal'];
    // Faster: with batch norm after the ReLU, every trainable cell ends ahead of the same cell without it.
    for (const init of trainable)
      for (const lr of options.lrs)
        expect(cell(init, lr, 'after').bestAcc, `${init} lr ${lr}`).toBeGreaterThan(cell(init, lr, 'none').bestAcc);
    // Higher learning rates: batch norm's accuracy rises with the learning rate up to the largest.
    const top = options.lrs.at(-1);
    for (const init of trainable) expect(cell(init, top, 'after').bestAcc).toBeGreaterThan(cell(init, options.lrs[0], 'after').bestAcc);
    // Less sensitive to the initialiser: a smaller spread between the trainable initialisers at lr ≥ 0.1.
    for (const lr of options.lrs.filter((l: number) => l >= 0.1)) {
      const spread = (v: string) => Math.abs(cell('pytorch', lr, v).bestAcc - cell('xavier-normal', lr, v).bestAcc);
      expect(spread('after'), `lr ${lr}`).toBeLessThan(spread('none'));
    }
  });

  it('leaves each directory with the list of the files it wrote, unlocked, so that a second run into it may replace them', async () => {
    const listed = (dir: string) => JSON.parse(readFileSync(join(out, dir, '.webgpu-nn-files.json'), 'utf8')).files as string[];
    expect(listed('.')).toEqual(['index.html']);
    expect(listed('train')).toEqual(['history.json', 'loss.png']);
    expect(listed('bn-gradients')).toEqual([
      'bn-gradients-cnn.png',
      'bn-gradients-cnn.svg',
      'bn-gradients.json',
      'bn-gradients.png',
      'bn-gradients.svg',
    ]);
    for (const dir of ['normalization', 'init-histograms', 'bn-benefits'])
      for (const f of listed(dir)) expect(existsSync(join(out, dir, f)), `${dir}/${f}`).toBe(true);
    const left = readdirSync(out, { recursive: true }).map(String);
    expect(left.filter((f) => f.endsWith('.webgpu-nn.lock') || f.includes('.tmp-'))).toEqual([]);
    // A second run into the same directory passes every output check and gets as far as the adapter (Dawn's
    // null backend, refused before any work), leaving the first run's page as it was.
    const page = readFileSync(join(out, 'index.html'), 'utf8');
    const again = await new Promise<{ code: number | null; err: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'lesson', '--quick', '--out', out], {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, WEBGPU_NN_BACKEND: 'null' },
      });
      let e = '';
      child.stderr.on('data', (d: Buffer) => (e += d));
      child.on('close', (code) => resolve({ code, err: e }));
    });
    expect(again.code, again.err).toBe(1);
    expect(again.err).toMatch(/does not compute/);
    expect(readFileSync(join(out, 'index.html'), 'utf8')).toBe(page);
  });

  it("the short training run learns with the seed's settings", () => {
    const history = json('train/history.json');
    expect(history).toHaveLength(3);
    expect(history[2].trainLoss).toBeLessThan(history[0].trainLoss);
    expect(history[2].valAcc).toBeGreaterThan(0.2); // chance is 0.1
  });
});
