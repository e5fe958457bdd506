// The second pass of conv2d's split reductions (backward-weight v2 and v4 over row slices, backward-bias v2
// over images): out[i] = (accumulate ? out[i] : 0) + Σ_{s<splits} part[s·M + i]; with a second pair of
// arrays (backward-weight's bias sums), the same for out2 from part2 in the same dispatch.
import { declareKernel, launch } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel } from '../wgsl.js';

const WG_SUM = 64;

/**
 * WGSL statements: out[i] = (add ? out[i] : 0) + Σ_{s<splits} part[s·M + i], the slices added in order. Every pass
 * that adds up partial sums (this kernel, backward-weight-patch.ts's last workgroup) uses it, so they agree bit for
 * bit. select() evaluates both sides; whatever out[i] held is discarded when not adding.
 */
export const sumSlices = (out: string, part: string, i: string, M: string, splits: string, add: string): string =>
  `var acc = select(0.0, ${out}[${i}], ${add});
    for (var s = 0u; s < ${splits}; s++) { acc += ${part}[s * ${M} + ${i}]; }
    ${out}[${i}] = acc;`;

const sumPartialsKernel = memoKernel((two: boolean) =>
  declareKernel({
    name: two ? 'conv2d_sum_partials_2' : 'conv2d_sum_partials',
    params: { M: 'u32', M2: 'u32', splits: 'u32', accumulate: 'u32' },
    buffers: two ? { part: 'read', out: 'read_write', part2: 'read', out2: 'read_write' } : { part: 'read', out: 'read_write' },
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG_SUM}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_SUM)};
  if (i < p.M) {
    ${sumSlices('out', 'part', 'i', 'p.M', 'p.splits', 'p.accumulate != 0u')}
  }${
    two
      ? ` else if (i < p.M + p.M2) {
    let j = i - p.M;
    ${sumSlices('out2', 'part2', 'j', 'p.M2', 'p.splits', 'p.accumulate != 0u')}
  }`
      : ''
  }
}`,
  }),
);

/** One array of `splits` partial sums of M values each, one after another, and where their total goes. */
export interface Partials {
  part: GPUBuffer;
  out: GPUBuffer;
  M: number;
}

/** out[0..M) (+)= the sum of the `splits` partial arrays in part (and the same for a second set, in one dispatch). */
export function sumPartials(gpu: Gpu, a: Partials, splits: number, accumulate: boolean, b?: Partials): void {
  launch(gpu, sumPartialsKernel(!!b), {
    params: { M: a.M, M2: b?.M ?? 0, splits, accumulate: +accumulate },
    buffers: b ? { part: a.part, out: a.out, part2: b.part, out2: b.out } : { part: a.part, out: a.out },
    workgroups: grid1d(a.M + (b?.M ?? 0), WG_SUM),
  });
}

/** `items` split into about `want` slices of `per` consecutive items each (at least 1, at most 65535: a grid dimension). */
export function slicing(items: number, want: number): { per: number; slices: number } {
  const per = Math.ceil(items / Math.min(items, 65535, Math.max(1, want)));
  return { per, slices: Math.ceil(items / per) };
}
