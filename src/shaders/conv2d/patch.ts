// The pooled forward for convolutions with few input channels (the seed's conv1): each lane loads its whole
// input patch once and then loops over its output channels (conv2d.pool-relu's v4 with an OL tile).
//
// The v4 kernel loops over input channels and kernel rows, each step loading input rows and the step's weights
// for OT channels, and keeps OT·RT·PT sums across the loop. With one input channel that is 25 multiply-adds per
// output for all the loop's cost: on the seed's conv1 its sums (120 per lane) outnumber the CPU's 32 vector
// registers and spill at every kernel row, and it ran at 44–51% of the FMA peak even with its loads removed.
// Here a lane (one image of the subgroup's sg, as in v4) loads the Cin·(RT+KH−1)·(PT+KW−1) input values its
// RT×PT outputs read, as vec4s, once; then for each of its OT channels (a runtime loop, the same in every lane)
// it sums RT·PT outputs with all KH·KW taps unrolled, pools each 2×2 window with its ReLU, and stores the
// pooled rows and their argmax as vec4s (or their window codes, pool.ts, as a word per vec4, or both). The patch
// stays in the lane's registers or on its stack across the channel loop, and only RT·PT sums are live at a time. The weights of a (channel, input channel) are loaded a
// slice per lane and shared with subgroupBroadcast, as v4 does (a uniform load per weight instead ran 1.7×
// slower: each is a branch on llvmpipe).
//
// Every output sums bias, then input channels, kernel rows and columns in order, as v4 does, and the epilogue
// is v4's, so the results are v4's bit for bit. Measured on the seed's conv1 (alternating in one process,
// medians of 21; llvmpipe, AMD EPYC, 2026-11-30): 0.32 ms against 0.55–0.58 ms for v4's pooled tile, 61–62% of
// the FMA peak against 34–36%. The multiply-adds go kernel row, output row, kernel column, output column (a
// kernel row's sums stay near their inputs); kernel row and column outermost ran 1.03–1.05× slower, output row
// outermost 1.1×, output position outermost 1.25×; 4×8 outputs per lane ran faster than 2×12, 2×24, 6×8, 8×8
// and 4×24, and vec4 stores 1.1–1.2× faster than scalar ones. The epilogue tracks each maximum's offset in its
// window (0, 1, Wout, Wout + 1) and adds the windows' first positions to four of them at once when it stores
// them: 1.06–1.1× as fast as selecting each window's full index (the same argmax). Saving window codes instead
// (pool.ts), a word per four windows from the same offsets, ran 1.03–1.08× as fast as saving the argmax (llvmpipe,
// AMD EPYC, 2026-12-01, alternating in one process, six runs of 41 rounds): llvmpipe stores a storage buffer
// lane by lane, so a word is a quarter of a vec4's stores.
//
// With UW (a tile the tuner offers where the batch is whole windows), x is read as uniform arrays instead: the
// batch split into windows of UW images (whole subgroups), each bound as a range of x to a uniform binding of its
// own (at most 64 KiB by default: 16 of the seed's images), and a workgroup, whose images all lie in one window,
// loads its patch from that one in a switch on the window (the same in every lane; llvmpipe still runs every
// case under a mask, so every window's loads run, and at most MAX_WINDOWS windows are offered).
// llvmpipe loads a storage buffer per lane in a loop with a branch per lane and per component for the bounds
// check, and a uniform array per lane without branches (Mesa's emit_load_mem against emit_load_ubo). The same
// sums from the same values: the outputs are the storage-buffer tile's bit for bit. Measured on the seed's conv1
// (llvmpipe, AMD EPYC, 2026-11-30; `bench:kernels --interleave`): 0.272 ms against 0.328, 72% of the FMA peak
// against 60%.
//
// With SL, a workgroup walks SL row blocks down a column of the output instead of taking one block: it loads its
// patch's first KH − 1 rows once and RT rows a block, each block's last KH − 1 rows becoming the next one's first
// (as the image-lane weight gradient slides, backward-weight-patch.ts), so a whole column of the seed's conv1
// loads 28 rows where six blocks loaded 48. The same sums: bit for bit. Alternating with the tile it walks in one
// process (llvmpipe, AMD EPYC, 2026-12-01, uniform windows, nine runs of 21–41 rounds): 1.05–1.25× as fast walking
// all six blocks (median 1.11×), 1.02–1.09× walking three.
import { VariantError } from '../../errors.js';
import { fixedSubgroupSize, unitWorkgroups } from '../../gpu/capabilities.js';
import { type BufferDecl, declareKernel, launch } from '../../gpu/kernel.js';
import type { Binding, Gpu } from '../../gpu/runtime.js';
import { POOL_CODE_CUT } from '../pool.js';
import { CELL_PARAMS, cellLaunch, grid1d, IS_NAN, memoKernel, range, TICKETS, takeCells } from '../wgsl.js';
import type { Conv2dTile, DirectArgs, PoolReluBuffers } from './direct.js';

/**
 * WGSL declaring `v` and `j`: the maximum of a pooling window's values `c` (row-major) and its index from `at`,
 * then the ReLU, as max_pool2d with relu computes them: the first maximum (strict >), a NaN taken as the
 * maximum, and j = −1 where the ReLU zeroes the window. Selects and the non-short-circuit | and &, no branches:
 * inside the patch kernel's channel loop, with the patch live, the branches of `if` and || took SwiftShader's
 * compiler over 5 minutes and 22 GB (killed; 0.2 s this way).
 */
export function windowMaxRelu(c: readonly string[], at: readonly string[], v: string, j: string): string {
  const picks = range(c.length - 1).map(
    (i) =>
      `{ let up = (${c[i + 1]} > ${v}) | isNan(${c[i + 1]}); ${v} = select(${v}, ${c[i + 1]}, up); ${j} = select(${j}, ${at[i + 1]}, up); }`,
  );
  return `var ${v} = ${c[0]}; var ${j} = ${at[0]}; ${picks.join(' ')}
    { let cut = (${v} <= 0.0) & !isNan(${v}); ${v} = select(${v}, 0.0, cut); ${j} = select(${j}, -1, cut); }`;
}

/** The most input values a lane's patch may hold, here and in backward-weight's image-lane tile (the seed's conv1 takes 96 with 4×8 outputs). */
export const MAX_PATCH = 128;

/** The patch tile for these sizes: 4×8 outputs per lane, all output channels in one loop. */
export const patchTile = (a: Pick<DirectArgs, 'Cout'>): Conv2dTile => ({ OT: a.Cout, PT: 8, WG: 0, RT: 4, VX: 1, OL: 1 });

/** Why a pooled convolution cannot take this patch tile, or null. */
export function patchPoolRelu(
  a: Pick<DirectArgs, 'Cin' | 'Win' | 'Hout' | 'Wout' | 'S' | 'padH' | 'padW' | 'KH' | 'KW' | 'flip'>,
  t: Conv2dTile,
): string | null {
  const RT = t.RT ?? 1;
  if (a.flip) return 'only forward convolutions are pooled';
  if (a.S !== 1 || a.padH !== 0 || a.padW !== 0)
    return `the patch tile needs stride 1 and no padding, not stride ${a.S}, padding ${a.padH}`;
  if (RT % 2 !== 0 || a.Hout % RT !== 0) return `${a.Hout} output rows are not whole blocks of ${RT} rows (an even number)`;
  if (t.PT % 8 !== 0 || a.Wout % t.PT !== 0) return `${a.Wout} output columns are not whole blocks of ${t.PT} (a multiple of 8)`;
  if (a.Win % 4 !== 0 || (a.Wout / 2) % 4 !== 0) return `rows of ${a.Win} inputs and ${a.Wout / 2} pooled outputs are not whole vec4s`;
  if (!t.VX) return 'the patch tile loads its rows as vec4s (VX: 1)';
  const SL = t.SL ?? 1;
  if ((a.Hout / RT) % SL !== 0) return `${a.Hout / RT} blocks of ${RT} output rows are not whole walks of ${SL} blocks`;
  const held = a.Cin * (RT + a.KH - 1) * (t.PT + a.KW - 1);
  return held > MAX_PATCH ? `a patch of ${held} input values is more than a lane holds (${MAX_PATCH})` : null;
}

/**
 * Why an input of N images of `imageFloats` values each cannot be read as uniform windows of `UW` images here, or
 * null: a window must hold whole groups of sg images (a workgroup's lanes), fit a uniform binding and start at an
 * offset the adapter allows, the batch must be whole windows, and the windows and the uniform block must fit the
 * adapter's uniform bindings per stage. (Here and in backward-weight's image-lane tile.)
 */
export function uniformWindows(gpu: Gpu, N: number, imageFloats: number, UW: number, sg: number): string | null {
  const { maxUniformBufferBindingSize, minUniformBufferOffsetAlignment, maxUniformBuffersPerShaderStage } = gpu.device.limits;
  const bytes = UW * imageFloats * 4;
  if (UW % sg !== 0) return `a window of ${UW} images is not whole subgroups of ${sg}`;
  if (N % UW !== 0) return `a batch of ${N} is not whole windows of ${UW} images`;
  if (bytes > maxUniformBufferBindingSize)
    return `a window of ${UW} images (${bytes} bytes) is more than a uniform binding holds (${maxUniformBufferBindingSize})`;
  if (bytes % minUniformBufferOffsetAlignment !== 0)
    return `windows of ${bytes} bytes do not start at multiples of ${minUniformBufferOffsetAlignment} bytes`;
  if (N / UW + 1 > maxUniformBuffersPerShaderStage)
    return `${N / UW} windows and the uniform block are more than the ${maxUniformBuffersPerShaderStage} uniform bindings a kernel has`;
  return null;
}

/**
 * The windows a tuner is offered at most. llvmpipe runs every case of the kernels' switch on the window under a
 * mask, so each window's loads run: with the seed's conv2 input in 8 windows the weight gradient ran 1.00–1.16×
 * as fast as without windows (alternating in one process), with conv1's in 4, 1.08–1.13× (both with AM); and each
 * window lengthens the kernel that llvmpipe compiles.
 */
const MAX_WINDOWS = 4;

/** The most images a uniform window can hold for uniformWindows, in at most MAX_WINDOWS windows; 0 where none can. */
export function imagesPerWindow(gpu: Gpu, N: number, imageFloats: number): number {
  const sg = fixedSubgroupSize(gpu);
  if (!sg) return 0;
  const most = Math.floor(gpu.device.limits.maxUniformBufferBindingSize / (imageFloats * 4) / sg) * sg;
  for (let UW = most; UW >= sg && N / UW <= MAX_WINDOWS; UW -= sg) if (uniformWindows(gpu, N, imageFloats, UW, sg) === null) return UW;
  return 0;
}

/**
 * x's declaration in a kernel: `windows` uniform arrays x0, x1, … of UW images of `imageFloats` values (what
 * windowsOf binds), or without UW one storage buffer of vec4s.
 */
export function windowDecls(UW: number, windows: number, imageFloats: number): Record<string, BufferDecl> {
  if (!UW) return { x: { read: 'vec4f' } };
  return Object.fromEntries(range(windows).map((i) => [`x${i}`, { uniform: 'vec4f', elements: (UW * imageFloats) / 4 }]));
}

/** The windows of x a kernel binds (x0, x1, …: ranges of `UW` images of `imageFloats` values), or x itself without UW. */
export function windowsOf(x: GPUBuffer, N: number, imageFloats: number, UW: number): Record<string, Binding> {
  if (!UW) return { x };
  const size = UW * imageFloats * 4;
  return Object.fromEntries(range(N / UW).map((i) => [`x${i}`, { buffer: x, offset: i * size, size }]));
}

/**
 * WGSL reading x from its uniform windows: `wi`, the window of the workgroup's images (`group`: their index in
 * groups of sg), and `xl`, the vec4 index `xb` within it; then `loads(xs, at)` (WGSL reading array `xs` from
 * index `at`) once per window, in a switch on `wi`.
 */
export function windowSwitch(
  group: string,
  UW: number,
  sg: number,
  windows: number,
  imageFloats: number,
  loads: (xs: string, at: string) => string,
): string[] {
  return [
    `let wi = ${group} / ${UW / sg}u; let xl = xb - wi * ${(UW * imageFloats) / 4}u;`,
    'switch (wi) {',
    ...range(windows).map((i) => `  ${i < windows - 1 ? `case ${i}u` : 'default'}: { ${loads(`x${i}`, 'xl')} }`),
    '}',
  ];
}

const UNIFORM_USAGE = 0x40; // GPUBufferUsage.UNIFORM (globals may not be installed yet)

/**
 * The images per window a tile's UW asks for where x can be bound as uniform windows, else 0: a caller's buffer
 * may lack UNIFORM usage, and then the tile reads the storage buffer, the same sums.
 */
export const windowsFor = (UW: number | undefined, x: GPUBuffer): number => (UW && (x.usage & UNIFORM_USAGE) !== 0 ? UW : 0);

/** The patch tile reading x as uniform windows (see the top of this file), with the most images a window holds, where it runs. */
export function patchWindowTiles(gpu: Gpu, a: Pick<DirectArgs, 'N' | 'Cin' | 'Hin' | 'Win'>, t: Conv2dTile): Conv2dTile[] {
  const UW = imagesPerWindow(gpu, a.N, a.Cin * a.Hin * a.Win);
  return UW ? [{ ...t, UW }] : [];
}

/** The patch tile walking whole columns of row blocks (SL, see the top of this file), where there are several. */
export function patchWalkTiles(a: Pick<DirectArgs, 'Hout'>, t: Conv2dTile): Conv2dTile[] {
  const blocks = a.Hout / (t.RT ?? 1);
  return Number.isInteger(blocks) && blocks > 1 ? [{ ...t, SL: blocks }] : [];
}

const patchKernel = memoKernel(
  (
    Cin: number,
    Hin: number,
    Win: number,
    Hout: number,
    Wout: number,
    KH: number,
    KW: number,
    t: Conv2dTile,
    sg: number,
    windows: number,
    codes: boolean,
    saveArgmax: boolean,
  ) => {
    const { OT, PT } = t;
    const RT = t.RT ?? 1;
    const PR = RT / 2;
    const nq = Math.ceil((PT + KW - 1) / 4); // vec4s per patch row
    const rows = RT + KH - 1;
    const NT = KH * KW;
    const SL = t.SL ?? 1;
    const heldRows = (rs: number[]) =>
      range(Cin).flatMap((ic) => rs.flatMap((r) => range(nq).map((q) => [`v${ic}_${r}_${q}`, (ic * Hin + r) * (Win / 4) + q] as const)));
    // x from its storage buffer, or from the uniform window of the workgroup's images (a switch on the window,
    // the same in every lane)
    const image = Cin * Hin * Win;
    const load = (rs: number[]) => {
      const h = heldRows(rs);
      if (!t.UW) return h.map(([v, k]) => `${v} = x[xb + ${k}u];`);
      return [
        '{',
        ...windowSwitch('nb', t.UW, sg, windows, image, (xs, at) => h.map(([v, k]) => `${v} = ${xs}[${at} + ${k}u];`).join(' ')),
        '}',
      ];
    };
    // the patch's first KH − 1 rows once, then RT rows a block: a workgroup walks SL blocks down a column, and each
    // block's last KH − 1 rows are the next one's first
    const kept = range(KH - 1);
    const declared = heldRows(range(rows)).map(([v]) => `var ${v}: vec4f;`);
    const below = heldRows(kept.map((r) => r + RT));
    const slide = heldRows(kept).map(([v], i) => `${v} = ${below[i][0]};`);
    const xv = (ic: number, r: number, j: number) => `v${ic}_${r}_${j >> 2}[${j & 3}]`;
    const acc = (r: number, pp: number) => `a${r}_${pp}`;
    const sums = range(Cin).flatMap((ic) => [
      ...range(Math.ceil(NT / sg)).map((g) => `let wg${ic}_${g} = w[(o * ${Cin}u + ${ic}u) * ${NT}u + min(${g * sg}u + sid, ${NT - 1}u)];`),
      ...range(KH).flatMap((kh) =>
        range(RT).flatMap((r) =>
          range(KW).flatMap((kw) => {
            const k = kh * KW + kw;
            const wt = `subgroupBroadcast(wg${ic}_${Math.floor(k / sg)}, ${k % sg}u)`;
            return [
              `{ let wt = ${wt};`,
              ...range(PT).map((pp) => `  ${acc(r, pp)} = fma(wt, ${xv(ic, r + kh, pp + kw)}, ${acc(r, pp)});`),
              '}',
            ];
          }),
        ),
      ),
    ]);
    const pooled = range(PR).flatMap((pr) => [
      ...range(PT / 2).map((q) => {
        const c = [acc(2 * pr, 2 * q), acc(2 * pr, 2 * q + 1), acc(2 * pr + 1, 2 * q), acc(2 * pr + 1, 2 * q + 1)];
        // the maximum's offset in its window (its first position's index added to four at once below)
        return windowMaxRelu(c, ['0', '1', `${Wout}`, `${Wout + 1}`], `m${pr}_${q}`, `j${pr}_${q}`);
      }),
      ...range(PT / 8).map((q4) => {
        const parts = (base: string) => range(4).map((e) => `${base}${pr}_${4 * q4 + e}`);
        const first = range(4).map((e) => 2 * (4 * q4 + e) + 2 * pr * Wout);
        return `if (live) { let at = (pbase + o * ${(Hout / 2) * (Wout / 2)}u + ${pr * (Wout / 2)}u) / 4u + ${q4}u; y[at] = vec4f(${parts('m').join(', ')});
      let j = vec4i(${parts('j').join(', ')});${saveArgmax ? ` argmax[at] = select(j + vec4i(jw) + vec4i(${first.join(', ')}), j, j < vec4i(0));` : ''}${
        codes
          ? `
      let k = select(select(vec4u(0u), vec4u(2u), j >= vec4i(${Wout})) + vec4u(j & vec4i(1)), vec4u(${POOL_CODE_CUT}u), j < vec4i(0));
      codes[at] = k.x | (k.y << 8u) | (k.z << 16u) | (k.w << 24u);`
          : ''
      } }`;
      }),
    ]);
    const nPB = Wout / PT;
    return declareKernel({
      name: `conv2d_v4_patch_pool_relu${t.SL ? `_sl${t.SL}` : ''}${t.UW ? `_uw${t.UW}x${windows}` : ''}${codes ? '_codes' : ''}${saveArgmax ? '' : '_noidx'}${t.DU ? '_du' : ''}`,
      enable: ['subgroups'],
      params: { N: 'u32', nNB: 'u32', Cout: 'u32', hasBias: 'u32', ...(t.DU ? CELL_PARAMS : {}) },
      buffers: {
        ...(t.DU ? TICKETS : {}),
        ...windowDecls(t.UW ?? 0, windows, image),
        w: 'read',
        bias: 'read',
        y: { read_write: 'vec4f' },
        ...(saveArgmax ? { argmax: { read_write: 'vec4i' } } : {}),
        ...(codes ? { codes: { read_write: 'u32' } } : {}),
      },
      wgsl: takeCells(
        !!t.DU,
        /* wgsl */ `${IS_NAN}
@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sid: u32) {
  let gidx = wid.y * nwg.x + wid.x;  // (SL row blocks, column block, image block); past the end only at grid rounding
  let nb = gidx % p.nNB;
  let pb = (gidx / p.nNB) % ${nPB}u;
  let rb0 = gidx / (p.nNB * ${nPB}u) * ${SL}u; // the first of the workgroup's SL row blocks
  let nl = nb * ${sg}u + sid;
  let n = min(nl, p.N - 1u);
  let xc = ((n * ${Cin * Hin}u + min(rb0, ${Hout / RT - 1}u) * ${RT}u) * ${Win}u + pb * ${PT}u) / 4u;
  let oc0 = wid.z * ${OT}u;
  ${declared.join(' ')}
  var xb = xc;
  ${load(kept).join('\n  ')}
  for (var rb = rb0; rb < rb0 + ${SL}u; rb++) {
  let live = nl < p.N && rb < ${Hout / RT}u;
  xb = xc + (rb - rb0) * ${(RT * Win) / 4}u; // the block's first row (its last RT rows are loaded here)
  ${load(range(RT).map((r) => r + KH - 1)).join('\n  ')}
  let pbase = (n * p.Cout * ${Hout / 2}u + rb * ${PR}u) * ${Wout / 2}u + pb * ${PT / 2}u;
  let jw = i32(rb * ${RT * Wout}u + pb * ${PT}u);
  for (var o = oc0; o < min(oc0 + ${OT}u, p.Cout); o++) {
    let b = select(0.0, bias[o], p.hasBias != 0u);
    ${range(RT)
      .flatMap((r) => range(PT).map((pp) => `var ${acc(r, pp)} = b;`))
      .join(' ')}
    ${sums.join('\n    ')}
    ${pooled.join('\n    ')}
  }
  ${slide.join(' ')}
  }
}`,
      ),
    });
  },
);

/** The pooled forward with a patch tile (see the top of this file); patchPoolRelu says where it runs. */
export function patchV4PoolRelu(gpu: Gpu, a: DirectArgs, buffers: PoolReluBuffers, t: Conv2dTile): void {
  const sg = fixedSubgroupSize(gpu)!; // the registry checked the requirement
  const image = a.Cin * a.Hin * a.Win;
  const why = patchPoolRelu(a, t) ?? (t.UW ? uniformWindows(gpu, a.N, image, t.UW, sg) : null);
  if (why) throw new VariantError(`conv2d_v4_patch_pool_relu: ${why}`);
  const UW = windowsFor(t.UW, buffers.x);
  const nNB = Math.ceil(a.N / sg);
  const cells = nNB * (a.Wout / t.PT) * (a.Hout / (t.RT ?? 1) / (t.SL ?? 1));
  const windows = UW ? a.N / UW : 0;
  const { x, argmax, codes, ...rest } = buffers;
  // on llvmpipe one workgroup per thread, taking the cells of the grid from a counter (takeCells)
  const DU = t.DU ?? unitWorkgroups(gpu);
  const tw = { ...t, WG: sg, UW: UW || undefined, DU: DU ? 1 : 0 };
  const kernel = patchKernel(a.Cin, a.Hin, a.Win, a.Hout, a.Wout, a.KH, a.KW, tw, sg, windows, !!codes, !!argmax);
  const cl = cellLaunch(gpu.ticketBuffer, DU, cells, Math.ceil(a.Cout / t.OT), grid1d(cells, 1));
  launch(gpu, kernel, {
    params: { N: a.N, nNB, Cout: a.Cout, hasBias: +a.hasBias, ...cl.params },
    buffers: { ...cl.buffers, ...rest, ...(argmax ? { argmax } : {}), ...(codes ? { codes } : {}), ...windowsOf(x, a.N, image, UW) },
    workgroups: cl.workgroups,
  });
}
