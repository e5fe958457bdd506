// Inverted dropout over a flat float32 array: y = x·mask/(1 − p), mask_i = [u_i ≥ p], u_i uniform in [0, 1).
// The mask is never stored: u_i comes from a counter-based hash of (seed, step, i), so the backward
// recomputes the identical mask, and a new `step` (one per training step) gives a fresh, independent mask.
//   key = pcg(seed ⊕ pcg(step))               (on the CPU, once per call)
//   h_i = pcg(pcg(i ⊕ key) + key)              two rounds of the PCG-RXS-M-XS 32-bit hash (Jarzynski & Olano 2020)
//   keep_i = (h_i >> 8) ≥ round(p·2²⁴)         an exact 24-bit comparison: p = 0 keeps all, p = 1 none
// A dropped element is 0, or NaN where x is NaN or infinite: x·0 as PyTorch computes it (a dropped NaN must
// not hide a diverging run), tested by the bits since the compiler may assume no NaNs.
// Cost: ~20 integer ops per element, 8 bytes per element.
//
// dropout_v1 / dropout_v2   the elementwise map template (the DROPOUT registry: v1 scalar, v2 vec4, chosen
//                           whenever the buffers hold whole vec4s; see elementwise.ts), one kernel for forward
//                           and backward: the backward is the same map applied to dy.
import { DataError } from '../errors.js';
import type { Gpu } from '../gpu/runtime.js';
import { type ElementwiseVariant, mapOp, runMap } from './elementwise.js';
import type { Cost } from './op.js';

export interface DropoutSizes {
  n: number;
  /** Probability of zeroing an element, in [0, 1]. */
  p: number;
  /** Seeds the mask stream (u32). */
  seed: number;
  /** Which mask of the stream: use a new one per training step, the same one in forward and backward (u32). */
  step: number;
  /** Force the scalar (v1) or vec4 (v2) map; by default v2 when the buffers hold whole vec4s. */
  variant?: ElementwiseVariant;
}

/** The 32-bit PCG hash, also run on the CPU for the key (identical arithmetic: Math.imul and >>> 0). */
export function pcgHash(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> (((s >>> 28) + 4) & 31)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

export const dropoutCost = ({ n }: { n: number }): Cost => ({ flops: 2 * n, bytes: 8 * n });

/**
 * WGSL over T and U (f32 and u32, or their vec4s: aliases the kernel defines): the PCG hash, dropout's mask
 * generator, and the value of a dropped element (0, or NaN where v is NaN or infinite, tested by the bits).
 */
export const DROPOUT_WGSL = /* wgsl */ `
fn pcg(v: U) -> U {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> U(28u)) + U(4u))) ^ s) * 277803737u;
  return (w >> U(22u)) ^ w;
}
fn dropped(v: T) -> T {
  let nonFinite = (bitcast<U>(v) & U(0x7f800000u)) == U(0x7f800000u);
  return select(T(), bitcast<T>(bitcast<U>(v) | U(0x7fc00000u)), nonFinite);
}`;

/**
 * WGSL expression: inverted dropout of `v` (type T) at element indices `idx` (type U), from the uniforms
 * p.key, p.threshold and `scale` (dropoutParams). Other kernels fold dropout into their stores or loads with
 * it (batch norm's), bit for bit the dropout kernel's arithmetic.
 */
export const dropoutApply = (v: string, idx: string, scale = 'p.scale') =>
  `select(dropped(${v}), ${v} * ${scale}, (pcg(pcg(${idx} ^ U(p.key)) + U(p.key)) >> U(8u)) >= U(p.threshold))`;

export const DROPOUT = mapOp(
  {
    name: 'dropout',
    params: { key: 'u32', threshold: 'u32', scale: 'f32' },
    inputs: ['x'],
    outputs: ['y'],
    helpers: DROPOUT_WGSL,
    body: `y = ${dropoutApply('x', 'idx')};`,
  },
  dropoutCost,
);

/** The uniforms of a dropout mask: key (from seed and step), threshold and scale 1/(1 − p). */
export function dropoutParams(s: Omit<DropoutSizes, 'n'>): { key: number; threshold: number; scale: number } {
  if (!(s.p >= 0 && s.p <= 1)) throw new DataError(`dropout: p = ${s.p} must be in [0, 1]`);
  const key = pcgHash((s.seed ^ pcgHash(s.step)) >>> 0);
  const threshold = Math.round(s.p * 2 ** 24);
  return { key, threshold, scale: s.p < 1 ? 1 / (1 - s.p) : 0 };
}

/** y = x·mask/(1 − p) with the mask of (seed, step); p = 0 copies x, p = 1 gives zeros. */
export function dropout(gpu: Gpu, x: GPUBuffer, y: GPUBuffer, sizes: DropoutSizes): void {
  runMap(gpu, DROPOUT, { x, y }, { n: sizes.n, params: dropoutParams(sizes), variant: sizes.variant });
}

// dx = dy·mask/(1 − p)   (the same (seed, step) recomputes the forward's mask)
export function dropoutBackward(gpu: Gpu, dy: GPUBuffer, dx: GPUBuffer, sizes: DropoutSizes): void {
  runMap(gpu, DROPOUT, { x: dy, y: dx }, { n: sizes.n, params: dropoutParams(sizes), variant: sizes.variant });
}
