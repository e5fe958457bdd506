// The whole lesson in one run: every experiment, a short training of the seed's CNN, and one offline page,
// DIR/index.html, that puts each of the lesson's claims next to the picture that shows it and the numbers
// measured on this machine (pictures inline as SVG with their text as outlines, so the page needs no fonts).
// Each experiment writes into a sub-directory of DIR named after its command, the training run into DIR/train;
// all of them are opened as OutputDirs (checked, created, locked, their files declared) before any work.
import { join } from 'node:path';
import { loadEmbeddedDigits } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { splitTrainVal } from '../data/split.js';
import { adapterSummary } from '../gpu/device.js';
import type { Gpu } from '../gpu/runtime.js';
import { type EpochRecord, lossPlot, writeHistory } from '../train/history.js';
import { SEED_TRAINING, Trainer } from '../train/trainer.js';
import { OutputDir } from '../util/output-dir.js';
import {
  BN_BENEFITS_DEFAULTS,
  BN_BENEFITS_QUICK,
  bnBenefitsFigure,
  bnBenefitsSummary,
  bnBenefitsTable,
  runBnBenefits,
} from './bn-benefits.js';
import {
  BN_GRADIENTS_DEFAULTS,
  BN_GRADIENTS_QUICK,
  bnGradientsFigure,
  bnGradientsFigures,
  bnGradientsSummary,
  cnnGradientsFigure,
  runBnGradients,
} from './bn-gradients.js';
import {
  INIT_HISTOGRAMS_DEFAULTS,
  initHistogramsFigure,
  initHistogramsSummary,
  initStdFigure,
  runInitHistograms,
} from './init-histograms.js';
import {
  NORMALIZATION_DEFAULTS,
  NORMALIZATION_QUICK,
  normalizationFigure,
  normalizationSummary,
  runNormalization,
} from './normalization.js';
import { openExperimentDir, type WrittenFigure, writeFigure, writeJson } from './output.js';
import { sig } from './stats.js';

export interface LessonOptions {
  seed: number;
  quick: boolean;
}

/** The lesson's output: DIR (index.html), a sub-directory per experiment and DIR/train. */
export interface LessonDirs {
  page: OutputDir;
  normalization: OutputDir;
  initHistograms: OutputDir;
  bnGradients: OutputDir;
  bnBenefits: OutputDir;
  train: OutputDir;
  /** Gives them all up (their locks). */
  release(): void;
}

/** The depth of the init-histograms stacks the page shows. */
const INIT_LAYERS = 10;
const INIT_FIGURES = ['init-histograms-1-layer', 'init-std-relu', 'init-histograms-tanh', 'init-std-tanh'];

const bnGradientsOptions = (o: LessonOptions) => ({ ...(o.quick ? BN_GRADIENTS_QUICK : BN_GRADIENTS_DEFAULTS), seed: o.seed });

/**
 * Opens DIR and each sub-directory the lesson writes, declaring their files, before any work: a bad DIR, a
 * file of the user's where the lesson writes one, or another command writing there is an OutputError here
 * (and the directories opened before it are released).
 */
export function openLessonDirs(out: string, o: LessonOptions): LessonDirs {
  const opened: OutputDir[] = [];
  const open = (make: () => OutputDir) => {
    const d = make();
    opened.push(d);
    return d;
  };
  try {
    const sub = (name: string) => join(out, name);
    return {
      page: open(() => OutputDir.open(out, { flag: '--out', command: 'lesson', files: ['index.html'] })),
      normalization: open(() => openExperimentDir(sub('normalization'), 'lesson', { figures: ['normalization'], json: ['normalization'] })),
      initHistograms: open(() => openExperimentDir(sub('init-histograms'), 'lesson', { figures: INIT_FIGURES, json: ['init-histograms'] })),
      bnGradients: open(() =>
        openExperimentDir(sub('bn-gradients'), 'lesson', { figures: bnGradientsFigures(bnGradientsOptions(o)), json: ['bn-gradients'] }),
      ),
      bnBenefits: open(() => openExperimentDir(sub('bn-benefits'), 'lesson', { figures: ['bn-benefits'], json: ['bn-benefits'] })),
      train: open(() => OutputDir.open(sub('train'), { flag: '--out', command: 'lesson', files: ['history.json', 'loss.png'] })),
      release: () => {
        for (const d of opened) d.release();
      },
    };
  } catch (e) {
    for (const d of opened) d.release();
    throw e;
  }
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

interface Section {
  heading: string;
  /** The lesson's words. */
  claim: string;
  /** What was measured here, in sentences. */
  measured: string[];
  figures: WrittenFigure[];
  command: string;
  table?: { header: string[]; rows: string[][] };
}

/** Runs everything into `dirs` (openLessonDirs); `log` gets each experiment's summary lines. Returns the page's path. */
export async function runLesson(gpu: Gpu, dirs: LessonDirs, o: LessonOptions, log: (line: string) => void): Promise<string> {
  const q = o.quick ? ' --quick' : '';
  const sections: Section[] = [];
  const step = (name: string) => log(`--- ${name}`);

  step('normalization');
  const norm = await runNormalization(gpu, { ...(o.quick ? NORMALIZATION_QUICK : NORMALIZATION_DEFAULTS), seed: o.seed });
  normalizationSummary(norm).forEach(log);
  const nDir = dirs.normalization;
  writeJson(nDir, 'normalization', norm);
  const [raw, std] = norm.problems;
  sections.push({
    heading: 'Input normalisation',
    claim:
      'With inputs that are all positive and on very different scales, the gradient with respect to one parameter dominates and SGD zig-zags, ' +
      'converging slowly; normalising the inputs to mean 0 and variance 1 gives rounder contours and much faster SGD convergence.',
    measured: [
      `A two-weight linear model fitted by SGD (batch ${norm.options.batchSize}, the same learning rate ${sig(norm.lr)} and start for both).`,
      `Raw inputs: condition number of the loss ${sig(raw.conditionNumber)}; the weights stay within 1% of the start's distance from the minimum after ${raw.stepsTo1Percent ?? `more than ${norm.options.steps}`} steps.`,
      `Standardised inputs: condition number ${sig(std.conditionNumber)}; ${std.stepsTo1Percent ?? `more than ${norm.options.steps}`} steps.`,
    ],
    figures: [writeFigure(nDir, 'normalization', normalizationFigure(norm))],
    command: `webgpu-nn normalization${q}`,
  });

  step('init-histograms');
  const iDir = dirs.initHistograms;
  const layers = INIT_LAYERS;
  const relu = await runInitHistograms(gpu, { ...INIT_HISTOGRAMS_DEFAULTS, seed: o.seed, activation: 'relu', layers });
  const tanh = await runInitHistograms(gpu, { ...INIT_HISTOGRAMS_DEFAULTS, seed: o.seed, activation: 'tanh', layers });
  const one = await runInitHistograms(gpu, { ...INIT_HISTOGRAMS_DEFAULTS, seed: o.seed, activation: 'relu', layers: 1 });
  for (const r of [one, relu, tanh]) initHistogramsSummary(r).forEach(log);
  writeJson(iDir, 'init-histograms', { oneLayer: one, relu, tanh });
  const std1 = (r: typeof relu, n: keyof typeof r.layers) => sig(r.layers[n][0].std);
  const stdN = (r: typeof relu, n: keyof typeof r.layers) => sig(r.layers[n][layers - 1].std);
  sections.push({
    heading: 'Parameter initialisation',
    claim:
      'The initialisation of the weights changes the distribution of a fully connected layer’s outputs; the distribution of activations also changes ' +
      'as the data propagates through the network, so careful initialisation (He for ReLU, Xavier/Glorot for tanh) keeps it in range.',
    measured: [
      `One Linear(784→256)+ReLU layer on N(0, 1) inputs: output std ${std1(one, 'kaiming-normal')} with He normal, ${std1(one, 'xavier-normal')} with Xavier normal, ` +
        `${std1(one, 'pytorch')} with PyTorch's default and ${std1(one, 'normal')} with N(0, 1) weights; about half the outputs are zeros (ReLU).`,
      `Through ${layers} ReLU layers the std goes from ${std1(relu, 'kaiming-normal')} to ${stdN(relu, 'kaiming-normal')} with He normal, ` +
        `explodes to ${stdN(relu, 'normal')} with N(0, 1), and vanishes to ${stdN(relu, 'pytorch')} with PyTorch's default.`,
      `Through ${layers} tanh layers: Xavier normal ${std1(tanh, 'xavier-normal')} → ${stdN(tanh, 'xavier-normal')}, PyTorch's default ${std1(tanh, 'pytorch')} → ${stdN(tanh, 'pytorch')}, ` +
        `N(0, 1) saturates at ±1 (std ${stdN(tanh, 'normal')}).`,
    ],
    figures: [
      writeFigure(iDir, 'init-histograms-1-layer', initHistogramsFigure(one)),
      writeFigure(iDir, 'init-std-relu', initStdFigure(relu)),
      writeFigure(iDir, 'init-histograms-tanh', initHistogramsFigure(tanh)),
      writeFigure(iDir, 'init-std-tanh', initStdFigure(tanh)),
    ],
    command: `webgpu-nn init-histograms; webgpu-nn init-histograms --layers ${layers}; webgpu-nn init-histograms --layers ${layers} --activation tanh`,
  });

  step('bn-gradients');
  const grads = await runBnGradients(gpu, bnGradientsOptions(o));
  bnGradientsSummary(grads).forEach(log);
  const gDir = dirs.bnGradients;
  writeJson(gDir, 'bn-gradients', grads);
  const gFigs = [writeFigure(gDir, 'bn-gradients', bnGradientsFigure(grads))];
  if (grads.cnn) gFigs.push(writeFigure(gDir, 'bn-gradients-cnn', cnnGradientsFigure(grads.cnn)));
  sections.push({
    heading: 'Batch norm and the gradients',
    claim:
      'The effect of batch norm shows in the distribution of the gradients at initialisation of a deep network’s middle layer: without it they have heavy tails, ' +
      'with it they are concentrated around the mean.',
    measured: [
      `Layer ${grads.layer + 1} of ${grads.options.depth} (width ${grads.options.width}, ${grads.options.init} init), one batch of ${grads.options.batch} digits, same weights:`,
      `with batch norm: std ${sig(grads.withBn.std)}, kurtosis ${sig(grads.withBn.kurtosis)} (3 for a normal distribution), max |g| ${sig(grads.withBn.maxAbs)} = ${sig(grads.withBn.maxAbs / grads.withBn.std)} std;`,
      `without: std ${sig(grads.withoutBn.std)}, kurtosis ${sig(grads.withoutBn.kurtosis)}, max |g| ${sig(grads.withoutBn.maxAbs)} = ${sig(grads.withoutBn.maxAbs / grads.withoutBn.std)} std.`,
      ...(grads.cnn
        ? [
            `The seed's CNN (lr ${grads.options.lr}, ${grads.options.cnnEpochs} epoch(s)): with batch norm its validation accuracy reached ${(100 * grads.cnn.withBn.valAcc).toFixed(1)}%, ` +
              `without ${(100 * grads.cnn.withoutBn.valAcc).toFixed(1)}%; the second picture shows each layer's gradient norm per step.`,
          ]
        : []),
    ],
    figures: gFigs,
    command: `webgpu-nn bn-gradients${q}`,
  });

  step('bn-benefits');
  const benefits = await runBnBenefits(gpu, { ...(o.quick ? BN_BENEFITS_QUICK : BN_BENEFITS_DEFAULTS), seed: o.seed }, log);
  bnBenefitsSummary(benefits).forEach(log);
  const bDir = dirs.bnBenefits;
  writeJson(bDir, 'bn-benefits', benefits);
  sections.push({
    heading: 'Faster convergence, higher learning rates, less sensitivity to initialisation',
    claim:
      'The main benefit of batch normalisation is faster convergence, allowing higher learning rates since it stabilises training; it also reduces the sensitivity ' +
      'to the initialisation. Ioffe and Szegedy put it before the activation; the lesson finds good training with it after the activation.',
    measured: bnBenefitsSummary(benefits),
    figures: [writeFigure(bDir, 'bn-benefits', bnBenefitsFigure(benefits))],
    command: `webgpu-nn bn-benefits${q}`,
    table: bnBenefitsTable(benefits),
  });

  step('train');
  const t = await shortTraining(gpu, o, dirs.train);
  const last = t.history.at(-1)!;
  sections.push({
    heading: "Training the lesson's CNN",
    claim:
      'During training the mean and variance come from the mini-batch and the running statistics are updated with a momentum; at inference the running ' +
      'statistics normalise instead, since training and inference batches differ.',
    measured: [
      `${t.history.length} epochs on ${t.trainCount} digits with the seed's settings (SGD lr 0.01, batch 64, dropout 0.5, batch norm after each conv block's ReLU).`,
      `Validation (evaluation mode, running statistics): loss ${sig(last.valLoss)}, accuracy ${(100 * last.valAcc).toFixed(2)}% after the last epoch; ` +
        `${Math.round(t.history.reduce((s, h) => s + h.samplesPerSecond, 0) / t.history.length)} training samples per second.`,
    ],
    figures: [{ png: 'loss.png', svg: `<img alt="train and validation loss" src="data:image/png;base64,${t.png.toString('base64')}">` }],
    command: `webgpu-nn train --epochs ${t.history.length}${o.quick ? ` --limit ${t.limit}` : ''}`,
  });

  dirs.page.write('index.html', lessonPage(sections, adapterSummary(gpu.adapter), dirs.page.path, o));
  return dirs.page.file('index.html');
}

async function shortTraining(gpu: Gpu, o: LessonOptions, dir: OutputDir) {
  const limit = o.quick ? 2000 : 10000;
  const epochs = o.quick ? 3 : 10;
  const ds = loadEmbeddedDigits(limit);
  const split = splitTrainVal(ds.count, 0.2, o.seed);
  const data = GpuDataset.upload(gpu, ds, 'train');
  const trainer = new Trainer(gpu, { ...SEED_TRAINING, epochs, seed: o.seed });
  const history: EpochRecord[] = [];
  for (let epoch = 1; epoch <= epochs; epoch++) {
    const t0 = performance.now();
    const trainLoss = await trainer.trainEpoch({ data, indices: split.train }, epoch);
    const trainSeconds = (performance.now() - t0) / 1000;
    const { loss: valLoss, accuracy: valAcc } = await trainer.evaluate({ data, indices: split.val });
    history.push({
      epoch,
      trainLoss,
      valLoss,
      valAcc,
      epochSeconds: (performance.now() - t0) / 1000,
      trainSeconds,
      samplesPerSecond: split.train.length / trainSeconds,
    });
  }
  data.dispose();
  for (const t of trainer.model.stateDict().values()) t.dispose();
  writeHistory(dir, history);
  const png = lossPlot(history);
  dir.write('loss.png', png);
  return { history, png, trainCount: split.train.length, limit };
}

function lessonPage(sections: Section[], adapter: string, out: string, o: LessonOptions): string {
  const body = sections
    .map((s) => {
      const table = s.table
        ? `<table><thead><tr>${s.table.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${s.table.rows
            .map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
            .join('')}</tbody></table>`
        : '';
      return `<section>
<h2>${esc(s.heading)}</h2>
<blockquote>${esc(s.claim)}</blockquote>
<div class="measured"><p><b>Measured here:</b></p><ul>${s.measured.map((m) => `<li>${esc(m)}</li>`).join('')}</ul></div>
${s.figures.map((f) => `<figure>${f.svg.replace(/^<\?xml[^>]*>\s*/, '')}<figcaption>${esc(f.png)}</figcaption></figure>`).join('\n')}
${table}
<p class="cmd">Made by <code>${esc(s.command)}</code></p>
</section>`;
    })
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Batch normalisation: the lesson, measured</title>
<style>
body { font-family: 'DejaVu Sans', Verdana, sans-serif; max-width: 1300px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2.2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
blockquote { margin: 1em 0; padding: .4em 1em; border-left: 4px solid #1f77b4; background: #f4f8fb; font-style: italic; }
figure { margin: 1.2em 0; } figure svg, figure img { max-width: 100%; height: auto; } figcaption { color: #777; font-size: .85em; }
table { border-collapse: collapse; font-size: .9em; } td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: left; }
code { background: #f2f2f2; padding: .1em .3em; } .cmd { color: #555; }
</style></head><body>
<h1>Batch normalisation: the lesson's claims, measured</h1>
<p>Every number and picture on this page was computed on the GPU through webgpu-nn's WGSL kernels by <code>webgpu-nn lesson --out ${esc(out)}${o.quick ? ' --quick' : ''} --seed ${o.seed}</code>,
on the adapter <b>${esc(adapter)}</b>, on ${new Date().toISOString().slice(0, 10)}. Each section quotes the lesson, shows the picture that tests it and gives the numbers;
each picture's PNG and the numbers as JSON are in the folder beside this page.</p>
${body}
</body></html>
`;
}
