// `webgpu-nn normalization`: the lesson's input-normalisation picture (src/lesson/normalization.ts).
import { adapterSummary } from '../gpu/device.js';
import {
  NORMALIZATION_DEFAULTS,
  NORMALIZATION_QUICK,
  normalizationFigure,
  normalizationSummary,
  runNormalization,
} from '../lesson/normalization.js';
import { openExperimentDir, writeFigure, writeJson } from '../lesson/output.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { seedFlag } from './seed-flag.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  out: { type: 'string', default: 'runs/normalization', help: 'directory for normalization.png, .svg and .json' },
  seed: seedFlag(NORMALIZATION_DEFAULTS.seed, 'seed of the data and the batches'),
  quick: { type: 'bool', default: false, help: 'fewer samples, steps and grid points (well under a minute)' },
  steps: {
    type: 'int',
    min: 1,
    max: 100000,
    help: `SGD steps (default ${NORMALIZATION_DEFAULTS.steps}, quick ${NORMALIZATION_QUICK.steps})`,
  },
  'batch-size': { type: 'int', min: 1, help: `samples per SGD step (default ${NORMALIZATION_DEFAULTS.batchSize})` },
  'lr-fraction': {
    type: 'float',
    min: 0,
    max: 1,
    exclusiveMin: true,
    help: `learning rate as a fraction of the raw problem's stability limit 2/λmax (default ${NORMALIZATION_DEFAULTS.lrFraction})`,
  },
} as const satisfies FlagsSpec;

export async function normalizationCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'normalization',
    'SGD on a two-weight linear model, with raw all-positive inputs on different scales and with the same inputs standardised: loss contours, paths, steps and condition numbers.',
  );
  if (!flags) return 0;
  const base = flags.quick ? NORMALIZATION_QUICK : NORMALIZATION_DEFAULTS;
  const options = {
    ...base,
    seed: flags.seed,
    steps: flags.steps ?? base.steps,
    batchSize: flags.batchSize ?? base.batchSize,
    lrFraction: flags.lrFraction ?? base.lrFraction,
  };
  const out = openExperimentDir(flags.out, 'normalization', { figures: ['normalization'], json: ['normalization'] });
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const result = await runNormalization(gpu, options);
    for (const line of normalizationSummary(result)) console.log(line);
    writeFigure(out, 'normalization', normalizationFigure(result));
    writeJson(out, 'normalization', { adapter: gpu.adapter, ...result });
    console.log(`wrote ${out.file('normalization.png')} (and .svg, .json)`);
    return 0;
  }).finally(() => out.release());
}
