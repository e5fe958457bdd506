#!/usr/bin/env node
import { readFileSync } from 'node:fs';
// TensorFlow.js peer of `npm run bench:train`: trains the seed's CNN with TF.js 4.22 and prints ONE JSON line.
//
//   node bench/peers/tfjs-train.mjs DATA.u8 [--epochs 3] [--batch-size 64] [--warmup-samples 640]
//                                  [--backend webgpu|cpu] [--seed 42] [--modules DIR]
//   node bench/peers/tfjs-train.mjs --synthetic 2000 ...   (no data file: class-dependent noise images)
//
// DATA.u8 is the driver's raw file (N*784 uint8 pixels, then N uint8 labels; N = size / 785), so TF.js
// trains on the same bytes as webgpu-nn and PyTorch. Pixels are scaled to [0, 1] as the seed does.
//
// The WebGPU backend runs on Dawn through npm `webgpu` (the project's own dependency): `navigator.gpu` is
// made from its `create([])` and its `globals` (GPUBufferUsage, ...) are installed before the backend loads,
// so TF.js gets the same adapter webgpu-nn uses (llvmpipe on a machine without a GPU).
//
// TF.js is not a dependency of webgpu-nn: it is loaded from --modules (default bench/.peers/node_modules),
// where `node dist/bench/train.js --peers tfjs` installs it with
//   npm install --prefix bench/.peers --no-save @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-webgpu@4.22.0
// When it is missing this prints {"system":"tfjs",...,"error":...} and exits 0.
//
// Model: tf.layers in channels-last layout (NHWC), the seed's layer order; batch normalisation with
// momentum 0.9 (TF's convention: moving = 0.9*moving + 0.1*batch, i.e. PyTorch's momentum 0.1), eps 1e-5;
// kernels and biases initialised like PyTorch's defaults (uniform ±1/sqrt(fan_in)). Loss: NLL of
// log-softmax. Optimiser: tf.train.sgd(lr) with weight decay coupled as torch.optim.SGD does (the gradient
// of every trainable variable gets + wd·θ, the gradient of an L2 term wd/2·Σθ² added to the loss; the loss
// reported is the data loss alone, as PyTorch reports it). The loss is summed on the device and read once
// per epoch, so no per-step readback is timed.
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
// The same seeded shuffle as webgpu-nn's own loop (the bench driver runs after `npm run build`).
import { mulberry32 } from '../../dist/src/util/random.js';

const here = dirname(fileURLToPath(import.meta.url));
const INSTALL_HINT =
  'npm install --prefix bench/.peers --no-save @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-webgpu@4.22.0' +
  ' (or run `node dist/bench/train.js --peers tfjs`, which installs them)';

// TF.js logs its own notices with console.log/warn; stdout carries only our one JSON line.
const writeOut = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
console.log = (...a) => console.error(...a);

function parseArgs(argv) {
  const o = {
    data: null,
    synthetic: 0,
    epochs: 3,
    batchSize: 64,
    warmupSamples: 640,
    backend: 'webgpu',
    seed: 42,
    lr: 0.01,
    weightDecay: 1e-4,
    modules: resolve(here, '..', '.peers', 'node_modules'),
  };
  const num = (flag, v) => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n)) throw new Error(`${flag}: expected a number, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--synthetic':
        o.synthetic = num(a, argv[++i]);
        break;
      case '--epochs':
        o.epochs = num(a, argv[++i]);
        break;
      case '--batch-size':
        o.batchSize = num(a, argv[++i]);
        break;
      case '--warmup-samples':
        o.warmupSamples = num(a, argv[++i]);
        break;
      case '--seed':
        o.seed = num(a, argv[++i]);
        break;
      case '--lr':
        o.lr = num(a, argv[++i]);
        break;
      case '--weight-decay':
        o.weightDecay = num(a, argv[++i]);
        break;
      case '--backend':
        o.backend = argv[++i];
        break;
      case '--modules':
        o.modules = resolve(argv[++i]);
        break;
      default:
        if (a.startsWith('--')) throw new Error(`unknown flag ${a}`);
        o.data = a;
    }
  }
  if (!['webgpu', 'cpu'].includes(o.backend)) throw new Error(`--backend: expected webgpu or cpu, got ${o.backend}`);
  return o;
}

function shuffled(n, rng) {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

function loadData(o) {
  if (o.data) {
    const raw = readFileSync(o.data);
    if (raw.length === 0 || raw.length % 785 !== 0)
      throw new Error(`${o.data}: ${raw.length} bytes is not a multiple of 785 (784 pixels + 1 label per image)`);
    const n = raw.length / 785;
    const pixels = new Float32Array(n * 784);
    for (let i = 0; i < n * 784; i++) pixels[i] = raw[i] / 255;
    const labels = Int32Array.from(raw.subarray(n * 784));
    if (labels.some((l) => l > 9)) throw new Error(`${o.data}: labels must be 0..9`);
    return { n, pixels, labels };
  }
  const n = o.synthetic;
  if (!(n > 0)) throw new Error('give a data file or --synthetic N');
  const rng = mulberry32(o.seed);
  const pixels = new Float32Array(n * 784);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(rng() * 10);
    labels[i] = c;
    const r = Math.floor(c / 4),
      q = c % 4;
    for (let y = 0; y < 28; y++) {
      for (let x = 0; x < 28; x++) {
        const inBlock = y >= 4 + 7 * r && y < 10 + 7 * r && x >= 2 + 6 * q && x < 8 + 6 * q;
        pixels[i * 784 + y * 28 + x] = Math.min(1, rng() * 0.3 + (inBlock ? 0.7 : 0));
      }
    }
  }
  return { n, pixels, labels };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const base = { system: 'tfjs', backend: o.backend };

  let req;
  try {
    req = createRequire(join(o.modules, 'noop.js'));
    req.resolve('@tensorflow/tfjs');
    if (o.backend === 'webgpu') req.resolve('@tensorflow/tfjs-backend-webgpu');
  } catch {
    writeOut({ ...base, error: `tfjs not installed in ${o.modules}: ${INSTALL_HINT}` });
    return 0;
  }

  let adapterDesc = null;
  if (o.backend === 'webgpu') {
    // navigator.gpu from Dawn, before the backend module loads (it registers itself only if it sees one).
    const { create, globals } = await import('webgpu');
    Object.assign(globalThis, globals);
    const gpu = create([]);
    Object.defineProperty(globalThis, 'navigator', { value: { ...(globalThis.navigator ?? {}), gpu }, configurable: true, writable: true });
    const adapter = await gpu.requestAdapter();
    if (!adapter) {
      writeOut({ ...base, error: 'no WebGPU adapter from Dawn (run `bash scripts/setup.sh`)' });
      return 0;
    }
    const i = adapter.info;
    adapterDesc = `${i.vendor ?? ''} ${i.architecture ?? ''} (${i.description ?? ''})`.replace(/\s+/g, ' ').trim();
  }

  const tf = req('@tensorflow/tfjs');
  if (o.backend === 'webgpu') req('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend(o.backend))) {
    writeOut({ ...base, error: `TF.js could not initialise its ${o.backend} backend` });
    return 0;
  }
  await tf.ready();

  const { n, pixels, labels } = loadData(o);
  const images = tf.tensor4d(pixels, [n, 28, 28, 1]);
  const labelsT = tf.tensor1d(labels, 'int32');

  // PyTorch's default init for Conv2d/Linear: kaiming_uniform(a=√5) = uniform ±1/sqrt(fan_in) for the
  // kernel, uniform ±1/sqrt(fan_in) for the bias. varianceScaling(scale 1/3, fanIn, uniform) gives the former.
  let seed = o.seed;
  const init = (fanIn) => ({
    kernelInitializer: tf.initializers.varianceScaling({ scale: 1 / 3, mode: 'fanIn', distribution: 'uniform', seed: seed++ }),
    biasInitializer: tf.initializers.randomUniform({ minval: -1 / Math.sqrt(fanIn), maxval: 1 / Math.sqrt(fanIn), seed: seed++ }),
  });
  const bn = () => tf.layers.batchNormalization({ axis: -1, momentum: 0.9, epsilon: 1e-5 });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 10, kernelSize: 5, ...init(25) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.activation({ activation: 'relu' }),
      bn(),
      tf.layers.dropout({ rate: 0.5, seed: seed++ }),
      tf.layers.conv2d({ filters: 20, kernelSize: 5, ...init(250) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.activation({ activation: 'relu' }),
      bn(),
      tf.layers.dropout({ rate: 0.5, seed: seed++ }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 50, activation: 'relu', ...init(320) }),
      tf.layers.dense({ units: 10, ...init(50) }),
    ],
  });
  const vars = model.trainableWeights.map((w) => w.read());
  const optimizer = tf.train.sgd(o.lr);

  /** Trains over the samples in `order` (Int32Array); returns [mean batch loss, steps]. */
  async function runPass(order) {
    let lossSum = tf.keep(tf.scalar(0));
    let steps = 0;
    for (let off = 0; off < order.length; off += o.batchSize) {
      const idx = order.subarray(off, Math.min(off + o.batchSize, order.length));
      tf.tidy(() => {
        const it = tf.tensor1d(idx, 'int32');
        const x = tf.gather(images, it);
        const y = tf.oneHot(tf.gather(labelsT, it), 10).toFloat();
        const { value, grads } = tf.variableGrads(() => {
          const logp = tf.logSoftmax(model.apply(x, { training: true }));
          return tf.neg(tf.mean(tf.sum(tf.mul(y, logp), 1)));
        }, vars);
        const decayed = {};
        for (const v of vars) decayed[v.name] = tf.add(grads[v.name], tf.mul(v, o.weightDecay));
        optimizer.applyGradients(decayed);
        const next = tf.keep(tf.add(lossSum, value));
        lossSum.dispose();
        lossSum = next;
      });
      steps++;
    }
    const total = (await lossSum.data())[0];
    lossSum.dispose();
    return [total / Math.max(steps, 1), steps];
  }

  const warm = Math.min(o.warmupSamples, n);
  let t0 = performance.now();
  const [initialLoss] = await runPass(Int32Array.from({ length: warm }, (_, i) => i));
  const warmupSeconds = (performance.now() - t0) / 1000;

  const epochSeconds = [];
  const epochLosses = [];
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const order = shuffled(n, mulberry32(o.seed * 1000003 + epoch));
    t0 = performance.now();
    const [loss] = await runPass(order);
    epochSeconds.push((performance.now() - t0) / 1000);
    epochLosses.push(loss);
  }
  const timed = epochSeconds.reduce((a, b) => a + b, 0);
  const finalLoss = epochLosses.length ? epochLosses[epochLosses.length - 1] : initialLoss;
  writeOut({
    ...base,
    version: tf.version.tfjs,
    device: o.backend === 'webgpu' ? adapterDesc : `cpu (pure JS, ${process.version})`,
    threads: 1,
    samples: n,
    epochs: o.epochs,
    batch_size: o.batchSize,
    warmup_samples: warm,
    warmup_seconds: warmupSeconds,
    samples_per_sec: timed > 0 ? (n * o.epochs) / timed : null,
    epoch_seconds: epochSeconds,
    epoch_losses: epochLosses,
    initial_loss: initialLoss,
    final_loss: finalLoss,
    valid: Number.isFinite(initialLoss) && Number.isFinite(finalLoss) && finalLoss < initialLoss,
  });
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    writeOut({
      system: 'tfjs',
      error: String(err?.stack ?? err)
        .split('\n')
        .slice(0, 3)
        .join(' | '),
    });
    process.exit(1);
  },
);
