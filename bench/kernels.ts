// `npm run bench:kernels`: validates and times every registered kernel benchmark on this machine's adapter.
//
//   npm run bench:kernels -- [--filter <substring>]... [--quick | --samples N] [--json] [--list] [--no-peak] [--interleave]
//                            [--runs N] [--target PCT] [--plot FILE.png]
//
// Entries come from bench/kernels-<family>.ts files, each exporting `entries: BenchEntry[]` (see harness.ts);
// this program finds every compiled kernels-*.js beside it, so a family adds its benchmarks without
// touching this file. Results: a table on stdout (stderr with --json), and one JSON line per entry appended
// to bench/results/kernels-<date>.jsonl (and printed on stdout with --json).
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { adapterSummary } from '../src/gpu/device.js';
import { Gpu } from '../src/gpu/runtime.js';
import { figurePng } from '../src/plot/render.js';
import { attachTuning, type TuningFile } from '../src/tune/cache.js';
import { HostProbe } from '../src/tune/probe.js';
import { writeFileAtomic } from '../src/util/files.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../src/util/flags.js';
import {
  type BenchEntry,
  type BenchResult,
  type BenchRun,
  BenchSkip,
  benchKernel,
  benchKernelsInTurns,
  entriesOverRuns,
  measurePeak,
  type Peak,
  runsAtTarget,
  runsFigure,
  type Spread,
  STEADY,
  steadyRun,
} from './harness.js';
import { runBenchmark } from './main.js';

const PROGRAM = { name: 'bench:kernels', usage: 'npm run bench:kernels --' };
const FLAGS = {
  filter: {
    type: 'string',
    repeat: true,
    help: 'run only the entries whose name or shape contains this substring (case-insensitive; any of several)',
  },
  quick: { type: 'bool', default: false, help: 'at most 5 timed samples per entry instead of 15' },
  samples: {
    type: 'int',
    min: 1,
    max: 1000,
    help: 'timed samples per entry (default: 15, fewer for a few long entries); more spread a run over more of a noisy host',
  },
  json: { type: 'bool', default: false, help: 'JSON lines on stdout (the table goes to stderr)' },
  list: { type: 'bool', default: false, help: 'list the matching entries without running them' },
  peak: {
    type: 'bool',
    default: true,
    help: "measure the adapter's FMA and copy peaks first, and time the FMA loop beside the entries to show how steady the host held (--no-peak skips them, the % columns and the host column)",
  },
  runs: {
    type: 'int',
    default: 1,
    min: 1,
    max: 100,
    help: "measure the peak and time the entries this many times in one process, then show each entry's % of the peaks over the runs the host held steady in (a shared host's slow spells last seconds to minutes)",
  },
  target: {
    type: 'float',
    min: 0,
    exclusiveMin: true,
    max: 1000,
    help: 'count the runs in which every entry reached this % of a peak (of the FMA peak or the copy peak, the higher), and draw it with --plot',
  },
  plot: {
    type: 'string',
    help: "draw every run's entries (% of the peak, steady runs as dots, the others as crosses) to this PNG file",
  },
  interleave: {
    type: 'bool',
    default: false,
    help: "time the entries in turns, a sample of each per round, so that a slow spell of the host spreads over all of them (holds every entry's buffers at once: use with --filter)",
  },
} as const satisfies FlagsSpec;
const SUMMARY = "Validate and time every registered kernel benchmark on this machine's adapter.";

const isEntry = (x: unknown): x is BenchEntry =>
  typeof x === 'object' &&
  x !== null &&
  ['name', 'shape', 'cost', 'setup'].every((k) => k in x) &&
  typeof (x as BenchEntry).setup === 'function';

/**
 * The entries of every kernels-<family>.js file next to this program, in file-name order: its `entries`
 * export, or else every exported array of entry-shaped objects ({name, shape, cost, setup}).
 */
async function loadEntries(): Promise<BenchEntry[]> {
  const here = dirname(fileURLToPath(import.meta.url));
  const files = readdirSync(here)
    .filter((f) => /^kernels-[\w-]+\.js$/.test(f))
    .sort();
  const all: BenchEntry[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as Record<string, unknown>;
    const lists = Array.isArray(mod.entries)
      ? [mod.entries]
      : Object.values(mod).filter((v) => Array.isArray(v) && v.length > 0 && v.every(isEntry));
    if (lists.length === 0)
      throw new Error(`bench/${f.replace(/\.js$/, '.ts')} must export \`entries: BenchEntry[]\` (see bench/harness.ts)`);
    for (const list of lists) all.push(...(list as BenchEntry[]));
  }
  return all;
}

const fmt = (x: number, digits = 3) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toPrecision(digits));
const pct = (x: number | null) => (x === null ? '-' : `${x.toFixed(1)}%`);
const spreadCell = (s: Spread | null) => (s === null ? '-' : `${s.median.toFixed(1)}% (${s.min.toFixed(1)}–${s.max.toFixed(1)})`);

const COLUMNS = ['kernel', 'shape', 'median ms', 'IQR', 'GFLOP/s', 'GB/s', '% FMA peak', '% copy peak', 'host', 'samples', 'version'];
const WIDTHS = [30, 18, 10, 5, 9, 9, 10, 11, 5, 9, 0];
/** The samples' interquartile range as a share of their median: the wider, the more the host moved them. */
const iqr = (r: BenchResult) => `${((100 * (r.msQ3 - r.msQ1)) / r.msMedian).toFixed(0)}%`;
const row = (cells: string[], widths: readonly number[] = WIDTHS) =>
  cells
    .map((c, i) => (widths[i] ? c.padEnd(widths[i]) : c))
    .join(' ')
    .trimEnd();

interface RunOptions {
  gpu: Gpu;
  probe: HostProbe | null;
  peak: boolean;
  quick: boolean;
  samples?: number;
  interleave: boolean;
}

/**
 * One run: the peak (unless --no-peak), then every chosen entry, its table row printed and its record emitted;
 * the run's results where it measured the peak, and its failures.
 */
async function runOnce(
  chosen: readonly BenchEntry[],
  args: RunOptions,
  out: (line: string) => void,
  emit: (record: object) => void,
): Promise<{ run: BenchRun | null; failures: number }> {
  const { gpu, probe } = args;
  let failures = 0;
  let peak: Peak | null = null;
  if (args.peak) {
    peak = await measurePeak(gpu);
    out(`peak: ${fmt(peak.gflops)} GFLOP/s (FMA loop), ${fmt(peak.gbps)} GB/s (copy loop)`);
    emit({ kind: 'peak', ...peak });
  }
  out('');
  out(row(COLUMNS));
  out(row(COLUMNS.map((c, i) => '-'.repeat(Math.max(c.length, WIDTHS[i] || 7)))));
  const unsteady: string[] = [];
  let lowPeak = false;
  const done: BenchResult[] = [];
  const report = (e: BenchEntry, r: BenchResult | Error) => {
    if (r instanceof Error) {
      const skipped = r instanceof BenchSkip;
      if (!skipped) failures++;
      const why = r.message.split('\n')[0];
      out(row([e.name, e.shape, skipped ? `skipped: ${why}` : `FAILED: ${why}`]));
      emit({ kind: 'kernel', name: e.name, shape: e.shape, status: skipped ? 'skipped' : 'failed', error: r.message });
      return;
    }
    done.push(r);
    if (r.host !== null && r.host < STEADY) unsteady.push(`${r.name} ${r.shape}`);
    if (r.host !== null && r.host > 1 / STEADY) lowPeak = true;
    const samples = `${r.samples}${r.repeat > 1 ? `x${r.repeat}` : ''}${r.timer === 'wall' ? ' wall' : ''}`;
    out(
      row([
        r.name,
        r.shape,
        fmt(r.msMedian),
        iqr(r),
        fmt(r.gflops),
        fmt(r.gbps),
        pct(r.pctPeakFlops),
        pct(r.pctPeakBandwidth),
        r.host === null ? '-' : `${(100 * r.host).toFixed(0)}%`,
        samples,
        r.detail,
      ]),
    );
    emit({ kind: 'kernel', status: 'ok', ...r, ...(args.interleave ? { interleaved: true } : {}) });
  };
  const opts = { gpu, peak, probe: peak ? probe : null, quick: args.quick, samples: args.samples };
  if (args.interleave) {
    const results = await benchKernelsInTurns(chosen, opts);
    for (const [i, e] of chosen.entries()) report(e, results[i]);
  } else {
    for (const e of chosen) report(e, await benchKernel(e, opts).catch((err: Error) => err));
  }
  if (lowPeak)
    out(
      `\nwarning: the FMA loop ran faster beside the entries than when it measured the peak (host over ${pct(100 / STEADY)}): ` +
        'the host slowed while the peak was measured, so the % columns read high; run it again',
    );
  if (unsteady.length)
    out(
      `\nwarning: the host slowed while ${unsteady.length === 1 ? 'one entry' : `${unsteady.length} entries`} ran (host: the FMA ` +
        `loop's median beside their samples, under ${pct(100 * STEADY)} of its best), so their % columns read low; run ` +
        `${unsteady.length === 1 ? 'it' : 'them'} again: ${unsteady.slice(0, 8).join(', ')}${unsteady.length > 8 ? `, and ${unsteady.length - 8} more` : ''}`,
    );
  return { run: peak ? { peak, results: done } : null, failures };
}

/** After several runs: each entry's % of the peaks over the runs the host held steady in (entriesOverRuns). */
function reportRuns(runs: readonly BenchRun[], out: (line: string) => void): void {
  if (runs.length === 0) return;
  const steady = runs.filter(steadyRun).length;
  const peaks = runs.map((r) => r.peak.gflops);
  const bounds = `${pct(100 * STEADY)}–${pct(100 / STEADY)}`;
  out(
    `\nover ${runs.length} runs (FMA peak ${fmt(Math.min(...peaks))}–${fmt(Math.max(...peaks))} GFLOP/s): ` +
      (steady
        ? `${steady} steady (every entry's host column ${bounds}), the figures below over those`
        : `none steady (no run had every entry's host column within ${bounds}), the figures below over all of them`),
  );
  const cols = ['kernel', 'shape', 'runs', '% FMA peak: median (min–max)', '% copy peak: median (min–max)'];
  const widths = [30, 18, 5, 30, 0];
  out(row(cols, widths));
  out(
    row(
      cols.map((c, i) => '-'.repeat(Math.max(c.length, widths[i] || 7))),
      widths,
    ),
  );
  for (const e of entriesOverRuns(runs))
    out(row([e.name, e.shape, `${e.runs}`, spreadCell(e.pctPeakFlops), spreadCell(e.pctPeakBandwidth)], widths));
}

/**
 * Where --plot writes, checked before anything runs (a long run should not end on a bad path): a .png file in
 * a directory that exists; else why not.
 */
function plotPath(file: string): { path: string } | { why: string } {
  const path = resolve(file);
  if (!path.toLowerCase().endsWith('.png')) return { why: `--plot ${file}: give a file name ending in .png` };
  const dir = dirname(path);
  if (!existsSync(dir) || !statSync(dir).isDirectory())
    return { why: `--plot ${file}: the directory ${dir} does not exist; create it first` };
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    return { why: `--plot ${file}: the directory ${dir} is not writable; choose another` };
  }
  return { path };
}

async function main(argv: string[]): Promise<number> {
  const args = parseFlagsOrHelp(argv, FLAGS, PROGRAM, SUMMARY);
  if (!args) return 0;
  if (args.quick && args.samples !== undefined) {
    console.error('bench:kernels: --quick and --samples both set the samples per entry; give one of them');
    return 2;
  }
  for (const [flag, given] of [
    ['--runs', args.runs > 1],
    ['--target', args.target !== undefined],
    ['--plot', args.plot !== undefined],
  ] as const)
    if (given && !args.peak) {
      console.error(`bench:kernels: ${flag} compares the entries with the peaks, which --no-peak skips; give one of them`);
      return 2;
    }
  const plot = args.plot === undefined ? null : plotPath(args.plot);
  if (plot && 'why' in plot) {
    console.error(`bench:kernels: ${plot.why}`);
    return 2;
  }
  const filters = args.filter.map((f) => f.toLowerCase());
  const all = await loadEntries();
  const chosen = all.filter((e) => filters.length === 0 || filters.some((f) => `${e.name} ${e.shape}`.toLowerCase().includes(f)));
  if (args.list) {
    for (const e of chosen) console.log(`${e.name}  ${e.shape}`);
    return 0;
  }
  if (chosen.length === 0) {
    console.error(`bench:kernels: no entry matches ${filters.join(', ')}; --list shows them`);
    return 2;
  }
  const out = args.json ? (s: string) => process.stderr.write(`${s}\n`) : (s: string) => process.stdout.write(`${s}\n`);
  const date = new Date();
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const resultsDir = join(root, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const resultsFile = join(resultsDir, `kernels-${date.toISOString().slice(0, 10)}.jsonl`);
  const gpu = await Gpu.create();
  // The library's own choices are the tuned ones where this adapter's tuning cache has them (WEBGPU_NN_TUNE=0: the heuristics).
  const tuner = attachTuning(gpu);
  const adapter = adapterSummary(gpu.adapter);
  const emit = (record: object) => {
    const line = JSON.stringify({ date: date.toISOString(), adapter, ...record });
    appendFileSync(resultsFile, `${line}\n`);
    if (args.json) process.stdout.write(`${line}\n`);
  };
  let failures = 0;
  try {
    out(`adapter: ${adapter}`);
    out(
      tuner
        ? `tuning cache: ${(tuner.store as TuningFile).path} (${(tuner.store as TuningFile).size} entries)`
        : 'kernel tuning off (WEBGPU_NN_TUNE=0)',
    );
    // with the peak, the FMA loop runs beside the entries' samples: its median there says how steady the host held
    const probe = args.peak ? await HostProbe.create(gpu) : null;
    const runs: BenchRun[] = [];
    try {
      for (let run = 1; run <= args.runs; run++) {
        if (args.runs > 1) out(`${run > 1 ? '\n' : ''}run ${run} of ${args.runs}`);
        const record = (r: object) => emit(args.runs > 1 ? { run, ...r } : r);
        const results = await runOnce(chosen, { ...args, gpu, probe }, out, record);
        failures += results.failures;
        if (results.run) runs.push(results.run);
      }
    } finally {
      probe?.dispose();
    }
    if (args.runs > 1) reportRuns(runs, out);
    if (args.target !== undefined) {
      const { steady, all } = runsAtTarget(runs, args.target);
      out(
        `\nevery entry at ${args.target}% or more of a peak (FMA or copy, the higher): in ${steady.met} of ${steady.of} steady ` +
          `run${steady.of === 1 ? '' : 's'}, ${all.met} of ${all.of} in all`,
      );
    }
    if (plot) {
      const when = date.toISOString().slice(0, 16).replace('T', ' ');
      const title = `${gpu.adapter.description || adapter}, ${when} UTC, ${runs.length} run${runs.length === 1 ? '' : 's'}`;
      writeFileAtomic(plot.path, figurePng(runsFigure(runs, title, args.target)));
      out(`\nplot: ${plot.path}`);
    }
  } finally {
    gpu.destroy();
  }
  out(`\nresults appended to ${resultsFile}${failures ? `; ${failures} FAILED` : ''}`);
  return failures ? 1 : 0;
}

runBenchmark(PROGRAM.name, main);
