// Float64 reference: elementwise ops and reductions.
import { pcgHash } from '../../src/shaders/dropout.js';

// y = max(x, 0); NaN stays NaN (Math.max propagates it, as torch.relu does).
export function relu(x: Float64Array): Float64Array {
  return x.map((v) => Math.max(v, 0));
}

// dx = 0 where x <= 0, else dy: PyTorch's threshold_backward, so 0 at x = 0 and dy where x is NaN.
export function reluBackward(x: Float64Array, dy: Float64Array): Float64Array {
  return x.map((v, i) => (v <= 0 ? 0 : dy[i]));
}

// The dropout mask of (p, seed, step) over n elements, from the hash's definition (dropout.ts's header): the
// engine's one CPU function is its 32-bit PCG hash, used here as the key and per-element hash are defined.
export function dropoutMask(n: number, p: number, seed: number, step: number): Uint8Array {
  const key = pcgHash((seed ^ pcgHash(step)) >>> 0);
  const threshold = Math.round(p * 2 ** 24);
  return Uint8Array.from({ length: n }, (_, i) => (pcgHash((pcgHash((i ^ key) >>> 0) + key) >>> 0) >>> 8 >= threshold ? 1 : 0));
}

// y = x·mask/(1−p) with mask ∈ {0,1} (inverted dropout).
export function dropoutApply(x: Float64Array, mask: ArrayLike<number>, p: number): Float64Array {
  const k = 1 / (1 - p);
  return x.map((v, i) => v * mask[i] * k);
}

// dx = dy·mask/(1−p).
export function dropoutBackward(dy: Float64Array, mask: ArrayLike<number>, p: number): Float64Array {
  return dropoutApply(dy, mask, p);
}

// c = a + b.
export function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

// y = s·x.
export function scale(x: Float64Array, s: number): Float64Array {
  return x.map((v) => v * s);
}

// Σ_i x[i].
export function sum(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return s;
}

// (1/n)·Σ_i x[i].
export function mean(x: ArrayLike<number>): number {
  return sum(x) / x.length;
}

// y = tanh(x).
export function tanh(x: Float64Array): Float64Array {
  return x.map(Math.tanh);
}

// dx = dy·(1 − y²) with y = tanh(x), from the forward's output.
export function tanhBackward(y: Float64Array, dy: Float64Array): Float64Array {
  return y.map((v, i) => dy[i] * (1 - v * v));
}

// y = 1/(1 + e^−x).
export function sigmoid(x: Float64Array): Float64Array {
  return x.map((v) => 1 / (1 + Math.exp(-v)));
}

// dx = dy·y·(1 − y) with y = sigmoid(x), from the forward's output.
export function sigmoidBackward(y: Float64Array, dy: Float64Array): Float64Array {
  return y.map((v, i) => dy[i] * v * (1 - v));
}
