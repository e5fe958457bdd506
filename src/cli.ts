#!/usr/bin/env node
// The `webgpu-nn` command. A fault of the user's (bad flags, files, shapes) or of the machine (no adapter,
// a full disk) prints one clear line and exits 2 (usage) or 1; only a bug of ours prints a stack, with a line
// asking for a report.
import { report } from './commands/report.js';
import { UsageError } from './errors.js';

const COMMANDS: Record<string, { summary: string; run: (argv: string[]) => Promise<number> }> = {
  train: {
    summary: "train the seed's MNIST CNN with early stopping (the main program)",
    run: async (a) => (await import('./commands/train.js')).trainCommand(a),
  },
  evaluate: {
    summary: 'accuracy and confusion matrix of a trained model',
    run: async (a) => (await import('./commands/evaluate.js')).evaluateCommand(a),
  },
  predict: { summary: 'classify PNG images of digits', run: async (a) => (await import('./commands/predict.js')).predictCommand(a) },
  'init-histograms': {
    summary: "the lesson's initialisation experiment: output histograms and std per layer under each initialiser",
    run: async (a) => (await import('./commands/init-histograms.js')).initHistogramsCommand(a),
  },
  'bn-gradients': {
    summary: "the lesson's gradient histograms at initialisation with and without batch norm (and the CNN's per-step norms)",
    run: async (a) => (await import('./commands/bn-gradients.js')).bnGradientsCommand(a),
  },
  'bn-benefits': {
    summary: "the seed's CNN with BN after/before the ReLU and without, over learning rates and initialisers",
    run: async (a) => (await import('./commands/bn-benefits.js')).bnBenefitsCommand(a),
  },
  normalization: {
    summary: "the lesson's input-normalisation picture: loss contours and SGD paths, raw vs standardised inputs",
    run: async (a) => (await import('./commands/normalization.js')).normalizationCommand(a),
  },
  lesson: {
    summary: 'run every experiment of the lesson and a short training; write DIR/index.html with the claims, pictures and numbers',
    run: async (a) => (await import('./commands/lesson.js')).lessonCommand(a),
  },
  web: {
    summary: 'serve the training page (train in a browser tab, draw digits); prints its URL',
    run: async (a) => (await import('./commands/web.js')).webCommand(a),
  },
  tune: {
    summary: 'measure the fastest kernels for this adapter ahead of time (kept in its tuning cache)',
    run: async (a) => (await import('./commands/tune.js')).tuneCommand(a),
  },
  demo: {
    summary: 'print the adapter and check a few kernels against the CPU',
    run: async (a) => (await import('./commands/demo.js')).demoCommand(a),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return [
    'usage: webgpu-nn <command> [flags]    (webgpu-nn <command> --help for its flags)',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Environment: WEBGPU_NN_BACKEND (vulkan, metal, d3d12, ...), WEBGPU_NN_ADAPTER (a substring of the adapter name,',
    '             in any case), WEBGPU_NN_POWER (low-power or high-performance), WEBGPU_NN_TUNE=0 (no kernel',
    '             tuning: the heuristics alone), WEBGPU_NN_TUNE_CACHE (a shipped tuning cache file),',
    '             WEBGPU_NN_PRECOMPILE=0 (no helper device compiling kernels in parallel before a run).',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"\n${usage()}`);
  return command.run(rest);
}

// A closed stdout (`webgpu-nn train | head`) is not an error: stop printing and stop as Ctrl-C would (train
// saves what it has), without a stack trace for the EPIPE.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code !== 'EPIPE') throw e;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  if (process.listenerCount('SIGTERM') > 0) process.emit('SIGTERM', 'SIGTERM');
  else process.exit(process.exitCode ?? 0);
});
// Errors raised outside the command's own promise (a callback of Dawn's, a stream's) are reported the same way.
process.on('unhandledRejection', (e) => {
  process.exitCode = report(e);
});
process.on('uncaughtException', (e) => {
  process.exit(report(e));
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.exitCode = report(e);
  },
);
