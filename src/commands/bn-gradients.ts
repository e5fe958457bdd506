// `webgpu-nn bn-gradients`: the lesson's point about batch norm and gradients, as a picture. The seed's CNN
// is trained twice from the same initial weights and batches, with and without batch norm, recording the L2
// norm of each layer's weight gradient at every step (on the GPU: Σg² per layer copied into one buffer,
// read back once per epoch). At the seed's lr 0.01, batch norm keeps the layers' gradients larger and closer
// to one another; without it conv1's gradient is about ten times smaller and two epochs barely move the loss.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadEmbeddedDigits } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { splitTrainVal } from '../data/split.js';
import { adapterSummary } from '../gpu/device.js';
import * as F from '../nn/ops.js';
import { Tensor } from '../nn/tensor.js';
import { lineChart, PALETTE } from '../plot/plot.js';
import { SEED_TRAINING, Trainer } from '../train/trainer.js';
import { writeFileAtomic } from '../util/files.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  epochs: { type: 'int', default: 2, min: 1, max: 100, help: 'epochs per run' },
  limit: { type: 'int', default: 4000, min: 100, max: 10000, help: 'embedded digits to use (80% train)' },
  lr: { type: 'float', default: 0.01, min: 0, exclusiveMin: true, help: "SGD learning rate (the seed's)" },
  seed: { type: 'int', default: 42, min: 0, help: 'seed of weights, batches and dropout (shared by both runs)' },
  out: { type: 'string', default: 'runs/bn-gradients', help: 'directory for bn-gradients.png and .json' },
} as const satisfies FlagsSpec;

const LAYERS = ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight'] as const;

export async function bnGradientsCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'bn-gradients',
    "Per-layer gradient norms of the seed's CNN trained with and without batch norm.",
  );
  if (!flags) return 0;
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const ds = loadEmbeddedDigits(flags.limit);
    const split = splitTrainVal(ds.count, 0.2, flags.seed);
    const data = GpuDataset.upload(gpu, ds, 'train');
    const steps = Math.ceil(split.train.length / 64);
    const results: Record<string, Record<string, number[]> & { valAcc?: number }> = {};
    for (const batchNorm of [true, false]) {
      const name = batchNorm ? 'with BN' : 'without BN';
      const trainer = new Trainer(gpu, {
        ...SEED_TRAINING,
        epochs: flags.epochs,
        patience: flags.epochs,
        lr: flags.lr,
        seed: flags.seed,
        batchNorm,
      });
      const params = new Map(trainer.model.namedParameters());
      const norms: Record<string, number[]> = Object.fromEntries(LAYERS.map((l) => [l, []]));
      for (let epoch = 1; epoch <= flags.epochs; epoch++) {
        const record = Tensor.empty([steps * LAYERS.length], { label: 'gradient sums of squares' }).keep();
        let step = 0;
        const loss = await trainer.trainEpoch({ data, indices: split.train }, epoch, undefined, undefined, () => {
          LAYERS.forEach((layer, l) => {
            const g = params.get(layer)!.grad!;
            gpu.copy(F.sum(F.mul(g, g)).buffer, 0, record.buffer, 4 * (step * LAYERS.length + l), 4);
          });
          step++;
        });
        const sq = (await record.toArray()) as Float32Array;
        record.dispose();
        for (let s = 0; s < step; s++) {
          for (const [l, layer] of LAYERS.entries()) norms[layer].push(Math.sqrt(sq[s * LAYERS.length + l]));
        }
        console.log(`${name.padEnd(10)} epoch ${epoch}: train loss ${loss.toFixed(4)}`);
      }
      const { accuracy } = await trainer.evaluate({ data, indices: split.val });
      console.log(`${name.padEnd(10)} validation accuracy ${(100 * accuracy).toFixed(2)}%`);
      for (const layer of LAYERS) {
        const v = norms[layer];
        const mean = v.reduce((a, b) => a + b, 0) / v.length;
        const cv = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length) / mean;
        console.log(`  ${layer.padEnd(13)} gradient norm: mean ${mean.toExponential(3)}, relative spread ${cv.toFixed(3)}`);
      }
      results[name] = { ...norms, valAcc: accuracy } as Record<string, number[]> & { valAcc: number };
    }
    data.dispose();
    mkdirSync(flags.out, { recursive: true });
    const series = Object.entries(results).flatMap(([name, r], i) =>
      LAYERS.map((layer, l) => ({
        name: `${layer.replace('.weight', '')} ${name}`,
        x: r[layer].map((_, s) => s + 1),
        y: r[layer].map((v) => Math.log10(v)),
        color: PALETTE[(l * 2 + i) % PALETTE.length],
      })),
    );
    writeFileAtomic(
      join(flags.out, 'bn-gradients.png'),
      lineChart({
        title: 'Weight-gradient norm per step, with and without batch norm',
        xLabel: 'Step',
        yLabel: 'log10 ||grad||',
        series,
        width: 1000,
        height: 600,
      }),
    );
    writeFileAtomic(join(flags.out, 'bn-gradients.json'), `${JSON.stringify(results)}\n`);
    console.log(`wrote ${join(flags.out, 'bn-gradients.png')} and bn-gradients.json`);
    return 0;
  });
}
