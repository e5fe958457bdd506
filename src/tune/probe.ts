// The FMA loop: each invocation runs FMA_CHAINS independent vec4 chains of x ← fma(x, m, s) and writes their sum.
// It needs no memory but its output, so its rate is the adapter's multiply-add peak (bench:kernels' FMA peak, the
// best of a few runs), and any run of it slower than that peak says the host took the CPU from it meanwhile: on a
// software adapter a dispatch's workgroups are split evenly over llvmpipe's threads, so one thread that a busy
// host slows holds up the whole dispatch. bench:kernels times it beside its entries (their host column) and the
// tuner beside its candidates (a call timed while the host was slow is timed again; tuner.ts).
import { declareKernel, launch } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';
import { memoKernel } from '../shaders/wgsl.js';
import { sample, timeOnce } from './measure.js';

export const FMA_CHAINS = 8; // independent vec4 chains per invocation: enough to hide FMA latency
const FMA_WG = 64;
const FMA_SEED = 1e-6;
const FMA_M = [0.999, 0.998, 0.997, 0.996];

const fmaLoopKernel = memoKernel(() =>
  declareKernel({
    name: 'peak_fma',
    params: { iters: 'u32', seed: 'f32' },
    buffers: { out: { read_write: 'vec4f' } },
    wgsl: /* wgsl */ `
@compute @workgroup_size(${FMA_WG}) fn main(@builtin(global_invocation_id) g: vec3u) {
  let m = vec4f(${FMA_M.join(', ')});
  let s = vec4f(p.seed * f32(g.x));
  ${[...Array(FMA_CHAINS).keys()].map((i) => `var x${i} = s + vec4f(${i}.0);`).join('\n  ')}
  for (var i = 0u; i < p.iters; i++) {
    ${[...Array(FMA_CHAINS).keys()].map((i) => `x${i} = fma(x${i}, m, s);`).join('\n    ')}
  }
  out[g.x] = ${[...Array(FMA_CHAINS).keys()].map((i) => `x${i}`).join(' + ')};
}`,
  }),
);

/** A size of the loop: invocations (a multiple of 64) and steps per chain. */
export interface FmaLoopSize {
  invocations: number;
  iters: number;
}

/** The loop bench:kernels' peak runs: about 6 ms on llvmpipe (2 vCPUs), 0.1–1 ms on a GPU. */
export const peakLoopSize = (gpu: Gpu): FmaLoopSize =>
  gpu.isSoftware ? { invocations: 64 * 256, iters: 512 } : { invocations: 64 * 4096, iters: 4096 };

/** Multiply-adds of one run, counted as 2 flops each. */
export const fmaLoopFlops = (s: FmaLoopSize): number => s.invocations * s.iters * FMA_CHAINS * 4 * 2;

/** Records one run of the loop into `out` (invocations × 16 bytes). */
export function runFmaLoop(gpu: Gpu, s: FmaLoopSize, out: GPUBuffer): void {
  launch(gpu, fmaLoopKernel(), { params: { iters: s.iters, seed: FMA_SEED }, buffers: { out }, workgroups: [s.invocations / FMA_WG] });
}

/** What the loop writes for invocation g after `iters` steps, in float64 from its float32 inputs. */
export function fmaLoopSum(g: number, iters: number): number[] {
  const s = Math.fround(Math.fround(FMA_SEED) * g);
  return FMA_M.map(Math.fround).map((m) => {
    let sum = 0;
    for (let c = 0; c < FMA_CHAINS; c++) {
      let x = Math.fround(s + c);
      for (let i = 0; i < iters; i++) x = x * m + s;
      sum += x;
    }
    return sum;
  });
}

/** Why the loop's output differs from fmaLoopSum (relative 1e-3, at four invocations), or null. */
function checkLoop(got: Float32Array, s: FmaLoopSize): string | null {
  for (const g of [0, 1, s.invocations >> 1, s.invocations - 1]) {
    const want = fmaLoopSum(g, s.iters);
    for (let k = 0; k < 4; k++) {
      const v = got[4 * g + k];
      if (!(Math.abs(v - want[k]) <= 1e-3 * Math.abs(want[k]) + 1e-3))
        return `the FMA loop wrote ${v} at invocation ${g}, component ${k}, not ${want[k]}`;
    }
  }
  return null;
}

/**
 * The FMA loop, compiled and checked once, then timed on demand: sample() is one run's rate, which against the
 * peak (bench:kernels) or the tuning's steady rate (tuner.ts) says how much of the CPU (or GPU) the host left it.
 */
export class HostProbe {
  private constructor(
    private readonly gpu: Gpu,
    readonly size: FmaLoopSize,
    private readonly out: GPUBuffer,
  ) {}

  /** Compiles, runs and checks the loop (against float64); throws if its output is wrong. */
  static async create(gpu: Gpu, size: FmaLoopSize = peakLoopSize(gpu)): Promise<HostProbe> {
    const out = gpu.pool.acquire(size.invocations * 16, 'FMA loop out');
    try {
      await timeOnce(gpu, () => runFmaLoop(gpu, size, out)); // compiles it
      const why = checkLoop(new Float32Array(await gpu.read(out, size.invocations * 16)), size);
      if (why) throw new Error(why);
    } catch (e) {
      gpu.pool.release(out);
      throw e;
    }
    return new HostProbe(gpu, size, out);
  }

  /** Multiply-adds of one run, counted as 2 flops each. */
  get flops(): number {
    return fmaLoopFlops(this.size);
  }

  /** Records one run (for callers that time it themselves). */
  run(): void {
    runFmaLoop(this.gpu, this.size, this.out);
  }

  /** One timed run, in GFLOP/s. */
  async sample(): Promise<number> {
    return this.flops / (await sample(this.gpu, () => this.run(), 1)).ms / 1e6;
  }

  dispose(): void {
    this.gpu.pool.release(this.out);
  }
}
