// Compiling a run's kernels before it starts: a dry run captures what a recording dispatches and changes
// nothing; precompile creates every pipeline the recording uses (with a helper device on software adapters),
// and the recording then runs and computes as it would have.
import { describe, expect, it } from 'vitest';
import { precompile } from '../../src/gpu/precompile.js';
import { fill } from '../../src/shaders/elementwise.js';
import { MATMUL, matmul } from '../../src/shaders/matmul/index.js';
import { expectClose, randomArray } from '../helpers/compare.js';
import { download, empty, upload, useGpu } from '../helpers/gpu.js';
import * as ref from '../reference/index.js';

const ctx = useGpu();

describe('precompile', () => {
  it('a dry run captures the dispatches with their uniforms and records nothing', async () => {
    const { gpu } = ctx;
    const y = upload(gpu, [1, 2, 3, 4]);
    const before = { ...gpu.counters };
    const captured = gpu.dryRun(() => {
      fill(gpu, y, { n: 4, value: 7 });
      gpu.write(y, Float32Array.from([9, 9, 9, 9]));
    });
    expect(captured.map((d) => d.kernel.name)).toEqual([expect.stringMatching(/^fill_v/)]);
    expect(new Float32Array(captured[0].params.buffer as ArrayBuffer, 4, 1)[0]).toBe(7); // n, then value
    expect(gpu.counters).toEqual(before);
    expect(Array.from(await download(gpu, y, 4))).toEqual([1, 2, 3, 4]);
    gpu.pool.release(y);
  });

  it('creates every pipeline a recording uses before it runs, which then computes as before', async () => {
    const { gpu } = ctx;
    const [M, K, N] = [13, 24, 11];
    const a = randomArray(M * K, 1),
      b = randomArray(K * N, 2);
    const ab = upload(gpu, a),
      bb = upload(gpu, b),
      c = empty(gpu, M * N),
      d = empty(gpu, M * N);
    // two kernels: a product, and a fill (of d, which stays ours to check)
    const record = () => {
      matmul(gpu, ab, bb, c, { M, N, K, variant: MATMUL.preferred(gpu, { M, N, K }) });
      fill(gpu, d, { n: M * N, value: 0.5 });
    };
    const kernels = gpu.dryRun(record).map((x) => x.kernel);
    const fresh = kernels.filter((k) => !gpu.hasPipeline(k)).length;
    const report = await precompile(gpu, record, { ...process.env, WEBGPU_NN_PRECOMPILE: '1' });
    expect(report.kernels).toBe(fresh);
    for (const k of kernels) expect(gpu.hasPipeline(k), k.name).toBe(true);
    const pipelines = gpu.counters.pipelines;
    record();
    expect(gpu.counters.pipelines).toBe(pipelines); // nothing left to create
    expectClose(
      await download(gpu, c, M * N),
      ref.matmul(Float64Array.from(Float32Array.from(a)), Float64Array.from(Float32Array.from(b)), M, K, N),
      {
        label: 'matmul after precompile',
        atol: 1e-5 * K,
        rtol: 1e-5,
      },
    );
    expect(Array.from(await download(gpu, d, 4))).toEqual([0.5, 0.5, 0.5, 0.5]);
    for (const x of [ab, bb, c, d]) gpu.pool.release(x);
  });
});
