// `webgpu-nn bn-gradients`: the lesson's gradient histograms with and without batch norm, and the seed's CNN's
// per-step gradient norms (src/lesson/bn-gradients.ts).
import { adapterSummary } from '../gpu/device.js';
import {
  BN_GRADIENTS_DEFAULTS,
  BN_GRADIENTS_QUICK,
  bnGradientsFigure,
  bnGradientsFigures,
  bnGradientsSummary,
  cnnGradientsFigure,
  runBnGradients,
} from '../lesson/bn-gradients.js';
import { openExperimentDir, writeFigure, writeJson } from '../lesson/output.js';
import { INITIALIZERS, type InitName } from '../nn/init.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { seedFlag } from './seed-flag.js';
import { withGpu } from './with-gpu.js';

const D = BN_GRADIENTS_DEFAULTS,
  Q = BN_GRADIENTS_QUICK;
const FLAGS = {
  out: { type: 'string', default: 'runs/bn-gradients', help: 'directory for bn-gradients.png, bn-gradients-cnn.png, .svg and .json' },
  seed: seedFlag(D.seed, 'seed of the weights, the batch and the CNN runs'),
  quick: {
    type: 'bool',
    default: false,
    help: `a smaller network and CNN run (depth ${Q.depth}, width ${Q.width}; ${Q.cnnEpochs} epoch on ${Q.cnnLimit} digits)`,
  },
  depth: { type: 'int', min: 3, max: 500, help: `Linear layers in the deep network (default ${D.depth}; the lesson's picture needs ≥ 50)` },
  width: { type: 'int', min: 2, max: 4096, help: `units per hidden layer (default ${D.width})` },
  batch: { type: 'int', min: 2, max: 4096, help: `digits in the batch (default ${D.batch})` },
  init: { type: 'string', default: D.init, choices: INITIALIZERS, help: 'weight initialiser of the deep network' },
  epochs: { type: 'int', min: 0, max: 100, help: `epochs of each CNN run (default ${D.cnnEpochs}; 0 leaves the CNN part out)` },
  limit: { type: 'int', min: 100, max: 10000, help: `embedded digits for the CNN runs, 80% train (default ${D.cnnLimit})` },
  lr: { type: 'float', default: D.lr, min: 0, exclusiveMin: true, help: "the CNN's SGD learning rate (the seed's)" },
} as const satisfies FlagsSpec;

export async function bnGradientsCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'bn-gradients',
    "Histograms of a deep network's middle-layer gradients at initialisation with and without batch norm, and the seed's CNN's per-step gradient norms.",
  );
  if (!flags) return 0;
  const base = flags.quick ? Q : D;
  const options = {
    ...base,
    seed: flags.seed,
    init: flags.init as InitName,
    lr: flags.lr,
    depth: flags.depth ?? base.depth,
    width: flags.width ?? base.width,
    batch: flags.batch ?? base.batch,
    cnnEpochs: flags.epochs ?? base.cnnEpochs,
    cnnLimit: flags.limit ?? base.cnnLimit,
  };
  // Checked and locked first: minutes of training must not be lost to a bad --out.
  const out = openExperimentDir(flags.out, 'bn-gradients', { figures: bnGradientsFigures(options), json: ['bn-gradients'] });
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const result = await runBnGradients(gpu, options);
    for (const line of bnGradientsSummary(result)) console.log(line);
    writeFigure(out, 'bn-gradients', bnGradientsFigure(result));
    if (result.cnn) writeFigure(out, 'bn-gradients-cnn', cnnGradientsFigure(result.cnn));
    writeJson(out, 'bn-gradients', { adapter: gpu.adapter, ...result });
    console.log(`wrote ${out.file('bn-gradients.png')}${result.cnn ? ', bn-gradients-cnn.png' : ''} (and .svg, .json)`);
    return 0;
  }).finally(() => out.release());
}
