// `webgpu-nn tune`: measures, ahead of time, the kernel choices a training run of the seed's CNN needs on
// this adapter (src/tune/: every candidate variant and tile of each op call a step makes, validated, then
// timed), keeps them in the adapter's tuning cache, and prints what it chose and by how much it beats the
// heuristics. `--out FILE` also writes the cache to a file an application can ship (WEBGPU_NN_TUNE_CACHE).
import { loadMnist } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { splitTrainVal } from '../data/split.js';
import { UsageError } from '../errors.js';
import { adapterSummary } from '../gpu/device.js';
import { prepareTraining } from '../train/prepare.js';
import { SEED_TRAINING, Trainer } from '../train/trainer.js';
import { type TuningFile, tunerOf, tuningEnabled } from '../tune/cache.js';
import { choiceLabel, type TuneReport } from '../tune/tuner.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  'batch-size': { type: 'int', default: SEED_TRAINING.batchSize, min: 1, max: 4096, help: 'samples per step of the run to tune for' },
  limit: { type: 'int', min: 2, help: 'tune for a run on the first N training images (the shorter last batches differ)' },
  'val-split': { type: 'float', default: 0.2, min: 0, max: 1, exclusiveMin: true, help: 'validation fraction of the run to tune for' },
  retune: { type: 'bool', default: false, help: 'measure again what is tuned already' },
  out: { type: 'string', help: 'also write the tuning cache to this file, to ship with an application (WEBGPU_NN_TUNE_CACHE=FILE)' },
} as const satisfies FlagsSpec;

const SUMMARY = "Measure the fastest kernel variants and tiles for the seed's CNN on this adapter and keep them in its tuning cache.";

export async function tuneCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(argv, FLAGS, 'tune', SUMMARY);
  if (!flags) return 0;
  if (!tuningEnabled()) throw new UsageError('WEBGPU_NN_TUNE=0 turns tuning off; unset it to tune');
  const { train: source } = loadMnist(null, flags.limit ?? null);
  const split = splitTrainVal(source.count, flags.valSplit, SEED_TRAINING.seed);
  return withGpu(async (gpu) => {
    const tuner = tunerOf(gpu)!;
    const store = tuner.store as TuningFile;
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    console.log(`tuning cache: ${store.path} (${store.size} entries)`);
    const data = GpuDataset.upload(gpu, source, 'train');
    try {
      const trainer = new Trainer(gpu, { ...SEED_TRAINING, batchSize: flags.batchSize });
      const report = await prepareTraining(
        trainer,
        { train: { data, indices: split.train }, val: { data, indices: split.val } },
        { log: (l) => console.log(l), retune: flags.retune },
      );
      for (const t of trainer.model.stateDict().values()) t.dispose();
      if (report.tuned.length === 0) console.log('everything this run needs is tuned already (--retune measures again)');
      else printReport(report.tuned);
      console.log(`${report.seconds.toFixed(1)} s`);
    } finally {
      data.dispose();
    }
    if (flags.out) {
      store.export(flags.out);
      console.log(`wrote ${flags.out} (load it with WEBGPU_NN_TUNE_CACHE=${flags.out})`);
    }
    return 0;
  });
}

/** The FMA loop's median over a call's rounds as a share of the tuning's steady rate, and the tries where several. */
const hostOf = (r: TuneReport) =>
  r.host ? `${Math.round(100 * r.host.steady)}%${r.host.tries > 1 ? ` (${r.host.tries} tries)` : ''}` : '';

function printReport(reports: TuneReport[]): void {
  const ms = (v: number | null) => (v === null || !Number.isFinite(v) ? '—' : v.toFixed(3));
  let before = 0;
  let after = 0;
  console.log('');
  console.log(
    'op call                                                   chosen                       ms      heuristic                    ms      gain   host',
  );
  for (const r of reports) {
    const e = r.entry;
    // a call too small to tune has no measured gain: its two times are single timings of what it would run either way
    const gain = e.kept ? 'small' : e.heuristic.ms && e.ms ? `${(e.heuristic.ms / e.ms).toFixed(2)}x` : '—';
    if (e.heuristic.ms !== null && Number.isFinite(e.ms)) {
      before += e.heuristic.ms;
      after += e.ms;
    }
    console.log(
      `${r.key.padEnd(57).slice(0, 57)} ${choiceLabel(e).padEnd(28)} ${ms(e.ms).padStart(7)}  ${choiceLabel(e.heuristic).padEnd(28)} ${ms(e.heuristic.ms).padStart(7)}  ${gain.padEnd(6)} ${hostOf(r)}`.trimEnd(),
    );
    for (const bad of r.invalid) console.log(`  INVALID ${choiceLabel(bad.choice)}: ${bad.why}`);
  }
  console.log(
    `sum over these calls: ${before.toFixed(3)} ms with the heuristics, ${after.toFixed(3)} ms tuned (${(before / after).toFixed(2)}x)`,
  );
  if (reports.some((r) => r.entry.kept))
    console.log(
      "small: under 2% of the run's time, so not tuned: the heuristics' choice, or a heavier call's of the same op that runs " +
        'the same kernels (one kernel less to compile); its times are single timings',
    );
}
