// `webgpu-nn init-histograms`: the lesson's initialisation experiment. A Linear(784→256) + ReLU layer,
// initialised each way the lesson compares, is fed standard-normal inputs on the GPU; the histograms of
// its outputs show which initialisers keep activations in a healthy range (He/Kaiming for ReLU).
import { join } from 'node:path';
import { adapterSummary } from '../gpu/device.js';
import { INITIALIZERS, initWeight, makeRng, normalSampler } from '../nn/init.js';
import * as F from '../nn/ops.js';
import { noGrad } from '../nn/tensor.js';
import { histogram } from '../plot/plot.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { OutputDir } from '../util/output-dir.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  out: { type: 'string', default: 'runs/init-histograms', help: 'directory for the PNG histograms' },
  batch: { type: 'int', default: 64, min: 1, max: 4096, help: 'input rows (the lesson uses 1; more rows give smoother histograms)' },
  seed: { type: 'int', default: 42, min: 0, max: 0xffffffff - 1, help: 'seed of the weights and inputs' },
} as const satisfies FlagsSpec;

export async function initHistogramsCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'init-histograms',
    "Histograms of a Linear(784→256)+ReLU layer's outputs under each weight initialiser.",
  );
  if (!flags) return 0;
  const files = ['input.png', ...INITIALIZERS.map((name) => `${name}.png`)];
  const dir = OutputDir.open(flags.out, { flag: '--out', command: 'init-histograms', files });
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const rng = makeRng(flags.seed);
    const normal = normalSampler(rng);
    const input = Float32Array.from({ length: flags.batch * 784 }, normal);
    dir.write('input.png', histogram({ title: 'Input distribution', xLabel: 'Input value', values: Array.from(input) }));
    const x = F.tensor(input, [flags.batch, 784]);
    for (const name of INITIALIZERS) {
      const w = F.tensor(initWeight(name, [256, 784], makeRng(flags.seed + 1)), [256, 784]);
      const b = F.zeros([256]);
      const out = (await noGrad(() => F.relu(F.linear(x, w, b))).toArray()) as Float32Array;
      const values = Array.from(out);
      const m = values.reduce((s, v) => s + v, 0) / values.length;
      const sd = Math.sqrt(values.reduce((s, v) => s + (v - m) ** 2, 0) / values.length);
      const dead = values.filter((v) => v === 0).length / values.length;
      const file = join(flags.out, `${name}.png`);
      dir.write(`${name}.png`, histogram({ title: `Linear(784->256)+ReLU output, ${name} init`, xLabel: 'Output value', values }));
      console.log(
        `${name.padEnd(16)} mean ${m.toFixed(4).padStart(9)}  std ${sd.toFixed(4).padStart(9)}  zeros ${(100 * dead).toFixed(1).padStart(5)}%  -> ${file}`,
      );
    }
    return 0;
  }).finally(() => dir.release());
}
