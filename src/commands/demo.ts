// `webgpu-nn demo`: prints the adapter, then runs a matrix product and the seed's network on the GPU,
// checking both against the CPU. A quick "does WebGPU work here" check: it says so only when both agree.
import { loadEmbeddedDigits } from '../data/dataset.js';
import { adapterSummary } from '../gpu/device.js';
import { makeRng } from '../nn/init.js';
import * as F from '../nn/ops.js';
import { noGrad } from '../nn/tensor.js';
import { MnistCnn } from '../train/model.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { withGpu } from './with-gpu.js';

const FLAGS = {} as const satisfies FlagsSpec;

export async function demoCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'demo',
    'Print the adapter and check a matrix product and the untrained CNN against the CPU.',
  );
  if (!flags) return 0;
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    console.log(
      `features: ${gpu.adapter.features.join(', ')}; max storage binding ${gpu.adapter.limits.maxStorageBufferBindingSize} bytes`,
    );

    const n = 256;
    const rng = makeRng(1);
    const a = Float32Array.from({ length: n * n }, () => rng() - 0.5);
    const b = Float32Array.from({ length: n * n }, () => rng() - 0.5);
    const t0 = performance.now();
    const c = (await F.matmul(F.tensor(a, [n, n]), F.tensor(b, [n, n])).toArray()) as Float32Array;
    const ms = performance.now() - t0;
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += a[i * n + k] * b[k * n + j];
        worst = Math.max(worst, Math.abs(s - c[i * n + j]));
        if (Number.isNaN(c[i * n + j])) worst = Number.NaN;
      }
    }
    console.log(
      `matmul ${n}x${n}x${n}: max |GPU - CPU| = ${worst.toExponential(2)} (${ms.toFixed(1)} ms including upload, compile and readback)`,
    );

    const digits = loadEmbeddedDigits(8);
    const model = new MnistCnn({ rng: makeRng(42) }).eval();
    const x = F.tensor(
      Float32Array.from(digits.images, (v) => v / 255),
      [digits.count, 1, 28, 28],
    );
    const logp = (await noGrad(() => model.forward(x)).toArray()) as Float32Array;
    const sums = Array.from({ length: digits.count }, (_, r) => logp.subarray(r * 10, r * 10 + 10).reduce((s, v) => s + Math.exp(v), 0));
    console.log(`untrained CNN on ${digits.count} digits: each row of softmax sums to ${sums.map((s) => s.toFixed(4)).join(', ')}`);
    const ok = worst < 1e-3 && sums.every((s) => Math.abs(s - 1) < 1e-3);
    console.log(
      `${gpu.counters.dispatches} dispatches in ${gpu.counters.submits} submits, ${gpu.counters.pipelines} pipelines; ` +
        (ok ? 'WebGPU works here.' : 'the GPU results do not match the CPU: WebGPU does NOT work correctly on this adapter.'),
    );
    return ok ? 0 : 1;
  });
}
