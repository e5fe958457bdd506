// What an adapter can do beyond WebGPU's core, as kernel variants need to know it: a variant lists the
// capabilities it requires, and the variant registry (shaders/op.ts) refuses to run it where one is missing.
import { softwareThreads } from './platform-node.js';
import type { Gpu } from './runtime.js';

const subgroupSizes = new WeakMap<GPUDevice, number | null>();

/** The adapter's subgroup size when the device has subgroups and the size is fixed (llvmpipe: 8), else null. */
export function fixedSubgroupSize(gpu: Pick<Gpu, 'device'>): number | null {
  let size = subgroupSizes.get(gpu.device);
  if (size === undefined) {
    const info = gpu.device.adapterInfo as GPUAdapterInfo | undefined;
    const min = info?.subgroupMinSize;
    const max = info?.subgroupMaxSize;
    size = gpu.device.features.has('subgroups') && min && min === max ? min : null;
    subgroupSizes.set(gpu.device, size);
  }
  return size;
}

/** A capability a kernel variant may require. */
export type Requirement = 'fixed-subgroups';

export const REQUIREMENTS: Record<Requirement, { description: string; met: (gpu: Pick<Gpu, 'device'>) => boolean }> = {
  'fixed-subgroups': {
    description: 'the "subgroups" feature with a fixed subgroup size',
    met: (gpu) => fixedSubgroupSize(gpu) !== null,
  },
};

/**
 * Whether a workgroup's stores before an atomic are seen by every workgroup whose atomic on the same word comes
 * after it, without a device-scope fence (which WGSL lacks): on llvmpipe, whose workgroups each run as one SIMD
 * stream on a CPU thread and whose atomics are all sequentially consistent read-modify-writes (Mesa's gallivm,
 * emit_atomic_mem). Not promised by WGSL's memory model, and so nowhere else.
 */
export function orderedAtomics(gpu: Pick<Gpu, 'adapter'>): boolean {
  return /llvmpipe/i.test(gpu.adapter.description);
}

/**
 * How many workgroups a kernel that hands out its work units from a counter (a ticket each) launches here, or 0
 * where it should not: one per thread of llvmpipe, whose thread pool gives each thread a fixed share of a
 * dispatch's workgroups, so that the thread that starts first takes over the units of one that starts late.
 */
export function unitWorkgroups(gpu: Pick<Gpu, 'adapter'>): number {
  let n = unitCounts.get(gpu.adapter);
  if (n === undefined) {
    n = orderedAtomics(gpu) ? softwareThreads() : 0;
    unitCounts.set(gpu.adapter, n);
  }
  return n;
}
// (asked at every launch of the kernels that use it: once per adapter)
const unitCounts = new WeakMap<object, number>();
