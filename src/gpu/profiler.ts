// Where a step's GPU time goes: while a Profiler is attached to the runtime (Gpu.startProfiling), every
// dispatch is recorded in a compute pass of its own whose beginning and end write GPU timestamps; each
// submit resolves its timestamps into a buffer that Gpu.stopProfiling reads back. The result is one
// record per dispatch (kernel name, GPU time, and the gap since the previous pass ended), in order.
//
// Costs: a pass per dispatch costs a few µs more than a shared pass (GPU-NOTES: 53 against 45 µs on
// llvmpipe), so a profiled step runs a little slower than an unprofiled one; benchmarks profile separate
// steps from the ones they time. llvmpipe's timestamps tick every 65.5 µs, so a single short dispatch
// reads as 0 or 65.5 µs: profile many steps and look at sums and means, never one dispatch.

const QUERY_RESOLVE = 0x0200;
const COPY_SRC = 0x0004;
const COPY_DST = 0x0008;
const MAP_READ = 0x0001;

/** One profiled dispatch. */
export interface ProfiledDispatch {
  kernel: string;
  /** From the start to the end of its pass, in ms. */
  ms: number;
  /** From the end of the previous pass of the same submit to the start of this one, in ms (0 for a submit's first). */
  gapMs: number;
}

interface Batch {
  querySet: GPUQuerySet;
  names: string[];
  resolved: GPUBuffer | null;
  readback: GPUBuffer | null;
}

export class Profiler {
  /** The most dispatches one submit may hold while profiling (the runtime's uniform arena holds fewer). */
  static readonly CAPACITY = 2048;
  private current: Batch | null = null;
  private readonly done: Batch[] = [];

  constructor(private readonly device: GPUDevice) {}

  /** A compute pass for one dispatch of `kernel`, with timestamps at its beginning and end. */
  pass(encoder: GPUCommandEncoder, kernel: string): GPUComputePassEncoder {
    this.current ??= {
      querySet: this.device.createQuerySet({ type: 'timestamp', count: 2 * Profiler.CAPACITY, label: 'webgpu-nn profiler' }),
      names: [],
      resolved: null,
      readback: null,
    };
    const b = this.current;
    const i = b.names.length;
    b.names.push(kernel);
    return encoder.beginComputePass({
      label: kernel,
      timestampWrites: { querySet: b.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 },
    });
  }

  /** True when the current submit can take no more profiled dispatches. */
  get full(): boolean {
    return (this.current?.names.length ?? 0) >= Profiler.CAPACITY;
  }

  /** Records, at the end of a submit, the copy of its timestamps to a buffer the CPU can read later. */
  resolve(encoder: GPUCommandEncoder): void {
    const b = this.current;
    if (!b || b.names.length === 0) return;
    this.current = null;
    const bytes = 16 * b.names.length;
    b.resolved = this.device.createBuffer({ size: bytes, usage: QUERY_RESOLVE | COPY_SRC, label: 'webgpu-nn profiler resolve' });
    b.readback = this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST, label: 'webgpu-nn profiler readback' });
    encoder.resolveQuerySet(b.querySet, 0, 2 * b.names.length, b.resolved, 0);
    encoder.copyBufferToBuffer(b.resolved, 0, b.readback, 0, bytes);
    this.done.push(b);
  }

  /** Every profiled dispatch so far, in order (waits for the GPU); the profiler is then empty. */
  async collect(): Promise<ProfiledDispatch[]> {
    const out: ProfiledDispatch[] = [];
    for (const b of this.done.splice(0)) {
      const rb = b.readback!;
      await rb.mapAsync(MAP_READ);
      const t = new BigUint64Array(rb.getMappedRange().slice(0));
      rb.unmap();
      rb.destroy();
      b.resolved?.destroy();
      b.querySet.destroy();
      b.names.forEach((kernel, i) => {
        out.push({
          kernel,
          ms: Number(t[2 * i + 1] - t[2 * i]) / 1e6,
          gapMs: i === 0 ? 0 : Math.max(0, Number(t[2 * i] - t[2 * i - 1]) / 1e6),
        });
      });
    }
    return out;
  }
}

/** Per-kernel totals of a profile, largest first: calls, summed GPU ms, and each one's share of the sum. */
export function summarizeProfile(
  dispatches: readonly ProfiledDispatch[],
  per = 1,
): { kernel: string; calls: number; ms: number; share: number }[] {
  const by = new Map<string, { calls: number; ms: number }>();
  for (const d of dispatches) {
    const e = by.get(d.kernel) ?? { calls: 0, ms: 0 };
    e.calls++;
    e.ms += d.ms;
    by.set(d.kernel, e);
  }
  const total = [...by.values()].reduce((a, e) => a + e.ms, 0) || 1;
  return [...by].map(([kernel, e]) => ({ kernel, calls: e.calls / per, ms: e.ms / per, share: e.ms / total })).sort((a, b) => b.ms - a.ms);
}
