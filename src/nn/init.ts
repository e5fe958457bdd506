// Weight initialisation, computed on the CPU with a seeded generator and uploaded once (not a hot path).
// Names and formulas follow torch.nn.init; the seed lesson compares normal, zeros, Glorot/Xavier and
// He/Kaiming with histograms of a layer's outputs.
import { DataError, UsageError } from '../errors.js';
import { mulberry32 } from '../util/random.js';

/** A seeded uniform generator in [0, 1): repeatable runs from one `--seed`. */
export const makeRng = mulberry32;

// The process-wide default generator, which layers made without an `rng` draw their initial weights from (and
// nn.Dropout its seed), as torch's default generator: deterministic from the start, reseeded by manualSeed.
const DEFAULT_SEED = 0;
let defaultGenerator = mulberry32(DEFAULT_SEED);

/** Reseeds the default generator (torch.manual_seed): layers made afterwards start from the same weights. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new DataError(`manualSeed: seed must be an integer from 0 to 2^32 − 1, got ${seed}`);
  }
  defaultGenerator = mulberry32(seed);
}

/** Draws from the default generator as it is at each call (so a later manualSeed takes effect). */
export const defaultRng = (): number => defaultGenerator();

/** Standard normal samples by Box–Muller. */
export function normalSampler(rng: () => number): () => number {
  let spare: number | null = null;
  return () => {
    if (spare !== null) {
      const s = spare;
      spare = null;
      return s;
    }
    const u = 1 - rng();
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  };
}

/** fan_in and fan_out of a weight shaped [out, in, ...kernel] as torch.nn.init computes them. */
export function fans(shape: readonly number[]): { fanIn: number; fanOut: number } {
  const receptive = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: (shape[1] ?? 1) * receptive, fanOut: shape[0] * receptive };
}

export const INITIALIZERS = ['pytorch', 'normal', 'zeros', 'xavier-normal', 'xavier-uniform', 'kaiming-normal', 'kaiming-uniform'] as const;
export type InitName = (typeof INITIALIZERS)[number];

/**
 * Values for a weight of `shape`:
 *   pytorch          the layer's default: kaiming_uniform(a=√5), i.e. U(−1/√fan_in, 1/√fan_in)
 *   normal           N(0, 1) (the seed's RandomNormalInitializer)
 *   zeros            0
 *   xavier-normal    N(0, 2/(fan_in+fan_out))            xavier-uniform  U(±√(6/(fan_in+fan_out)))
 *   kaiming-normal   N(0, 2/fan_in) (ReLU gain)           kaiming-uniform U(±√(6/fan_in))
 */
export function initWeight(name: InitName, shape: readonly number[], rng: () => number): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const { fanIn, fanOut } = fans(shape);
  const normal = normalSampler(rng);
  const uniform = (bound: number) => {
    for (let i = 0; i < n; i++) out[i] = (2 * rng() - 1) * bound;
  };
  const gaussian = (std: number) => {
    for (let i = 0; i < n; i++) out[i] = normal() * std;
  };
  switch (name) {
    case 'pytorch':
      uniform(1 / Math.sqrt(fanIn));
      break;
    case 'normal':
      gaussian(1);
      break;
    case 'zeros':
      break;
    case 'xavier-normal':
      gaussian(Math.sqrt(2 / (fanIn + fanOut)));
      break;
    case 'xavier-uniform':
      uniform(Math.sqrt(6 / (fanIn + fanOut)));
      break;
    case 'kaiming-normal':
      gaussian(Math.sqrt(2 / fanIn));
      break;
    case 'kaiming-uniform':
      uniform(Math.sqrt(6 / fanIn));
      break;
    default:
      throw new UsageError(`--init: unknown initializer "${name}"; choose one of ${INITIALIZERS.join(', ')}`);
  }
  return out;
}

/** PyTorch's default bias: U(−1/√fan_in, 1/√fan_in). */
export function initBias(fanIn: number, n: number, rng: () => number): Float32Array {
  const bound = 1 / Math.sqrt(fanIn);
  return Float32Array.from({ length: n }, () => (2 * rng() - 1) * bound);
}
