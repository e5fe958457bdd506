// `webgpu-nn predict --model DIR image.png ...`: classifies digit images. Accepts grayscale, RGB or RGBA
// PNGs of any size (src/data/images.ts prepares them as MNIST digits: 28x28, white on black). Any number of
// images: they go through the network in batches (src/train/predict.ts). The checkpoint and the images are read
// before the GPU is opened.
import { readDigitPng } from '../data/images.js';
import { UsageError } from '../errors.js';
import { readModelCheckpoint } from '../train/checkpoint.js';
import { checkProbabilities } from '../train/metrics.js';
import { digitProbabilities } from '../train/predict.js';
import { modelFromCheckpoint } from '../train/saved-model.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { MODEL_FLAG, requireModel } from './model-flag.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  model: MODEL_FLAG,
  top: { type: 'int', default: 1, min: 1, max: 10, help: 'show this many most likely digits' },
} as const satisfies FlagsSpec;

export async function predictCommand(argv: string[]): Promise<number> {
  const summary = 'Classify PNG images of digits with a trained model: webgpu-nn predict --model DIR image.png ...';
  const flags = parseFlagsOrHelp(argv, FLAGS, 'predict', summary, { positionals: true });
  if (!flags) return 0;
  const checkpoint = readModelCheckpoint(requireModel(flags.model, 'predict'));
  if (!flags._.length) throw new UsageError('webgpu-nn predict: give one or more PNG files after the flags');
  const images = flags._.map((f) => ({ file: f, ...readDigitPng(f) }));

  return withGpu(async () => {
    const { model, norm } = modelFromCheckpoint(checkpoint);
    const probs = await digitProbabilities(
      model,
      images.map((im) => im.pixels),
      norm,
    );
    images.forEach((im, i) => {
      const p = Array.from(probs.subarray(i * 10, i * 10 + 10));
      checkProbabilities(im.file, p);
      const ranked = p
        .map((v, d) => [d, v] as const)
        .sort((a, b) => b[1] - a[1])
        .slice(0, flags.top);
      const text = ranked.map(([d, v]) => `${d} (${(100 * v).toFixed(1)}%)`).join(', ');
      console.log(`${im.file}: ${text}${im.inverted ? '  [inverted: dark digit on light background]' : ''}`);
    });
    return 0;
  });
}
