// What every kernel family shares: the cost record benchmarks and logs read, and WGSL snippets.
export type { Kernel, Dispatch } from '../gpu/runtime.js';
export { Gpu, uniforms, f32, i32, grid1d, FLAT_INDEX, FLAT_BUILTINS } from '../gpu/runtime.js';

/** Work a kernel launch does: floating-point operations and bytes moved to and from memory (ideal, no cache). */
export interface Cost {
  flops: number;
  bytes: number;
}

/** Memoizes a WGSL generator on its compile-time constants, so equal constants give the identical Kernel. */
export function memoKernel<A extends unknown[], K>(make: (...args: A) => K): (...args: A) => K {
  const cache = new Map<string, K>();
  return (...args: A) => {
    const key = JSON.stringify(args);
    let k = cache.get(key);
    if (!k) cache.set(key, (k = make(...args)));
    return k;
  };
}
