// Benchmark entries for matmul and the linear layer: square matmuls with the adapter's default kernel,
// every version and the register-tile choices at 512, and the seed's linear layers at batch 64.

import type { Gpu } from '../src/gpu/runtime.js';
import {
  MATMUL,
  type MatmulSizes,
  matmul,
  matmulCost,
  matmulPlan,
  type RegisterTile,
  type SubgroupTile,
} from '../src/shaders/matmul/index.js';
import { linearBackward, linearBackwardCost, linearCost, linearForward } from '../src/shaders/matmul/linear.js';
import { download, upload } from '../test/helpers/buffers.js';
import { expectClose, randomF32 } from '../test/helpers/compare.js';
import * as ref from '../test/reference/matmul.js';
import { type BenchCase, type BenchEntry, BenchSkip } from './harness.js';

const f64 = (a: Float32Array) => Float64Array.from(a);

// C = A·B checked at sampled positions (all of C costs O(n^3) in JavaScript: 10 s at 2048).
async function checkMatmulSampled(
  gpu: Gpu,
  label: string,
  A: Float32Array,
  B: Float32Array,
  c: GPUBuffer,
  M: number,
  N: number,
  K: number,
) {
  const C = await download(gpu, c, M * N);
  const picks = [0, N - 1, (M - 1) * N, M * N - 1, ...randomF32(256, M + N + K, 0, 1).map((u) => Math.floor(u * M * N))];
  const got: number[] = [],
    want: number[] = [];
  for (const o of picks) {
    const i = Math.floor(o / N),
      j = o % N;
    let s = 0;
    for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
    got.push(C[o]);
    want.push(s);
  }
  expectClose(got, want, { label, atol: 1e-6 * K + 1e-5 });
}

function matmulEntry(name: string, n: number, opts: Partial<MatmulSizes> & { samples?: number } = {}): BenchEntry {
  const sizes: MatmulSizes = { M: n, N: n, K: n, ...opts };
  return {
    name,
    shape: `${n}x${n}x${n}`,
    cost: matmulCost(sizes),
    samples: opts.samples,
    setup(gpu) {
      let plan: ReturnType<typeof matmulPlan>;
      try {
        plan = matmulPlan(gpu, sizes);
      } catch (e) {
        throw new BenchSkip((e as Error).message);
      }
      const A = randomF32(n * n, 1),
        B = randomF32(n * n, 2);
      const a = upload(gpu, A, 'bench A'),
        b = upload(gpu, B, 'bench B');
      const c = gpu.pool.acquire(n * n * 4, 'bench C');
      const run = () => matmul(gpu, a, b, c, sizes);
      return {
        detail: plan.kernel.name,
        run,
        async validate() {
          run();
          await checkMatmulSampled(gpu, `${name} ${n}`, A, B, c, n, n, n);
        },
        dispose: () => {
          for (const x of [a, b, c]) gpu.pool.release(x);
        },
      };
    },
  };
}

interface Layer {
  name: string;
  batch: number;
  inFeatures: number;
  outFeatures: number;
}

function linearEntries({ name, batch, inFeatures, outFeatures }: Layer): BenchEntry[] {
  const sizes = { batch, inFeatures, outFeatures };
  const shape = `${batch}x${inFeatures}->${outFeatures}`;
  const data = (gpu: Gpu) => {
    const X = randomF32(batch * inFeatures, 3),
      W = randomF32(outFeatures * inFeatures, 4, -0.2, 0.2);
    const Bv = randomF32(outFeatures, 5),
      DY = randomF32(batch * outFeatures, 6);
    const bufs = {
      x: upload(gpu, X, 'bench x'),
      w: upload(gpu, W, 'bench w'),
      b: upload(gpu, Bv, 'bench b'),
      dy: upload(gpu, DY, 'bench dy'),
      y: gpu.pool.acquire(batch * outFeatures * 4, 'bench y'),
      dx: gpu.pool.acquire(batch * inFeatures * 4, 'bench dx'),
      dw: gpu.pool.acquire(outFeatures * inFeatures * 4, 'bench dw'),
      db: gpu.pool.acquire(outFeatures * 4, 'bench db'),
    };
    const dispose = () => {
      for (const x of Object.values(bufs)) gpu.pool.release(x);
    };
    return { X, W, Bv, DY, bufs, dispose };
  };
  const kernelOf = (gpu: Gpu, s: MatmulSizes, bias = false) => matmulPlan(gpu, s, bias).kernel.name;
  return [
    {
      name: `linear ${name} forward`,
      shape,
      cost: linearCost(sizes),
      setup(gpu): BenchCase {
        const d = data(gpu);
        const run = () => linearForward(gpu, d.bufs.x, d.bufs.w, d.bufs.b, d.bufs.y, sizes);
        return {
          detail: kernelOf(gpu, { M: batch, N: outFeatures, K: inFeatures, transB: true }, true),
          run,
          async validate() {
            run();
            const want = ref.linear(f64(d.X), f64(d.W), f64(d.Bv), batch, inFeatures, outFeatures);
            expectClose(await download(gpu, d.bufs.y, batch * outFeatures), want, {
              label: `linear ${name} y`,
              atol: 1e-6 * inFeatures + 1e-5,
            });
          },
          dispose: d.dispose,
        };
      },
    },
    {
      name: `linear ${name} backward`,
      shape,
      cost: linearBackwardCost(sizes),
      setup(gpu): BenchCase {
        const d = data(gpu);
        const run = () => linearBackward(gpu, d.bufs.x, d.bufs.w, d.bufs.dy, d.bufs.dx, d.bufs.dw, d.bufs.db, sizes);
        const dx = kernelOf(gpu, { M: batch, N: inFeatures, K: outFeatures });
        const dw = `${kernelOf(gpu, { M: outFeatures, N: inFeatures, K: batch, transA: true })}_sumA`;
        return {
          detail: `${dx} + ${dw} (db: its row sums)`,
          run,
          async validate() {
            run();
            const g = ref.linearBackward(f64(d.X), f64(d.W), f64(d.DY), batch, inFeatures, outFeatures);
            expectClose(await download(gpu, d.bufs.dx, batch * inFeatures), g.dx, {
              label: `linear ${name} dx`,
              atol: 1e-6 * outFeatures + 1e-5,
            });
            expectClose(await download(gpu, d.bufs.dw, outFeatures * inFeatures), g.dw, {
              label: `linear ${name} dw`,
              atol: 1e-6 * batch + 1e-5,
            });
            expectClose(await download(gpu, d.bufs.db, outFeatures), g.db, { label: `linear ${name} db`, atol: 1e-6 * batch + 1e-5 });
          },
          dispose: d.dispose,
        };
      },
    },
  ];
}

// The tile measurements behind DEFAULT_TILE and the v4 tile choice in src/shaders/matmul/index.ts.
const REGISTER_TILES: RegisterTile[] = [
  { tm: 4, tn: 8, wgx: 8, wgy: 8 },
  { tm: 8, tn: 8, wgx: 4, wgy: 4 },
  { tm: 8, tn: 16, wgx: 4, wgy: 4 },
];
const SUBGROUP_TILES: Omit<SubgroupTile, 'sg'>[] = [
  { tm: 4, tn: 16 },
  { tm: 4, tn: 32 },
  { tm: 8, tn: 16 },
  { tm: 2, tn: 32 },
];

export const entries: BenchEntry[] = [
  // the library's choice for this adapter
  matmulEntry('matmul', 256),
  matmulEntry('matmul', 512),
  matmulEntry('matmul', 1024),
  matmulEntry('matmul', 2048, { samples: 7 }),
  // every version, and the tile shapes
  ...MATMUL.names.map((v) => matmulEntry(`matmul_${v}`, 512, { variant: v })),
  ...REGISTER_TILES.map((t) => matmulEntry(`matmul_v2 tile ${t.tm}x${t.tn} wg ${t.wgx}x${t.wgy}`, 512, { variant: 'v2', registerTile: t })),
  ...SUBGROUP_TILES.map((t) => matmulEntry(`matmul_v4 tile ${t.tm}x${t.tn}`, 512, { variant: 'v4', subgroupTile: t })),
  // the seed's linear layers at batch 64
  ...linearEntries({ name: 'fc1', batch: 64, inFeatures: 320, outFeatures: 50 }),
  ...linearEntries({ name: 'fc2', batch: 64, inFeatures: 50, outFeatures: 10 }),
];
