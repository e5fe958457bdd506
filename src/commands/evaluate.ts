// `webgpu-nn evaluate --model DIR [--data DIR]`: accuracy and confusion matrix of a trained model, on the
// test set (t10k files) when the data has one, else on the run's own validation split.
import { UsageError } from '../errors.js';
import { adapterSummary } from '../gpu/device.js';
import { withGpu } from './with-gpu.js';
import { noGrad, tidy } from '../nn/tensor.js';
import { type FlagsSpec, formatHelp, parseFlags } from '../util/flags.js';
import { type Dataset, loadEmbeddedDigits, splitTrainVal, takeFirst } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { loadMnistDir } from '../data/idx.js';
import { loadTrained } from './checkpoint.js';

const FLAGS = {
  model: { type: 'string', help: 'a webgpu-nn train output directory (or its best.safetensors)' },
  data: { type: 'string', help: 'directory with MNIST IDX files; default: the data the model was trained on' },
  'batch-size': { type: 'int', default: 256, min: 1, max: 4096, help: 'images per forward pass' },
} as const satisfies FlagsSpec;

export async function evaluateCommand(argv: string[]): Promise<number> {
  const flags = parseFlags(argv, FLAGS, 'evaluate');
  if (flags.help) {
    console.log(formatHelp('evaluate', FLAGS, 'Accuracy and confusion matrix of a trained model.'));
    return 0;
  }
  if (!flags.model) throw new UsageError('webgpu-nn evaluate: --model DIR is required (a webgpu-nn train output directory)');
  const model = flags.model;
  return withGpu(async (gpu) => {
    const { trainer, config } = loadTrained(gpu, model);
    const dataDir = flags.data ?? config.data;
    const { train, test } = dataDir ? loadMnistDir(dataDir) : { train: loadEmbeddedDigits(), test: null };
    let ds: Dataset, indices: Uint32Array, what: string;
    if (test) {
      ds = test;
      indices = Uint32Array.from({ length: test.count }, (_, i) => i);
      what = `test set of ${dataDir}`;
    } else {
      ds = config.limit ? takeFirst(train, config.limit) : train;
      indices = splitTrainVal(ds.count, config.valSplit, config.seed).val;
      what = `validation split of ${dataDir ?? 'the embedded digits'} (seed ${config.seed}, ${config.valSplit})`;
    }
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const data = GpuDataset.upload(gpu, ds, 'evaluation');
    const confusion = Array.from({ length: 10 }, () => new Array<number>(10).fill(0));
    const idx = data.indexList(indices).keep();
    for (let offset = 0; offset < indices.length; offset += flags.batchSize) {
      const batch = Math.min(flags.batchSize, indices.length - offset);
      const { logits, labels } = noGrad(() => tidy(() => {
        const { x, y } = data.batch(idx, offset, batch, trainer.norm);
        return { logits: trainer.model.logits(x), labels: y };
      }));
      const [scores, truth] = [(await logits.toArray()) as Float32Array, (await labels.toArray()) as Int32Array];
      logits.dispose();
      labels.dispose();
      for (let r = 0; r < batch; r++) {
        let best = 0;
        for (let c = 1; c < 10; c++) if (scores[r * 10 + c] > scores[r * 10 + best]) best = c;
        confusion[truth[r]][best]++;
      }
    }
    idx.dispose();
    data.dispose();
    const correct = confusion.reduce((s, row, i) => s + row[i], 0);
    console.log(`accuracy on the ${what}: ${(100 * correct / indices.length).toFixed(2)}% (${correct}/${indices.length})`);
    console.log(formatConfusion(confusion));
    return 0;
  });
}

/** Rows: true digit; columns: predicted digit; last column: per-class recall. */
export function formatConfusion(m: number[][]): string {
  const w = Math.max(4, ...m.flat().map((v) => String(v).length + 1));
  const pad = (s: string | number) => String(s).padStart(w);
  const lines = ['confusion matrix (rows: true digit, columns: predicted)', `${'true'.padStart(5)} ${m.map((_, c) => pad(c)).join('')}  recall`];
  m.forEach((row, r) => {
    const total = row.reduce((a, b) => a + b, 0);
    lines.push(`${String(r).padStart(5)} ${row.map(pad).join('')}  ${total ? ((100 * row[r]) / total).toFixed(1) + '%' : '-'}`);
  });
  return lines.join('\n');
}
