// `webgpu-nn lesson`: every experiment of the lesson, a short training run, and one offline page of them
// (src/lesson/lesson.ts).
import { adapterSummary } from '../gpu/device.js';
import { openLessonDirs, runLesson } from '../lesson/lesson.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { seedFlag } from './seed-flag.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {
  out: { type: 'string', default: 'runs/lesson', help: 'directory for index.html and each experiment’s pictures and numbers' },
  seed: seedFlag(42, 'seed of every experiment'),
  quick: {
    type: 'bool',
    default: false,
    help: 'each experiment in its quick form and a 3-epoch training run (a few minutes on a software adapter)',
  },
} as const satisfies FlagsSpec;

export async function lessonCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'lesson',
    'Runs every experiment of the batch-normalisation lesson and a short training, and writes DIR/index.html: each claim beside its picture and the numbers measured here.',
  );
  if (!flags) return 0;
  const options = { seed: flags.seed, quick: flags.quick };
  // DIR and every experiment's sub-directory are checked and locked before the GPU is opened.
  const dirs = openLessonDirs(flags.out, options);
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const t0 = performance.now();
    const page = await runLesson(gpu, dirs, options, (line) => console.log(line));
    console.log(`wrote ${page} in ${((performance.now() - t0) / 1000).toFixed(0)}s`);
    return 0;
  }).finally(() => dirs.release());
}
