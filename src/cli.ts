#!/usr/bin/env node
// The `webgpu-nn` command. Errors of ours (bad flags, files, shapes, no adapter) print one clear line and
// exit 2 (usage) or 1; anything else is a bug and prints its stack.
import { UsageError, WebGpuNnError } from './errors.js';

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
    summary: "the lesson's weight-initialisation histograms",
    run: async (a) => (await import('./commands/init-histograms.js')).initHistogramsCommand(a),
  },
  'bn-gradients': {
    summary: "the lesson's gradient experiment: per-layer gradient norms with and without batch norm",
    run: async (a) => (await import('./commands/bn-gradients.js')).bnGradientsCommand(a),
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
    'Environment: WEBGPU_NN_BACKEND (vulkan, null, ...), WEBGPU_NN_ADAPTER (a substring of the adapter name),',
    '  WEBGPU_NN_TUNE=0 (no kernel tuning: the heuristics alone), WEBGPU_NN_TUNE_CACHE (a shipped tuning cache file),',
    '  WEBGPU_NN_PRECOMPILE=0 (no helper device compiling kernels in parallel before a run).',
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

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof WebGpuNnError) {
      console.error(`webgpu-nn: ${e.message}`);
      process.exitCode = e instanceof UsageError ? 2 : 1;
    } else {
      console.error(e);
      process.exitCode = 1;
    }
  },
);
