// The training page (served by `webgpu-nn web`): trains the seed's CNN in the tab with WebGPU, printing the
// CLI's epoch lines and a live loss chart; a drawing pad classified as you draw; checkpoints of
// `webgpu-nn train` loaded from a file picker or dropped on the page.
//
// URL parameters: ?autostart starts training at once; epochs=N and lr=X set the fields; limit=N trains on the
// first N digits only (quick runs). The page's state is in <body data-state>: loading, ready, training, done,
// no-webgpu or error (scripts and tests wait on it).
import { NoAdapterError } from '../src/errors.js';
import { adapterSummary } from '../src/gpu/device.js';
import { Gpu } from '../src/gpu/runtime.js';
import { setDefaultGpu } from '../src/nn/tensor.js';
import { createMnistCnn, type MnistCnn } from '../src/train/model.js';
import { digitProbabilities } from '../src/train/predict.js';
import { modelFromCheckpoint, parseModelCheckpoint } from '../src/train/saved-model.js';
import { SEED_TRAINING } from '../src/train/trainer.js';
import { decodeSafetensors } from '../src/util/safetensors.js';
import { DrawPad, showDigit } from './draw-pad.js';
import { LossChart } from './loss-chart.js';
import { fetchDigits, type PageSettings, trainInPage } from './training.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
type State = 'loading' | 'ready' | 'training' | 'done' | 'no-webgpu' | 'error';
const setState = (s: State) => {
  document.body.dataset.state = s;
};

function fatal(message: string, state: State = 'error'): void {
  const box = $('fatal');
  box.textContent = box.hidden ? message : `${box.textContent}\n${message}`;
  box.hidden = false;
  setState(state);
  $<HTMLButtonElement>('start').disabled = true;
}
const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));
addEventListener('error', (e) => fatal(`error: ${e.message}`));
addEventListener('unhandledrejection', (e) => fatal(`error: ${messageOf(e.reason)}`));

/** The model the drawing pad is classified with, and where its weights came from. */
interface Predictor {
  model: MnistCnn;
  norm: { mean: number; std: number };
  info: string;
}

/** Reads epochs, lr and limit from the URL into the form; a bad value is an error naming the parameter. */
function applyUrlSettings(params: URLSearchParams): number | null {
  const read = (name: string, ok: (v: number) => boolean, what: string) => {
    const raw = params.get(name);
    if (raw === null) return null;
    const v = Number(raw);
    if (!ok(v)) throw new Error(`${name}=${raw} in the page's URL: expected ${what}`);
    return v;
  };
  const epochs = read('epochs', (v) => Number.isInteger(v) && v >= 1, 'an integer >= 1');
  const lr = read('lr', (v) => v > 0 && Number.isFinite(v), 'a number > 0');
  const limit = read('limit', (v) => Number.isInteger(v) && v >= 2, 'an integer >= 2');
  if (epochs !== null) $<HTMLInputElement>('epochs').value = String(epochs);
  if (lr !== null) $<HTMLInputElement>('lr').value = String(lr);
  return limit;
}

function formSettings(limit: number | null): PageSettings {
  const epochs = Number($<HTMLInputElement>('epochs').value);
  const lr = Number($<HTMLInputElement>('lr').value);
  if (!Number.isInteger(epochs) || epochs < 1)
    throw new Error(`epochs: expected an integer >= 1, got "${$<HTMLInputElement>('epochs').value}"`);
  if (!(lr > 0)) throw new Error(`learning rate: expected a number > 0, got "${$<HTMLInputElement>('lr').value}"`);
  return { epochs, lr, limit };
}

async function main(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const limit = applyUrlSettings(params);

  let gpu: Gpu;
  try {
    gpu = await Gpu.create();
  } catch (e) {
    if (!(e instanceof NoAdapterError)) throw e;
    $('adapter').textContent = 'adapter: none';
    fatal(`This page trains a network with WebGPU, and this browser offers none.\n${e.message}`, 'no-webgpu');
    return;
  }
  setDefaultGpu(gpu);
  const adapterLine = `adapter: ${adapterSummary(gpu.adapter)}`;
  $('adapter').textContent = adapterLine;
  const digits = await fetchDigits('embedded-digits.u8');

  // ---- drawing and prediction ------------------------------------------------------------------------------------
  let predictor: Predictor = {
    model: createMnistCnn(SEED_TRAINING),
    norm: { mean: 0, std: 1 },
    info: 'model: untrained (train it, or load a checkpoint)',
  };
  predictor.model.eval();
  const probsList = $('probs');
  const bars = Array.from({ length: 10 }, (_, d) => {
    const li = document.createElement('li');
    li.innerHTML = `<span>${d}</span><span class="bar" style="width:0%"></span><span class="pct"></span>`;
    probsList.append(li);
    return li;
  });
  /** The last input the network saw and its probabilities (for scripts and tests). */
  let last: { pixels: Float32Array | null; probs: Float64Array | null } = { pixels: null, probs: null };
  /** The prediction being made (settled once the pad's latest drawing is classified). */
  let running: Promise<void> = Promise.resolve();
  let predicting = false;
  let again = false;
  const predict = (): Promise<void> => {
    if (predicting) {
      again = true; // the loop below classifies the newest drawing when it is done with this one
      return running;
    }
    predicting = true;
    running = (async () => {
      try {
        do {
          again = false;
          const pixels = pad.digit();
          showDigit($<HTMLCanvasElement>('seen'), pixels);
          const probs = pixels ? await digitProbabilities(predictor.model, [pixels], predictor.norm) : null;
          const top = probs ? probs.indexOf(Math.max(...probs)) : -1;
          $('guess').textContent = probs ? String(top) : '–';
          bars.forEach((li, d) => {
            const p = probs ? probs[d] : 0;
            li.classList.toggle('top', d === top);
            (li.children[1] as HTMLElement).style.width = `${(100 * p).toFixed(1)}%`;
            li.children[2].textContent = probs ? `${(100 * p).toFixed(1)}%` : '';
          });
          last = { pixels, probs };
        } while (again);
      } finally {
        predicting = false;
      }
    })();
    return running;
  };
  const pad = new DrawPad($<HTMLCanvasElement>('pad'), () => void predict());
  $('clear').addEventListener('click', () => pad.clear());
  const usePredictor = (p: Predictor) => {
    predictor = p;
    $('model-info').textContent = p.info;
    void predict();
  };

  // ---- checkpoints of `webgpu-nn train` ----------------------------------------------------------------------------
  const loadCheckpoint = async (file: File) => {
    const error = $('checkpoint-error');
    error.hidden = true;
    try {
      const checkpoint = parseModelCheckpoint(decodeSafetensors(new Uint8Array(await file.arrayBuffer()), file.name), file.name);
      const { model, config, norm } = modelFromCheckpoint(checkpoint);
      const { metadata } = checkpoint;
      const epoch = metadata.epoch ? `, epoch ${metadata.epoch}` : '';
      const acc = metadata.valAcc ? `, validation accuracy ${(100 * Number(metadata.valAcc)).toFixed(2)}%` : '';
      usePredictor({
        model,
        norm,
        info: `model: ${file.name}${epoch}${acc} (lr ${config.lr}, ${config.batchNorm ? 'with' : 'without'} batch norm)`,
      });
    } catch (e) {
      error.textContent = messageOf(e);
      error.hidden = false;
    }
  };
  $<HTMLInputElement>('checkpoint').addEventListener('change', (e) => {
    const file = (e.target as HTMLInputElement).files?.[0];
    if (file) void loadCheckpoint(file);
  });
  addEventListener('dragover', (e) => {
    e.preventDefault();
    document.body.classList.add('dragging');
  });
  addEventListener('dragleave', () => document.body.classList.remove('dragging'));
  addEventListener('drop', (e) => {
    e.preventDefault();
    document.body.classList.remove('dragging');
    const file = e.dataTransfer?.files[0];
    if (file) void loadCheckpoint(file);
  });

  // ---- training ----------------------------------------------------------------------------------------------------
  const chart = new LossChart($<HTMLCanvasElement>('chart'));
  const log = $('log');
  const line = (text: string) => {
    log.textContent += `${text}\n`;
    log.scrollTop = log.scrollHeight;
  };
  const start = $<HTMLButtonElement>('start');
  const stop = $<HTMLButtonElement>('stop');
  let stopRequested = false;
  stop.addEventListener('click', () => {
    stopRequested = true;
    stop.disabled = true;
    $('status').textContent = 'stopping after this step…';
  });
  const run = async () => {
    const settings = formSettings(limit);
    start.disabled = true;
    stop.disabled = false;
    stopRequested = false;
    setState('training');
    chart.reset();
    log.textContent = '';
    line(adapterLine);
    const t0 = performance.now();
    let epochNow = 1;
    const tick = setInterval(() => {
      if (!stopRequested) $('status').textContent = `epoch ${epochNow}: ${((performance.now() - t0) / 1000).toFixed(0)}s`;
    }, 500);
    try {
      const trainer = await trainInPage(
        gpu,
        digits,
        settings,
        {
          line,
          epoch: (record, trainer, improved) => {
            chart.add(record);
            epochNow = record.epoch + 1;
            if (!improved) return;
            // A copy of the best weights so far: the pad keeps working while training goes on.
            const model = createMnistCnn(trainer.options);
            model.loadStateDict(trainer.model.stateDict());
            model.eval();
            usePredictor({
              model,
              norm: trainer.norm,
              info: `model: trained here, best epoch ${record.epoch} (validation accuracy ${(100 * record.valAcc).toFixed(2)}%)`,
            });
          },
        },
        () => stopRequested,
      );
      trainer.model.eval();
      $('status').textContent = 'done';
    } finally {
      clearInterval(tick);
      start.disabled = false;
      stop.disabled = true;
    }
    setState('done');
  };
  $('train-form').addEventListener('submit', (e) => {
    e.preventDefault();
    run().catch((err) => fatal(`training failed: ${messageOf(err)}`));
  });

  // For scripts and tests: the pad (paint, clear), the runtime, and the last prediction.
  (window as unknown as { webgpuNnPage: unknown }).webgpuNnPage = { pad, gpu, last: () => last, settled: () => running };
  start.disabled = false;
  setState('ready');
  if (params.has('autostart')) run().catch((err) => fatal(`training failed: ${messageOf(err)}`));
}

main().catch((e) => fatal(`the page failed to start: ${messageOf(e)}`));
