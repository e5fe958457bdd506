// `webgpu-nn init-histograms`: the lesson's initialisation experiment (src/lesson/init-histograms.ts).
import { adapterSummary } from '../gpu/device.js';
import {
  ACTIVATIONS,
  type Activation,
  INIT_HISTOGRAMS_DEFAULTS,
  initHistogramsFigure,
  initHistogramsSummary,
  initStdFigure,
  runInitHistograms,
} from '../lesson/init-histograms.js';
import { openExperimentDir, writeFigure, writeJson } from '../lesson/output.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { seedFlag } from './seed-flag.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  out: {
    type: 'string',
    default: 'runs/init-histograms',
    help: 'directory for init-histograms.png (init-std.png with --layers > 1), .svg and .json',
  },
  activation: { type: 'string', default: 'relu', choices: ACTIVATIONS, help: 'activation after each layer' },
  layers: { type: 'int', default: INIT_HISTOGRAMS_DEFAULTS.layers, min: 1, max: 200, help: 'layers in the stack (784→256, then 256→256)' },
  batch: {
    type: 'int',
    default: INIT_HISTOGRAMS_DEFAULTS.batch,
    min: 1,
    max: 4096,
    help: 'input rows (the lesson uses 1; more rows give smoother histograms)',
  },
  seed: seedFlag(INIT_HISTOGRAMS_DEFAULTS.seed, 'seed of the weights and inputs'),
  quick: { type: 'bool', default: false, help: 'accepted for symmetry with the other experiments: this one always takes seconds' },
} as const satisfies FlagsSpec;

export async function initHistogramsCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'init-histograms',
    'Histograms of the outputs of a stack of Linear(→256) layers under each weight initialiser, and their std per layer.',
  );
  if (!flags) return 0;
  const options = {
    ...INIT_HISTOGRAMS_DEFAULTS,
    activation: flags.activation as Activation,
    layers: flags.layers,
    batch: flags.batch,
    seed: flags.seed,
  };
  const deep = options.layers > 1;
  const out = openExperimentDir(flags.out, 'init-histograms', {
    figures: ['init-histograms', ...(deep ? ['init-std'] : [])],
    json: ['init-histograms'],
  });
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const result = await runInitHistograms(gpu, options);
    for (const line of initHistogramsSummary(result)) console.log(line);
    writeFigure(out, 'init-histograms', initHistogramsFigure(result));
    if (deep) writeFigure(out, 'init-std', initStdFigure(result));
    writeJson(out, 'init-histograms', { adapter: gpu.adapter, ...result });
    console.log(`wrote ${out.file('init-histograms.png')}${deep ? ', init-std.png' : ''} (and .svg, .json)`);
    return 0;
  }).finally(() => out.release());
}
