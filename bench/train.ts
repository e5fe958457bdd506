// End-to-end training benchmark: webgpu-nn against PyTorch (CPU) and TensorFlow.js (WebGPU on the same Dawn
// adapter, or its pure-JS CPU backend) on the same machine, network, data bytes and batch size.
//
//   npm run bench:train -- [--samples 8000] [--epochs 3] [--peers pytorch,tfjs] [--batch-size 64] [--json]
//                          [--shader-cache empty] [--profile-steps 32] [--replay-rounds 15]
//
// The network is the seed's (conv 1→10 k5, maxpool, ReLU, BN, dropout 0.5, conv 10→20 k5, maxpool, ReLU, BN,
// dropout 0.5, fc 320→50, ReLU, fc 50→10, log-softmax + NLL; SGD lr 0.01, weight decay 1e-4), trained on the
// first N of the 10,000 embedded MNIST digits (src/data/dataset.ts). The driver writes those bytes to a raw
// file (N*784 pixels, then N labels) that the peers read, so every system trains on the same data.
//
// Each system does one warm-up pass over the first --warmup-samples samples (pipeline compilation, caches,
// allocator); the mean loss of that pass is the "start" loss. Then --epochs full passes are timed; each
// system reads its loss sum back once per epoch, not per step. samples/s = N·E / (sum of epoch times).
// A result counts only if its last epoch's mean loss is finite and below the start loss; the program prints
// both and exits 1 when any system fails that check.
//
// For webgpu-nn it also reports (src/tune/, src/train/prepare.ts, src/gpu/profiler.ts):
//   - the planning pass before the first step (it compiles the run's kernels, and tunes those this adapter's
//     tuning cache has no choice for: WEBGPU_NN_TUNE=0 keeps the heuristics), and the compile overhead of the
//     start of the run: planning pass + warm-up pass − the warm-up's samples at the timed epochs' rate.
//     `--shader-cache empty` points Mesa's shader cache at an empty directory first (a machine's first run);
//   - where a step's time goes: --profile-steps steps after the timed epochs, each dispatch in a pass of its
//     own between GPU timestamps, summed per kernel (those steps are not in the timed epochs); and one step's
//     dispatches replayed, each alone as bench:kernels times a kernel (many runs in one timed pass, so neither a
//     pass per dispatch nor llvmpipe's 65.5 µs timestamp tick weighs on the short ones), --replay-rounds rounds,
//     beside the whole step replayed the same way: each kernel's share of a step, as the issue's 5% line means it;
//   - dispatches and submits per step.
//
// Peers run as child processes, one after another, after webgpu-nn has released its device:
//   pytorch   bench/peers/pytorch_train.py with the system python3 (Debian: apt-get install python3-torch)
//   tfjs      bench/peers/tfjs-train.mjs, TF.js 4.22's WebGPU backend; the packages are installed on demand
//             into bench/.peers (gitignored; not dependencies of webgpu-nn)
//   tfjs-cpu  the same script with TF.js's pure-JS CPU backend (very slow)
// Default: pytorch when python3 can import torch. Results are appended as JSON lines to
// bench/results/train-<date>.jsonl; with --json they also go to stdout (the table then goes to stderr).
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Dataset, loadEmbeddedDigits } from '../src/data/dataset.js';
import { GpuDataset } from '../src/data/gpu-data.js';
import { UsageError, WebGpuNnError } from '../src/errors.js';
import { adapterSummary } from '../src/gpu/device.js';
import { summarizeProfile } from '../src/gpu/profiler.js';
import { type Dispatch, Gpu } from '../src/gpu/runtime.js';
import * as F from '../src/nn/ops.js';
import { setDefaultGpu, tidy } from '../src/nn/tensor.js';
import { prepareTraining } from '../src/train/prepare.js';
import { SEED_TRAINING, Trainer, type TrainOptions } from '../src/train/trainer.js';
import { attachTuning, type TuningFile } from '../src/tune/cache.js';
import { timeDispatches } from '../src/tune/measure.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../src/util/flags.js';
import { runBenchmark } from './main.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..'); // dist/bench/train.js → repo root
const PEERS_DIR = join(ROOT, 'bench', '.peers');
const TFJS_PACKAGES = ['@tensorflow/tfjs@4.22.0', '@tensorflow/tfjs-backend-webgpu@4.22.0'];
const PEER_NAMES = ['pytorch', 'tfjs', 'tfjs-cpu'] as const;
type PeerName = (typeof PEER_NAMES)[number];

const FLAGS = {
  samples: { type: 'int', default: 8000, min: 1, max: 10000, help: 'training samples per epoch (the first N embedded MNIST digits)' },
  epochs: { type: 'int', default: 3, min: 1, help: 'timed epochs per system' },
  'batch-size': { type: 'int', default: 64, min: 1, max: 4096, help: 'samples per step' },
  'warmup-samples': {
    type: 'int',
    default: 640,
    min: 1,
    help: 'untimed warm-up pass over this many samples; its mean loss is the start loss',
  },
  peers: {
    type: 'string',
    help: `comma-separated peers: ${PEER_NAMES.join(', ')}, or none (default: pytorch if python3 can import torch)`,
  },
  threads: { type: 'int', default: 2, min: 1, help: 'PyTorch intra-op threads' },
  python: {
    type: 'string',
    default: existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3',
    help: 'Python interpreter for the PyTorch peer',
  },
  seed: { type: 'int', default: 42, min: 0, help: 'seed for initialisation, shuffling and dropout (each system uses its own generator)' },
  'peer-timeout': { type: 'int', default: 3600, min: 1, help: 'seconds a peer may run before it is stopped' },
  'shader-cache': {
    type: 'string',
    default: 'keep',
    choices: ['keep', 'empty'],
    help: "webgpu-nn's Mesa shader cache: the machine's own (keep), or an empty one (a first run's compile overhead)",
  },
  'profile-steps': { type: 'int', default: 32, min: 0, help: 'steps profiled per kernel after the timed epochs (0: none)' },
  'replay-rounds': {
    type: 'int',
    default: 15,
    min: 0,
    help: "rounds of one step's dispatches replayed, each alone, for each kernel's share of a step (0: none)",
  },
  json: { type: 'bool', default: false, help: 'JSON lines on stdout (the table goes to stderr)' },
} as const satisfies FlagsSpec;

const PROGRAM = { name: 'bench:train', usage: 'npm run bench:train --' };
const SUMMARY = "Train the seed's CNN with webgpu-nn, PyTorch and TensorFlow.js on the same data and batch size, and compare samples/s.";

/** One system's result, as the peers print it (snake_case, one JSON line) and as the results file keeps it. */
interface Result {
  system: string;
  version?: string;
  backend?: string;
  device?: string;
  threads?: number;
  samples?: number;
  epochs?: number;
  batch_size?: number;
  warmup_samples?: number;
  warmup_seconds?: number;
  samples_per_sec?: number | null;
  epoch_seconds?: number[];
  epoch_losses?: number[];
  initial_loss?: number;
  final_loss?: number;
  valid?: boolean;
  error?: string;
  [extra: string]: unknown;
}

let out: (line: string) => void = (line) => console.log(line);

async function main(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(argv, FLAGS, PROGRAM, SUMMARY);
  if (!flags) return 0;
  if (flags.json) out = (line) => console.error(line);

  const peers = choosePeers(flags.peers, flags.python);
  const ds = loadEmbeddedDigits(flags.samples);
  if (ds.count < flags.samples) throw new UsageError(`--samples ${flags.samples}: only ${ds.count} embedded digits exist`);
  const warmup = Math.min(flags.warmupSamples, ds.count);
  const common = { samples: ds.count, epochs: flags.epochs, batchSize: flags.batchSize, warmup, seed: flags.seed };
  out(
    `bench:train: ${ds.count} embedded MNIST digits × ${flags.epochs} timed epochs, batch ${flags.batchSize}, ` +
      `warm-up ${warmup} samples; peers: ${peers.length ? peers.join(', ') : 'none'}`,
  );
  out(`host: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical CPUs, Node ${process.version}`);

  const results: Result[] = [];
  const ours = await runWebgpuNn(ds, common, {
    emptyShaderCache: flags.shaderCache === 'empty',
    profileSteps: flags.profileSteps,
    replayRounds: flags.replayRounds,
  });
  results.push(ours);

  if (peers.length) {
    const dataFile = join(tmpdir(), `webgpu-nn-bench-train-${process.pid}.u8`);
    const raw = new Uint8Array(ds.count * 785);
    raw.set(ds.images, 0);
    raw.set(ds.labels, ds.count * 784);
    writeFileSync(dataFile, raw);
    try {
      for (const peer of peers) results.push(await runPeer(peer, dataFile, common, flags));
    } finally {
      rmSync(dataFile, { force: true });
    }
  }

  const adapter = ours.adapter as string | undefined;
  report(results, adapter, flags.json, common);
  return results.every((r) => r.valid === true) ? 0 : 1;
}

/** The peers to run: the --peers list, or PyTorch when this machine has it. */
function choosePeers(list: string | undefined, python: string): PeerName[] {
  if (list !== undefined) {
    if (list === 'none' || list === '') return [];
    const names = list
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const n of names) {
      if (!(PEER_NAMES as readonly string[]).includes(n))
        throw new UsageError(`--peers: unknown peer "${n}"; choose from ${PEER_NAMES.join(', ')} (or none)`);
    }
    return [...new Set(names)] as PeerName[];
  }
  const probe = spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
  if (probe.status === 0) return ['pytorch'];
  out(`note: ${python} cannot import torch, so PyTorch is skipped (install it with: apt-get install python3-torch)`);
  return [];
}

interface Common {
  samples: number;
  epochs: number;
  batchSize: number;
  warmup: number;
  seed: number;
}

/** webgpu-nn's own training through the library's Trainer: planning pass, warm-up pass, timed epochs, profiled steps. */
async function runWebgpuNn(
  ds: Dataset,
  c: Common,
  opts: { emptyShaderCache: boolean; profileSteps: number; replayRounds: number },
): Promise<Result> {
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  let shaderCache: string | null = null;
  const saved = process.env.MESA_SHADER_CACHE_DIR;
  if (opts.emptyShaderCache) {
    // Mesa reads it when the device is created; set only for our device (the peers get the caller's environment).
    shaderCache = mkdtempSync(join(tmpdir(), 'webgpu-nn-bench-mesa-'));
    process.env.MESA_SHADER_CACHE_DIR = shaderCache;
    out(`webgpu-nn: Mesa shader cache: ${shaderCache} (empty)`);
  }
  const gpu = await Gpu.create();
  if (opts.emptyShaderCache) {
    if (saved === undefined) delete process.env.MESA_SHADER_CACHE_DIR;
    else process.env.MESA_SHADER_CACHE_DIR = saved;
  }
  const tuner = attachTuning(gpu);
  setDefaultGpu(gpu);
  const adapter = adapterSummary(gpu.adapter);
  out(`adapter: ${adapter}`);
  // Only Mesa's drivers (llvmpipe, and Mesa's GPU drivers) keep compiled shaders in MESA_SHADER_CACHE_DIR.
  const mesa = gpu.adapter.vendor === 'mesa';
  if (opts.emptyShaderCache && !mesa)
    out(
      `webgpu-nn: --shader-cache empty empties Mesa's shader cache, which this adapter's driver (${gpu.adapter.vendor} ${gpu.adapter.architecture}) does not use`,
    );
  out(
    tuner
      ? `webgpu-nn: tuning cache ${(tuner.store as TuningFile).path}`
      : 'webgpu-nn: WEBGPU_NN_TUNE=0: the heuristics choose the kernels',
  );
  const options: TrainOptions = { ...SEED_TRAINING, epochs: c.epochs, patience: c.epochs, batchSize: c.batchSize, seed: c.seed };
  const data = GpuDataset.upload(gpu, ds, 'bench');
  try {
    const trainer = new Trainer(gpu, options); // inputs scaled to [0, 1] only, as the seed's ToTensor()
    const range = (n: number) => Uint32Array.from({ length: n }, (_, i) => i);
    out('webgpu-nn: planning pass (compiles the kernels; tunes what the cache lacks)...');
    let t0 = performance.now();
    const prepared = await prepareTraining(trainer, { train: { data, indices: range(ds.count) } }, { log: (l) => out(`  ${l}`) });
    const prepareSeconds = (performance.now() - t0) / 1000;
    const tuneSeconds = prepared.tuneSeconds;
    out(
      `webgpu-nn: planning pass ${prepareSeconds.toFixed(2)} s${prepared.tuned.length ? ` (tuned ${prepared.tuned.length} kernel calls)` : ''}`,
    );
    out(`webgpu-nn: warm-up pass over ${c.warmup} samples...`);
    t0 = performance.now();
    const initialLoss = await trainer.trainEpoch({ data, indices: range(c.warmup) }, 0);
    const warmupSeconds = (performance.now() - t0) / 1000;
    if (!Number.isFinite(initialLoss)) {
      throw new WebGpuNnError(`webgpu-nn: the warm-up loss is ${initialLoss}; not timing a broken run`);
    }
    out(`webgpu-nn: warm-up ${warmupSeconds.toFixed(2)} s, mean loss ${initialLoss.toFixed(4)}`);

    const all = range(ds.count);
    const stepsPerEpoch = Math.ceil(ds.count / c.batchSize);
    const epochSeconds: number[] = [];
    const epochLosses: number[] = [];
    const before = { ...gpu.counters };
    for (let epoch = 1; epoch <= c.epochs; epoch++) {
      t0 = performance.now();
      const loss = await trainer.trainEpoch({ data, indices: all }, epoch);
      const s = (performance.now() - t0) / 1000;
      epochSeconds.push(s);
      epochLosses.push(loss);
      out(
        `webgpu-nn: epoch ${epoch}: ${s.toFixed(2)} s (${((1000 * s) / stepsPerEpoch).toFixed(2)} ms/step, ` +
          `${Math.round(ds.count / s)} samples/s), mean loss ${loss.toFixed(4)}`,
      );
    }
    const steps = stepsPerEpoch * c.epochs;
    const timed = epochSeconds.reduce((a, b) => a + b, 0);
    const finalLoss = epochLosses[epochLosses.length - 1];
    const counters = { dispatches: gpu.counters.dispatches - before.dispatches, submits: gpu.counters.submits - before.submits };
    // The start of the run beyond what the same samples cost in a timed epoch: compilation, mostly.
    const compileSeconds = prepareSeconds - tuneSeconds + warmupSeconds - (c.warmup * timed) / (ds.count * c.epochs);
    let profile: { kernel: string; calls: number; ms: number; share: number }[] = [];
    let profiledStepMs: number | null = null;
    if (opts.profileSteps > 0 && gpu.device.features.has('timestamp-query')) {
      const n = Math.min(opts.profileSteps * c.batchSize, ds.count);
      const profiledSteps = Math.ceil(n / c.batchSize);
      gpu.startProfiling();
      await trainer.trainEpoch({ data, indices: range(n) }, c.epochs + 1);
      const dispatches = await gpu.stopProfiling();
      profile = summarizeProfile(dispatches, profiledSteps);
      profiledStepMs = profile.reduce((a, k) => a + k.ms, 0);
      printProfile(profile, profiledSteps, (1000 * timed) / steps);
    }
    let replay: { kernel: string; ms: number; share: number }[] = [];
    let replayedStepMs: number | null = null;
    if (opts.replayRounds > 0) {
      // one step recorded without running (its dispatches and their uniforms), then replayed
      const idx = data.indexList(range(c.batchSize)).keep();
      const lossSum = F.zeros([1], { label: 'replayed loss sum' }).keep();
      let step: Dispatch[] = [];
      tidy(() => {
        step = gpu.dryRun(() => {
          const { x, y } = data.batch(idx, 0, c.batchSize, trainer.norm);
          trainer.trainStep(x, y, lossSum);
        });
      });
      const times = await timeDispatches(gpu, step, opts.replayRounds);
      idx.dispose();
      lossSum.dispose();
      const sum = times.each.reduce((a, b) => a + b, 0);
      replay = step
        .map((d, i) => ({ kernel: `${d.kernel.name} ${d.workgroups.join('x')}`, ms: times.each[i], share: times.each[i] / sum }))
        .sort((a, b) => b.ms - a.ms);
      replayedStepMs = times.all;
      printReplay(replay, times.all, opts.replayRounds, (1000 * timed) / steps);
    }
    return {
      system: 'webgpu-nn',
      version,
      backend: 'webgpu',
      device: gpu.adapter.description || adapter,
      adapter,
      adapter_kind: gpu.adapter.kind,
      samples: ds.count,
      epochs: c.epochs,
      batch_size: c.batchSize,
      warmup_samples: c.warmup,
      warmup_seconds: warmupSeconds,
      samples_per_sec: (ds.count * c.epochs) / timed,
      epoch_seconds: epochSeconds,
      epoch_losses: epochLosses,
      initial_loss: initialLoss,
      final_loss: finalLoss,
      valid: Number.isFinite(finalLoss) && finalLoss < initialLoss,
      dispatches_per_step: counters.dispatches / steps,
      submits_per_step: counters.submits / steps,
      pipelines: gpu.counters.pipelines,
      shader_cache: !mesa ? 'not Mesa' : opts.emptyShaderCache ? 'empty' : 'kept',
      tuning: tuner ? 'on' : 'off (WEBGPU_NN_TUNE=0)',
      tuned_calls: prepared.tuned.filter((r) => !r.entry.kept).length,
      prepare_seconds: prepareSeconds,
      tune_seconds: tuneSeconds,
      compile_overhead_seconds: compileSeconds,
      profiled_step_ms: profiledStepMs,
      profile,
      replayed_step_ms: replayedStepMs,
      replay,
    };
  } finally {
    data.dispose();
    setDefaultGpu(null);
    gpu.destroy();
    if (shaderCache) rmSync(shaderCache, { recursive: true, force: true });
  }
}

/** One step's dispatches replayed, each alone (its name and grid), largest first, with its share of their sum. */
function printReplay(replay: { kernel: string; ms: number; share: number }[], stepMs: number, rounds: number, timedMs: number): void {
  const total = replay.reduce((a, k) => a + k.ms, 0);
  out('');
  out(
    `webgpu-nn: one step's ${replay.length} dispatches replayed, each alone as bench:kernels times a kernel (medians of ${rounds} ` +
      `rounds): ${total.toFixed(2)} ms in all; the whole step replayed ${stepMs.toFixed(2)} ms; the timed epochs ${timedMs.toFixed(2)} ms/step`,
  );
  out(`${'kernel (grid)'.padEnd(58)} ${'ms'.padStart(7)} ${'share'.padStart(6)}`);
  for (const k of replay) out(`${k.kernel.padEnd(58)} ${k.ms.toFixed(3).padStart(7)} ${`${(100 * k.share).toFixed(1)}%`.padStart(6)}`);
}

/** Where a profiled step's GPU time goes, per kernel (the kernel's name and grid), largest first. */
function printProfile(profile: { kernel: string; calls: number; ms: number; share: number }[], steps: number, stepMs: number): void {
  const total = profile.reduce((a, k) => a + k.ms, 0);
  out('');
  out(
    `webgpu-nn: where a step's GPU time goes (${steps} profiled steps, each dispatch in its own timestamped pass: ` +
      `${total.toFixed(2)} ms of kernels per step; the timed epochs ran at ${stepMs.toFixed(2)} ms/step)`,
  );
  out(`${'kernel (grid)'.padEnd(52)} ${'calls'.padStart(5)} ${'ms/step'.padStart(8)} ${'share'.padStart(6)}`);
  for (const k of profile) {
    out(
      `${k.kernel.padEnd(52)} ${fmt(k.calls, 0).padStart(5)} ${k.ms.toFixed(3).padStart(8)} ${`${(100 * k.share).toFixed(1)}%`.padStart(6)}`,
    );
  }
}

/** Installs TF.js into bench/.peers when it is not there yet (it is not a dependency of webgpu-nn). */
function ensureTfjs(): void {
  const have = ['@tensorflow/tfjs', '@tensorflow/tfjs-backend-webgpu'].every((p) =>
    existsSync(join(PEERS_DIR, 'node_modules', p, 'package.json')),
  );
  if (have) return;
  const args = ['install', '--prefix', relative(process.cwd(), PEERS_DIR) || '.', '--no-save', '--no-audit', '--no-fund', ...TFJS_PACKAGES];
  out(`tfjs: TensorFlow.js is not in ${relative(process.cwd(), PEERS_DIR)}; installing it there (not a project dependency):`);
  out(`  npm ${args.join(' ')}`);
  // npm's own output goes to stderr, so that stdout stays JSON lines only with --json.
  const r = spawnSync('npm', args, { stdio: ['ignore', 2, 2], shell: process.platform === 'win32' });
  if (r.status !== 0) out(`tfjs: npm install failed (exit ${r.status ?? r.signal}); the tfjs peer will report the error`);
}

function runPeer(
  peer: PeerName,
  dataFile: string,
  c: Common,
  flags: { python: string; threads: number; peerTimeout: number },
): Promise<Result> {
  const shared = [
    '--epochs',
    String(c.epochs),
    '--batch-size',
    String(c.batchSize),
    '--warmup-samples',
    String(c.warmup),
    '--seed',
    String(c.seed),
  ];
  let cmd: string;
  let args: string[];
  if (peer === 'pytorch') {
    cmd = flags.python;
    args = [join(ROOT, 'bench', 'peers', 'pytorch_train.py'), dataFile, ...shared, '--threads', String(flags.threads)];
  } else {
    if (peer === 'tfjs') ensureTfjs();
    cmd = process.execPath;
    args = [join(ROOT, 'bench', 'peers', 'tfjs-train.mjs'), dataFile, ...shared, '--backend', peer === 'tfjs' ? 'webgpu' : 'cpu'];
  }
  const shown = [cmd, ...args].map((a) => (a.startsWith(ROOT) ? relative(process.cwd(), a) : a)).join(' ');
  out(`${peer}: ${shown}`);
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), flags.peerTimeout * 1000);
    const done = (code: number | null, why?: string) => {
      clearTimeout(timer);
      const line = stdout
        .split('\n')
        .reverse()
        .find((l) => l.trim().startsWith('{'));
      let r: Result | null = null;
      try {
        r = line ? (JSON.parse(line) as Result) : null;
      } catch {
        r = null;
      }
      if (!r) {
        const tail = stderr.trim().split('\n').slice(-5).join('\n    ');
        r = { system: peer, error: why ?? `exited with ${code} without a result${tail ? `:\n    ${tail}` : ''}` };
      }
      if (peer === 'tfjs-cpu') r.system = 'tfjs-cpu';
      if (r.error) {
        r.valid = false;
        out(`${peer}: ${r.error}`);
      } else {
        r.valid = isFiniteNum(r.final_loss) && isFiniteNum(r.initial_loss) && r.final_loss < r.initial_loss;
        out(`${peer}: ${fmt(r.samples_per_sec, 0)} samples/s; loss ${fmt(r.initial_loss, 4)} → ${fmt(r.final_loss, 4)}`);
      }
      resolve(r);
    };
    child.on('error', (e) => done(null, `could not start ${cmd}: ${e.message}`));
    child.on('close', (code) => done(code));
  });
}

const isFiniteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const fmt = (v: unknown, digits: number) =>
  isFiniteNum(v) ? v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : '—';

function report(results: Result[], adapter: string | undefined, json: boolean, c: Common): void {
  const base = results.find((r) => r.system === 'webgpu-nn')?.samples_per_sec ?? null;
  const torch = results.find((r) => r.system === 'pytorch' && !r.error)?.samples_per_sec ?? null;
  const steps = Math.ceil(c.samples / c.batchSize);
  const ratio = (v: number | null | undefined, ref: number | null) => (isFiniteNum(v) && ref ? v / ref : null);

  const header = ['system', 'version', 'samples/s', '÷ webgpu-nn', '÷ PyTorch', 's/epoch', 'ms/step', 'loss start → end', 'check'];
  const rows = results.map((r) => {
    const sps = r.samples_per_sec;
    const epochS = r.epoch_seconds?.length ? r.epoch_seconds.reduce((a, b) => a + b, 0) / r.epoch_seconds.length : null;
    const name =
      r.system +
      (r.backend && r.system !== 'webgpu-nn' && r.system !== 'pytorch' ? ` (${r.backend})` : '') +
      (r.system === 'pytorch' && r.threads ? ` (${r.threads} threads)` : '');
    if (r.error) return [name, r.version ?? '', 'error', '', '', '', '', '', r.error.split('\n')[0].slice(0, 70)];
    const rb = ratio(sps, base);
    const rt = ratio(sps, torch);
    return [
      name,
      r.version ?? '',
      fmt(sps, 1),
      rb === null ? '—' : `${fmt(rb, rb < 0.1 ? 3 : 2)}×`,
      rt === null ? '—' : `${fmt(rt, rt < 0.1 ? 3 : 2)}×`,
      fmt(epochS, 2),
      epochS === null ? '—' : fmt((1000 * epochS) / steps, 2),
      `${fmt(r.initial_loss, 4)} → ${fmt(r.final_loss, 4)}`,
      r.valid ? 'ok' : 'FAILED (loss did not fall)',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const numeric = new Set([2, 3, 4, 5, 6]);
  const line = (cells: string[]) =>
    cells
      .map((s, i) => (numeric.has(i) ? s.padStart(widths[i]) : s.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  out('');
  out(`adapter (webgpu-nn${results.some((r) => r.system === 'tfjs') ? ', tfjs' : ''}): ${adapter ?? 'unknown'}`);
  out(
    `${c.samples} samples × ${c.epochs} epochs, batch ${c.batchSize} (${steps} steps/epoch), after a ${c.warmup}-sample warm-up; ` +
      "÷ columns: samples/s divided by that system's",
  );
  out(line(header));
  out(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) out(line(row));
  const ours = results.find((r) => r.system === 'webgpu-nn');
  if (ours && isFiniteNum(ours.dispatches_per_step)) {
    out(
      `webgpu-nn: ${fmt(ours.dispatches_per_step, 1)} dispatches and ${fmt(ours.submits_per_step, 2)} submits per step, ` +
        `${ours.pipelines} pipelines compiled; compile overhead at the start of the run ${fmt(ours.compile_overhead_seconds, 1)} s ` +
        (ours.shader_cache === 'not Mesa'
          ? "(a driver without Mesa's shader cache)"
          : `(${ours.shader_cache === 'empty' ? 'empty' : "the machine's"} Mesa shader cache)`) +
        (isFiniteNum(ours.tune_seconds) && ours.tune_seconds > 0 ? `, plus ${fmt(ours.tune_seconds, 1)} s tuning` : '') +
        `; kernel tuning ${ours.tuning}`,
    );
  }

  const date = new Date();
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `train-${date.toISOString().slice(0, 10)}.jsonl`);
  const host = { cpu: cpus()[0]?.model ?? null, logical_cpus: cpus().length, node: process.version };
  const lines = results.map((r) =>
    JSON.stringify({
      bench: 'train',
      date: date.toISOString(),
      ...r,
      adapter: r.adapter ?? (r.system === 'tfjs' ? adapter : undefined),
      host,
      ratio_to_webgpu_nn: ratio(r.samples_per_sec, base),
      ratio_to_pytorch: ratio(r.samples_per_sec, torch),
    }),
  );
  appendFileSync(file, `${lines.join('\n')}\n`);
  out(`results appended to ${relative(process.cwd(), file)}`);
  if (json) for (const l of lines) console.log(l);
}

runBenchmark(PROGRAM.name, main);
