// Compiling the kernels a run uses before its first step, in parallel.
//
// `precompile(gpu, record)` runs `record` (which records the run's steps) dry, to learn the kernels it
// dispatches, then:
//   - creates their pipelines with createComputePipelineAsync, all at once: drivers that compile when a
//     pipeline is created (GPU drivers) do it in parallel, before the first step;
//   - on a software adapter, compiles them on two queues at once. llvmpipe compiles a pipeline at its first
//     dispatch, on the device's queue thread, so asynchronous creation returns at once and changes nothing
//     there (measured). But a second device on the same adapter has a queue thread of its own, and what
//     either device compiles goes into Mesa's on-disk shader cache, where the other finds it (measured: a
//     kernel the helper compiled in seconds took the main device 8 ms). So both devices run the kernels once
//     each, one workgroup on scratch buffers with the step's own uniforms, taking them one at a time from a
//     queue, largest WGSL first (the larger, more unrolled kernels mostly compile longer).
// Skipped where it cannot help: one kernel or none to compile, Mesa's cache disabled
// (MESA_SHADER_CACHE_DISABLE), WEBGPU_NN_PRECOMPILE=0, or a helper device that is not the same adapter.
import type { Dispatch, Gpu, Kernel } from './runtime.js';

export interface PrecompileReport {
  /** Kernels the steps use that were not compiled yet. */
  kernels: number;
  /** Whether a helper device compiled half of them. */
  helper: boolean;
  seconds: number;
}

export async function precompile(gpu: Gpu, record: () => void, env: NodeJS.ProcessEnv = process.env): Promise<PrecompileReport> {
  const t0 = performance.now();
  const firsts = new Map<string, Dispatch>(); // the first dispatch of each distinct kernel, in order
  for (const d of gpu.dryRun(record)) if (!gpu.hasPipeline(d.kernel) && !firsts.has(d.kernel.wgsl)) firsts.set(d.kernel.wgsl, d);
  const todo = [...firsts.values()];
  await gpu.createPipelines(todo.map((d) => d.kernel));
  const cacheOff = /^(1|true|yes)$/i.test(env.MESA_SHADER_CACHE_DISABLE ?? '');
  let helper: Gpu | null = null;
  if (gpu.isSoftware && todo.length > 1 && !cacheOff && env.WEBGPU_NN_PRECOMPILE !== '0') {
    helper = await (gpu.constructor as typeof Gpu).create().catch(() => null);
    if (helper && helper.adapter.description !== gpu.adapter.description) {
      helper.destroy();
      helper = null;
    }
  }
  try {
    if (helper) {
      // largest WGSL first, each device taking the next kernel when it has compiled its last: WGSL size only
      // roughly predicts compile time, and a split fixed in advance left one device seconds behind the other
      const queue = [...todo].sort((a, b) => b.kernel.wgsl.length - a.kernel.wgsl.length);
      const drain = async (g: Gpu) => {
        for (let d = queue.shift(); d; d = queue.shift()) await runOnce(g, [d]);
      };
      await Promise.all([drain(gpu), drain(helper)]);
    } else {
      await runOnce(gpu, todo);
    }
  } finally {
    helper?.destroy();
  }
  return { kernels: todo.length, helper: helper !== null, seconds: (performance.now() - t0) / 1000 };
}

/** Dispatches each kernel once (one workgroup, zeroed scratch buffers of the step's sizes) and waits: its compile. */
async function runOnce(gpu: Gpu, dispatches: readonly Dispatch[]): Promise<void> {
  const scratch: GPUBuffer[] = [];
  try {
    for (const d of dispatches) {
      const buffers = d.buffers.map((b) => {
        const s = gpu.pool.acquire(b.size, `precompile scratch (${d.kernel.name})`);
        scratch.push(s);
        return 'offset' in b ? { buffer: s, offset: 0, size: b.size } : s; // a range: as long as the one the step binds
      });
      gpu.dispatch({ kernel: d.kernel as Kernel, params: d.params, buffers, workgroups: [1, 1, 1] });
    }
    await gpu.sync();
  } finally {
    for (const b of scratch) gpu.pool.release(b);
  }
}
