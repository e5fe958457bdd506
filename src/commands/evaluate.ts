// `webgpu-nn evaluate --model DIR [--data DIR]`: accuracy and confusion matrix of a trained model, on the
// test set (t10k files) when the data has one, else on the run's own validation split. The checkpoint and
// the data are read and checked before the GPU is opened.
import { existsSync } from 'node:fs';
import { type Dataset, loadMnist } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { splitTrainVal } from '../data/split.js';
import { UsageError } from '../errors.js';
import { adapterSummary } from '../gpu/device.js';
import { readModelCheckpoint } from '../train/checkpoint.js';
import { confusionMatrix, correctCount, formatConfusion } from '../train/metrics.js';
import { modelFromCheckpoint } from '../train/saved-model.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { MODEL_FLAG, requireModel } from './model-flag.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  model: MODEL_FLAG,
  data: { type: 'string', help: 'directory with MNIST IDX files; default: the data the model was trained on' },
  'batch-size': { type: 'int', default: 256, min: 1, max: 4096, help: 'images per forward pass' },
} as const satisfies FlagsSpec;

export async function evaluateCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(argv, FLAGS, 'evaluate', 'Accuracy and confusion matrix of a trained model.', {
    hint: '; give the model with --model DIR and other data with --data DIR',
  });
  if (!flags) return 0;
  const checkpoint = readModelCheckpoint(requireModel(flags.model, 'evaluate'));
  const { config } = checkpoint;
  const dataDir = flags.data ?? config.data;
  if (flags.data === undefined && config.data !== null && !existsSync(config.data)) {
    throw new UsageError(`the model was trained on ${config.data}, which is no longer there; give the data with --data DIR`);
  }
  const { train, test } = loadMnist(dataDir, config.limit);
  let ds: Dataset, indices: Uint32Array, what: string;
  if (test) {
    ds = test;
    indices = Uint32Array.from({ length: test.count }, (_, i) => i);
    what = `test set of ${dataDir}`;
  } else {
    ds = train;
    indices = splitTrainVal(ds.count, config.valSplit, config.seed).val;
    what = `validation split of ${dataDir ?? 'the embedded digits'} (seed ${config.seed}, ${config.valSplit})`;
  }
  return withGpu(async (gpu) => {
    const { model, norm } = modelFromCheckpoint(checkpoint);
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const data = GpuDataset.upload(gpu, ds, 'evaluation');
    const confusion = await confusionMatrix(model, data, indices, { batchSize: flags.batchSize, norm });
    data.dispose();
    const correct = correctCount(confusion);
    console.log(`accuracy on the ${what}: ${((100 * correct) / indices.length).toFixed(2)}% (${correct}/${indices.length})`);
    console.log(formatConfusion(confusion));
    return 0;
  });
}
