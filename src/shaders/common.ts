// TRANSITIONAL (issue 6): the old shared module, re-exporting from the new homes while the families move to
// declared kernels and the variant registry. Deleted once no family imports it.
export type { Kernel, Dispatch } from '../gpu/runtime.js';
export { Gpu } from '../gpu/runtime.js';
export { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel } from './wgsl.js';
export type { Cost } from './op.js';

/** Packs a uniform block: numbers are u32 unless wrapped with {@link f32} or {@link i32}. */
export function uniforms(...fields: (number | { f32: number } | { i32: number })[]): Uint32Array {
  const n = Math.max(4, Math.ceil(fields.length / 4) * 4); // WGSL uniform structs: 16-byte multiples
  const u = new Uint32Array(n);
  const f = new Float32Array(u.buffer);
  const s = new Int32Array(u.buffer);
  fields.forEach((v, i) => {
    if (typeof v === 'number') u[i] = v;
    else if ('f32' in v) f[i] = v.f32;
    else s[i] = v.i32;
  });
  return u;
}
export const f32 = (value: number) => ({ f32: value });
export const i32 = (value: number) => ({ i32: value });
