// The second pass of conv2d's split reductions (backward-weight v2 and v4 over row slices, backward-bias v2
// over images): out[i] = (accumulate ? out[i] : 0) + Σ_{s<splits} part[s·M + i].
import { declareKernel, launch } from '../../gpu/kernel.js';
import type { Gpu } from '../../gpu/runtime.js';
import { FLAT_BUILTINS, FLAT_INDEX, grid1d, memoKernel } from '../wgsl.js';

const WG_SUM = 64;

// select() evaluates both sides; whatever out[i] held is discarded when not accumulating.
const sumPartialsKernel = memoKernel(() =>
  declareKernel({
    name: 'conv2d_sum_partials',
    params: { M: 'u32', splits: 'u32', accumulate: 'u32' },
    buffers: { part: 'read', out: 'read_write' },
    wgsl: /* wgsl */ `@compute @workgroup_size(${WG_SUM}) fn main(${FLAT_BUILTINS}) {
  let i = ${FLAT_INDEX(WG_SUM)};
  if (i >= p.M) { return; }
  var acc = select(0.0, out[i], p.accumulate != 0u);
  for (var s = 0u; s < p.splits; s++) { acc += part[s * p.M + i]; }
  out[i] = acc;
}`,
  }),
);

/** out[0..M) (+)= the sum of the `splits` partial arrays stored one after another in part. */
export function sumPartials(gpu: Gpu, part: GPUBuffer, out: GPUBuffer, M: number, splits: number, accumulate: boolean): void {
  launch(gpu, sumPartialsKernel(), {
    params: { M, splits, accumulate: +accumulate },
    buffers: { part, out },
    workgroups: grid1d(M, WG_SUM),
  });
}
