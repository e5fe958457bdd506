// Backward-weight for convolutions with few taps (the seed's conv1: one input channel, 5×5): conv2d's v4 with an
// IL tile. dw[o,c,kh,kw] = Σ_{n,oh,ow} dy[n,o,oh,ow] · x[n,c,oh+kh,ow+kw] (stride 1, no padding), db[o] = Σ dy.
//
// The v4 tiles put (c, kh) on the lanes: on conv1 that is 5 of 8 lanes, each loading its own x rows and sharing
// dy by broadcast, and they ran at 25–30% of the FMA peak. Here the lanes are sg images, as in the forward: a
// workgroup takes one RT×PT block of output positions, each lane loads the Cin·(RT+KH−1)·(PT+KW−1) input values
// the block reads in its image (as vec4s, once per image), and then, for each output channel (a runtime loop, the
// same in every lane), loads its RT·PT dy values and sums the T = Cin·KH·KW tap products (and the bias sum) over
// the block: T registers of sums, one dy value, the patch read from the stack. The lanes' T + 1 sums are then
// added across the subgroup by a reduce-scatter (log2 sg rounds of subgroupShuffleXor per group of sg sums, so
// lane l ends with sum k·sg + l of group k) and added to the workgroup's partial sums, one per lane per group.
// A workgroup (one slice) walks consecutive units, a unit being one block in one group of sg images, the blocks
// of a column going down first, so that where a unit follows the block above it the patch slides: its last KH − 1
// rows become the first, and RT rows are loaded instead of RT + KH − 1 (1.06–1.11× as fast on conv1, 1.02× on
// conv2, alternating in one process). With one slice it sums into dw and db themselves, else the slices' partial
// sums ([slice][O·C·KH·KW], [slice][O]) are added by conv2d_sum_partials. Every sum runs in a fixed order
// (another order than the v4 tiles').
//
// With LS (on llvmpipe: orderedAtomics) no second dispatch adds the slices: each workgroup takes a ticket from a
// counter of its channel group when its partial sums are stored, and the one taking the last adds up every
// slice's, in slice order as conv2d_sum_partials does, so dw and db are the same bit for bit. On llvmpipe a
// dispatch costs 30–40 µs however little it does; conv1's weight gradient (16 slices, x as uniform windows) ran
// 1.17× as fast with LS and with 2 slices 1.14× (llvmpipe, AMD EPYC, 2026-12-01, alternating in one process, 31
// rounds). The lanes of a workgroup are one SIMD stream on llvmpipe, so its stores all precede its ticket.
//
// Behind a 2×2 max pool with its ReLU (conv2d.pool-relu.backward-weight's v4) the kernel reads the pooled
// gradient and the pool's argmax instead of dy: per output channel a lane loads its RT/2 × PT/2 pooled values and
// their argmax (4 vec4s instead of 8) and takes a position's dy as select(0, g, argmax == position), the value
// max_pool2d's backward would have stored there, so the sums are the same bit for bit. Measured alternating in one
// process (llvmpipe, AMD EPYC, 2026-11-30): conv1 0.37 ms against 0.68 for max_pool2d's backward and this tile on
// its output (0.44 for the tile alone), conv2 0.68 against 0.93 for the tile alone.
//
// Given the pool's window codes instead of its argmax (pool.ts: a byte per window, four to a word), a lane loads
// one word per four windows instead of a vec4 of their argmax, and takes a window's row and column from its code
// (a mask and a compare) instead of from its offset to the block: the same sums bit for bit. Alternating in one
// process with the seed's tuned tiles (llvmpipe, AMD EPYC, 2026-12-01, six runs of 41 rounds): conv1 1.07–1.13×
// as fast as from the argmax, conv2 1.09–1.20×.
//
// With UW, x is read as uniform windows of UW images, as the patch forward can (patch.ts): the slide's moves and
// the loads once per window in a switch on the unit's window. llvmpipe runs every case of a switch under a mask,
// so each window's loads run (branch-free ones, against the storage buffer's per-lane branches); the sums are the
// same bit for bit.
//
// With AM (behind the pool; every pooled tile the tuner is offered takes it), a window's value meets the taps at
// its maximum only: three of a window's four positions have dy = 0. The x of the maximum's column is picked by a
// select, and each row of windows takes two passes, the windows whose maximum is in their first row, then those
// whose maximum is in their second, so that each sum adds its nonzero terms in the dense order: the same sums bit
// for bit (only where x holds ∞ or NaN at a position no maximum picked do the dense sums differ: NaN, 0 × ∞). Half
// the multiply-adds, a quarter doing work. Alternating the whole op in one process (llvmpipe, AMD EPYC,
// 2026-11-30, two runs of 21 rounds): conv1 (16 slices) 0.309 and 0.335 ms against 0.335 and 0.353 dense, 0.285 and
// 0.296 with uniform windows too; conv2 (one slice) 0.486 and 0.496 against 0.554 and 0.544. One pass per window
// (in another order) ran 1.17× as fast as dense against this 1.10× in a prototype.
//
// Measured on the seed's layers (alternating in one process, medians of 21; llvmpipe, AMD EPYC, 2026-11-30), the
// whole op with any sum of partials, against the v4 tile the tuner chose before: conv1 0.46–0.51 ms against
// 0.66–0.73 (about 16 slices; one slice, a single workgroup, ran 0.75); conv2 0.75 ms in one slice (10
// workgroups, one per input channel), 0.83 in 2 and 0.90 in 16, against 1.29. Per lane 4×8 positions ran faster
// than 8×8, 4×12, 4×24 and 8×24; a vec4 store of a lane's four sums (instead of four scalar stores) and a private
// array of them per channel both ran slower; several input channels per workgroup summed in turn (CT passes
// over one dy load) ran no faster (2) or took llvmpipe 15 s to compile (5); and several groups of images held
// at once ran slower.
import { VariantError } from '../../errors.js';
import { fixedSubgroupSize, orderedAtomics } from '../../gpu/capabilities.js';
import { declareKernel, launch } from '../../gpu/kernel.js';
import { type Gpu, TICKET_WORDS } from '../../gpu/runtime.js';
import { memoKernel, range, TICKETS } from '../wgsl.js';
import type { BackwardWeightBuffers, Conv2dWeightTile } from './backward-weight.js';
import { imagesPerWindow, MAX_PATCH, uniformWindows, windowDecls, windowSwitch, windowsFor, windowsOf } from './patch.js';
import type { Geometry } from './sizes.js';
import { slicing, sumPartials, sumSlices } from './sum-partials.js';

/** The most sums (taps and bias) a lane keeps; its patch holds at most MAX_PATCH input values, as the forward's. */
const MAX_SUMS = 32;

/**
 * The IL tile: 4×8 output positions per lane, one input channel per workgroup, about 16 workgroups per input
 * channel; behind the pool (`pooled`) with AM.
 */
export const imageLanesTile = (pooled = false): Conv2dWeightTile => ({
  OT: 0,
  PT: 8,
  WG: 0,
  groups: 16,
  RT: 4,
  IL: 1,
  CT: 1,
  ...(pooled ? { AM: 1 } : {}),
});

/**
 * How a launch splits its units (a block of positions in a group of sg images; blocks × groups of them) over `slices`
 * workgroups per input-channel group, about t.groups, each taking `per` consecutive units.
 */
function unitSplit(g: Geometry, t: Conv2dWeightTile, sg: number): { units: number; per: number; slices: number } {
  const units = (g.OH / (t.RT ?? 1)) * (g.OW / t.PT) * Math.ceil(g.N / sg);
  return { units, ...slicing(units, t.groups) };
}

/**
 * IL tiles a tuner may time (none where imageLanesTile cannot run; `pooled`: the kernel reading a pooled dy, see
 * imageLanesPooled): it, then about 2 workgroups and 1 (its sums then go to dw itself), where those split otherwise;
 * given the adapter, each of them also reading x as uniform windows where the batch is whole windows.
 */
export function imageLanesTiles(g: Geometry, sg: number, pooled = false, gpu?: Gpu): Conv2dWeightTile[] {
  const d = imageLanesTile(pooled);
  if ((pooled ? imageLanesPooled(g, d, sg) : imageLanes(g, d, sg)) !== null) return [];
  const all = [d, { ...d, groups: 2 }, { ...d, groups: 1 }];
  const split = all
    .filter((t, i) => all.findIndex((u) => unitSplit(g, u, sg).slices === unitSplit(g, t, sg).slices) === i)
    .map((t) => ({ ...t, slices: unitSplit(g, t, sg).slices }));
  // split into slices, their sums added up by the last workgroup where the adapter allows it (LS), not a second pass
  const LS = gpu && lastSliceSums(gpu, g, d) === null;
  const tiles = split.map(({ slices, ...t }) => (LS && slices > 1 ? { ...t, LS: 1 } : t));
  const UW = gpu ? imagesPerWindow(gpu, g.N, g.C * g.H * g.W) : 0;
  return [...tiles, ...(UW ? tiles.map((t) => ({ ...t, UW })) : [])];
}

/**
 * Why the last workgroup of each channel group cannot add up the slices' sums here (the tile's LS), or null: where
 * the adapter orders atomics for it (orderedAtomics) and a counter is free for each channel group.
 */
export function lastSliceSums(gpu: Pick<Gpu, 'adapter'>, g: Geometry, t: Conv2dWeightTile): string | null {
  if (!orderedAtomics(gpu)) return `the adapter (${gpu.adapter.description}) does not promise what the last workgroup reads`;
  const groups = g.C / (t.CT ?? 1);
  return groups > TICKET_WORDS ? `${groups} channel groups are more than the ${TICKET_WORDS} ticket counters` : null;
}

/** Why backward-weight cannot take this IL tile here, or null. */
export function imageLanes(g: Geometry, t: Conv2dWeightTile, sg: number): string | null {
  const RT = t.RT ?? 1;
  if ((sg & (sg - 1)) !== 0) return `subgroups of ${sg} lanes are not a power of two`;
  if (g.S !== 1 || g.pad !== 0) return `the image-lane tile needs stride 1 and no padding, not stride ${g.S}, padding ${g.pad}`;
  if (g.OH % RT !== 0 || g.OW % t.PT !== 0) return `a ${g.OH}x${g.OW} output is not whole ${RT}x${t.PT} blocks`;
  if (t.PT % 4 !== 0 || g.W % 4 !== 0 || g.OW % 4 !== 0)
    return `rows of ${g.W} inputs and ${g.OW} outputs in blocks of ${t.PT} are not whole vec4s`;
  const CT = t.CT ?? 1;
  if (g.C % CT !== 0) return `${g.C} input channels are not whole groups of ${CT}`;
  const held = CT * (RT + g.KH - 1) * (t.PT + g.KW - 1);
  if (held > MAX_PATCH) return `a patch of ${held} input values is more than a lane holds (${MAX_PATCH})`;
  const sums = CT * g.KH * g.KW + 1;
  return sums > MAX_SUMS ? `${sums} sums per output channel are more than a lane keeps (${MAX_SUMS})` : null;
}

// compile-time: the sizes but N, the tile and the subgroup size (N and the groups per workgroup are uniforms)
type KernelSizes = Pick<Geometry, 'C' | 'H' | 'W' | 'O' | 'KH' | 'KW' | 'OH' | 'OW'>;

const imageLanesKernel = memoKernel(
  (
    g: KernelSizes,
    RT: number,
    PT: number,
    CT: number,
    sg: number,
    bias: boolean,
    pooled: boolean,
    UW: number,
    windows: number,
    atMaxima: boolean,
    codes: boolean,
    lastSums: boolean,
  ) => {
    const { C, H, W, KH, KW, OH, OW } = g;
    const T = CT * KH * KW; // the workgroup's taps: CT input channels (from workgroup_id.z) × KH × KW
    const rows = RT + KH - 1;
    const nq = Math.ceil((PT + KW - 1) / 4);
    const nPB = OW / PT;
    // the patch: where the unit before was the block above (same images and columns), its last KH − 1 rows are
    // this block's first, and only RT rows are loaded
    const held = (rs: number[], f: (c: number, r: number, q: number) => string) =>
      range(CT).flatMap((c) => rs.flatMap((r) => range(nq).map((q) => f(c, r, q))));
    const kept = range(KH - 1);
    const section = (xs: string, at: string) => {
      const load = (c: number, r: number, q: number) => `v${c}_${r}_${q} = ${xs}[${at} + ${((c * H + r) * W) / 4 + q}u];`;
      return [
        `if (slide) { ${held(kept, (c, r, q) => `v${c}_${r}_${q} = v${c}_${r + RT}_${q};`).join(' ')} }`,
        `else { ${held(kept, load).join(' ')} }`,
        ...held(
          range(RT).map((r) => r + KH - 1),
          load,
        ),
      ];
    };
    // x from its storage buffer, or (UW) from the uniform window of the unit's images, in a switch on the window
    const patch = !UW ? section('x', 'xb') : windowSwitch('ng', UW, sg, windows, C * H * W, (xs, at) => section(xs, at).join(' '));
    const xv = (c: number, r: number, j: number) => `v${c}_${r}_${j >> 2}[${j & 3}]`;
    // dy: the lane's RT×PT values (at dr); pooled, its RT/2 × PT/2 pooled values and their argmax (at gr), a
    // position's dy being its window's value where the argmax names it, else 0 (what max_pool2d's backward writes);
    // with codes, their window codes instead of the argmax (a word per vec4 of pooled values, at the same index)
    const PW = OW / 2;
    const dys = pooled
      ? range(RT / 2).flatMap((pr) =>
          range(PT / 8).map((q) => {
            const at = `gr + ${(pr * PW) / 4 + q}u`;
            return `let g${pr}_${q} = select(vec4f(0.0), dy[${at}], live); ${codes ? `let c${pr}_${q} = codes[${at}];` : `let j${pr}_${q} = argmax[${at}];`}`;
          }),
        )
      : range(RT).flatMap((r) => range(PT / 4).map((q) => `let d${r}_${q} = select(vec4f(0.0), dy[dr + ${(r * OW) / 4 + q}u], live);`));
    const dyAt = (r: number, pp: number) => {
      if (!pooled) return `d${r}_${pp >> 2}[${pp & 3}]`;
      const [v, e] = [`${r >> 1}_${pp >> 3}`, (pp >> 1) & 3];
      if (codes) return `select(0.0, g${v}[${e}], ((c${v} >> ${8 * e}u) & 255u) == ${2 * (r & 1) + (pp & 1)}u)`;
      return `select(0.0, g${v}[${e}], j${v}[${e}] == jw + ${r * OW + pp})`;
    };
    const tapOf = (tap: number) => [Math.floor(tap / (KH * KW)), Math.floor(tap / KW) % KH, tap % KW];
    // position by position: one dy value against every tap, so the T sums stay in registers
    const dense = () =>
      range(RT).flatMap((r) =>
        range(PT).map((pp) => {
          const fmas = range(T).map((tap) => {
            const [c, kh, kw] = tapOf(tap);
            return `s${tap} = fma(d, ${xv(c, r + kh, pp + kw)}, s${tap});`;
          });
          return `{ let d = ${dyAt(r, pp)};${bias ? ` s${T} += d;` : ''} ${fmas.join(' ')} }`;
        }),
      );
    // AM (pooled): window by window, a window's value against every tap at its maximum only, the x of its
    // maximum's column picked by a select (jj: the maximum's offset in its window, 0, 1, OW or OW + 1; negative
    // where the ReLU cut it). Two passes per row of windows, the windows whose maximum is in their first row,
    // then those whose maximum is in their second, add each sum's nonzero terms in the dense order: the same
    // sums bit for bit with a quarter of the multiply-adds doing work (half of them issued).
    const atMax = () =>
      range(RT / 2).flatMap((pr) =>
        [0, 1].flatMap((row) =>
          range(PT / 2).map((pc) => {
            const [v, e] = [`${pr}_${pc >> 2}`, pc & 3];
            const fmas = range(T).map((tap) => {
              const [c, kh, kw] = tapOf(tap);
              const [r, col] = [2 * pr + row + kh, 2 * pc + kw];
              return `s${tap} = fma(d, select(${xv(c, r, col)}, ${xv(c, r, col + 1)}, odd), s${tap});`;
            });
            // the window's maximum: in this row and which column, from its offset or (codes) its code
            const at = codes
              ? `let k = (c${v} >> ${8 * e}u) & 255u; let d = select(0.0, g${v}[${e}], (k & 254u) == ${2 * row}u); let odd = (k & 1u) != 0u;`
              : `let jj = j${v}[${e}] - (jw + ${2 * pr * OW + 2 * pc}); let d = select(0.0, g${v}[${e}], (jj >= 0) & ((jj >= ${OW}) == ${row === 1})); let odd = (jj & 1) != 0;`;
            return `{ ${at}${bias ? ` s${T} += d;` : ''} ${fmas.join(' ')} }`;
          }),
        ),
      );
    const sums = pooled && atMaxima ? atMax() : dense();
    // the reduce-scatter: group k's sums k·sg … k·sg + sg − 1 (zeros past the last), halved log2(sg) times; at
    // each round a lane keeps the half its lane bit selects and adds the other lane's copy of it
    const nS = T + (bias ? 1 : 0);
    const bits = range(Math.log2(sg));
    const reduce = range(Math.ceil(nS / sg)).flatMap((k) => {
      let vals = range(sg).map((i) => (k * sg + i < nS ? `s${k * sg + i}` : '0.0'));
      const out: string[] = [];
      for (const b of bits.slice().reverse()) {
        const half = vals.length / 2;
        const next = range(half).map((i) => `h${k}_${b}_${i}`);
        out.push(
          ...range(half).map(
            (i) =>
              `let ${next[i]} = select(${vals[i]}, ${vals[i + half]}, b${b}) + subgroupShuffleXor(select(${vals[i + half]}, ${vals[i]}, b${b}), ${1 << b}u);`,
          ),
        );
        vals = next;
      }
      // lane l now holds sum k·sg + l: a weight's (tap k·sg + l of channels c0…, at (o·C + c0)·KH·KW + tap) or, at T,
      // the bias's; added to the slice's partial sums (or, in one slice, to dw and db)
      const tap = `${k * sg}u + sid`;
      const wStore = `{ let i = slice * ${g.O * C * KH * KW}u + (o * ${C}u + c0) * ${KH * KW}u + ${tap}; part[i] = select(0.0, part[i], keep) + ${vals[0]}; }`;
      const bStore = `{ let i = slice * ${g.O}u + o; dbPart[i] = select(0.0, dbPart[i], keep) + ${vals[0]}; }`;
      if ((k + 1) * sg <= T) out.push(wStore);
      else {
        out.push(`if (${tap} < ${T}u) ${wStore}`);
        if (bias && k === Math.floor(T / sg)) out.push(`if (${tap} == ${T}u && c0 == 0u) ${bStore}`); // one channel group sums the bias
      }
      return out;
    });
    // LS: the workgroups of a channel group take tickets when their slices' sums are in part, and the last adds
    // up every slice's sums for the group, in slice order with conv2d_sum_partials' sumSlices (the same sums, bit
    // for bit), then sets the counter back to zero for the next dispatch. One dispatch instead of two: on llvmpipe the second
    // costs about an empty dispatch, 30-40 µs (orderedAtomics: why the stores are seen there, and only there).
    const M = g.O * C * KH * KW;
    const finalSums = [
      'var ticket = 0u;',
      'if (sid == 0u) { ticket = atomicAdd(&tickets[wid.z], 1u); }',
      'if (subgroupBroadcast(ticket, 0u) + 1u == nwg.x) {',
      '  if (sid == 0u) { atomicStore(&tickets[wid.z], 0u); }',
      `  for (var j = sid; j < ${g.O * T}u; j += ${sg}u) {`,
      `    let i = (j / ${T}u * ${C}u + c0) * ${KH * KW}u + j % ${T}u; // (o·C + c0)·KH·KW + tap, tap < T`,
      `    ${sumSlices('dw', 'part', 'i', `${M}u`, 'nwg.x', 'p.addTo != 0u')}`,
      '  }',
      ...(bias
        ? [
            `  for (var o = sid; o < ${g.O}u && c0 == 0u; o += ${sg}u) {`,
            `    ${sumSlices('db', 'dbPart', 'o', `${g.O}u`, 'nwg.x', 'p.addTo != 0u')}`,
            '  }',
          ]
        : []),
      '}',
    ];
    return declareKernel({
      name: `conv2d_bwd_weight_v4_il${pooled ? '_pooled' : ''}${bias ? '_bias' : ''}${UW ? `_uw${UW}x${windows}` : ''}${pooled && atMaxima ? '_am' : ''}${codes ? '_codes' : ''}${lastSums ? '_ls' : ''}`,
      enable: ['subgroups'],
      params: { N: 'u32', units: 'u32', per: 'u32', accumulate: 'u32', ...(lastSums ? { addTo: 'u32' as const } : {}) },
      buffers: {
        ...windowDecls(UW, windows, C * H * W),
        dy: { read: 'vec4f' },
        ...(pooled ? (codes ? { codes: { read: 'u32' } } : { argmax: { read: 'vec4i' } }) : {}),
        part: 'read_write',
        ...(bias ? { dbPart: 'read_write' } : {}),
        ...(lastSums ? { dw: 'read_write', ...(bias ? { db: 'read_write' } : {}), ...TICKETS } : {}),
      },
      wgsl: /* wgsl */ `@compute @workgroup_size(${sg}) fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(subgroup_invocation_id) sid: u32) {
  let slice = wid.x;
  let c0 = wid.z * ${CT}u;
  ${bits.map((b) => `let b${b} = (sid & ${1 << b}u) != 0u;`).join(' ')}
  ${held(range(rows), (c, r, q) => `var v${c}_${r}_${q}: vec4f;`).join(' ')}
  for (var u = slice * p.per; u < min(slice * p.per + p.per, p.units); u++) {
    let keep = u > slice * p.per || p.accumulate != 0u; // the slice's first unit starts its sums (or adds to dw)
    let rb = u % ${OH / RT}u; // units: row blocks, then column blocks, then groups of images
    let pb = (u / ${OH / RT}u) % ${nPB}u;
    let ng = u / ${(OH / RT) * nPB}u;
    let slide = u > slice * p.per && rb > 0u; // the unit before was the block above
    let nl = ng * ${sg}u + sid;
    let live = nl < p.N;
    let n = min(nl, p.N - 1u);
    let xb = (((n * ${C}u + c0) * ${H}u + rb * ${RT}u) * ${W}u + pb * ${PT}u) / 4u;${
      pooled && !codes
        ? `
    let jw = i32(rb * ${RT * OW}u + pb * ${PT}u); // the block's first position in the convolution's output plane`
        : ''
    }
    ${patch.join('\n    ')}
    for (var o = 0u; o < ${g.O}u; o++) {
      ${
        pooled
          ? `let gr = (((n * ${g.O}u + o) * ${OH / 2}u + rb * ${RT / 2}u) * ${PW}u + pb * ${PT / 2}u) / 4u;`
          : `let dr = (((n * ${g.O}u + o) * ${OH}u + rb * ${RT}u) * ${OW}u + pb * ${PT}u) / 4u;`
      }
      ${dys.join('\n      ')}
      ${range(nS)
        .map((s) => `var s${s} = 0.0;`)
        .join(' ')}
      ${sums.join('\n      ')}
      ${reduce.join('\n      ')}
    }
  }
  ${lastSums ? finalSums.join('\n  ') : ''}
}`,
    });
  },
);

/**
 * Why the pooled IL kernel cannot take this tile (dy the gradient of relu(max_pool2d(conv, 2)) with its argmax),
 * or null: imageLanes' conditions, and 2×2 windows wholly in each block with the pooled rows whole vec4s.
 */
export function imageLanesPooled(g: Geometry, t: Conv2dWeightTile, sg: number): string | null {
  const why = imageLanes(g, t, sg);
  if (why) return why;
  if ((t.RT ?? 1) % 2 !== 0 || t.PT % 8 !== 0) return `blocks of ${t.RT ?? 1}x${t.PT} positions are not whole 2x2 windows in vec4s of them`;
  if (g.OW % 8 !== 0) return `rows of ${g.OW / 2} pooled outputs are not whole vec4s`;
  return null;
}

/**
 * Backward-weight with an IL tile (see the top of this file); imageLanes says where it runs. With `argmax`, dy
 * is the gradient of relu(max_pool2d(conv, 2)) ([N, O, OH/2, OW/2]) and argmax the pool's (−1 where the ReLU
 * cut a window): the kernel reads a position's dy as max_pool2d's backward writes it (imageLanesPooled).
 */
export function backwardWeightImageLanes(
  gpu: Gpu,
  g: Geometry,
  buffers: BackwardWeightBuffers & { argmax?: GPUBuffer | null; codes?: GPUBuffer | null },
  accumulate: boolean,
  t: Conv2dWeightTile,
): void {
  const sg = fixedSubgroupSize(gpu)!; // the registry checked the requirement
  const { x, dy, dw, db } = buffers;
  const codes = buffers.codes ?? null;
  const argmax = codes ? null : (buffers.argmax ?? null);
  const pooled = !!(argmax || codes);
  const image = g.C * g.H * g.W;
  const why =
    (pooled ? imageLanesPooled(g, t, sg) : imageLanes(g, t, sg)) ??
    (t.UW ? uniformWindows(gpu, g.N, image, t.UW, sg) : null) ??
    (t.AM && !pooled ? 'AM takes the pooled gradient and its argmax (conv2d.pool-relu.backward-weight)' : null) ??
    (t.LS ? lastSliceSums(gpu, g, t) : null);
  if (why) throw new VariantError(`conv2d_bwd_weight_v4_il${pooled ? '_pooled' : ''}: ${why}`);
  const UW = windowsFor(t.UW, x);
  const RT = t.RT ?? 1;
  const { units, per, slices } = unitSplit(g, t, sg);
  // one slice sums straight into dw (and db); several write partial sums that conv2d_sum_partials adds, or with
  // LS the last workgroup of each channel group to finish
  const direct = slices === 1;
  const lastSums = !direct && !!t.LS;
  const part = direct ? dw : gpu.pool.acquire(4 * slices * g.O * g.C * g.KH * g.KW, 'conv2d dw partial sums');
  const dbPart = direct ? (db ?? null) : db ? gpu.pool.acquire(4 * slices * g.O, 'conv2d db partial sums') : null;
  const { C, H, W, O, KH, KW, OH, OW } = g;
  const CT = t.CT ?? 1;
  const kernel = imageLanesKernel(
    { C, H, W, O, KH, KW, OH, OW },
    RT,
    t.PT,
    CT,
    sg,
    !!db,
    pooled,
    UW,
    UW ? g.N / UW : 0,
    !!t.AM,
    !!codes,
    lastSums,
  );
  launch(gpu, kernel, {
    params: { N: g.N, units, per, accumulate: +(direct && accumulate), ...(lastSums ? { addTo: +accumulate } : {}) },
    buffers: {
      ...windowsOf(x, g.N, image, UW),
      dy,
      ...(codes ? { codes } : argmax ? { argmax } : {}),
      part,
      ...(dbPart ? { dbPart } : {}),
      ...(lastSums ? { dw, ...(db ? { db } : {}), tickets: gpu.ticketBuffer } : {}),
    },
    workgroups: [slices, 1, C / CT],
  });
  if (direct) return;
  if (!lastSums)
    sumPartials(
      gpu,
      { part, out: dw, M: g.O * g.C * g.KH * g.KW },
      slices,
      accumulate,
      dbPart && db ? { part: dbPart, out: db, M: g.O } : undefined,
    );
  // safe: the queue runs the recorded dispatches before any later use of the buffers
  gpu.pool.release(part);
  if (dbPart) gpu.pool.release(dbPart);
}
