// WGSL building blocks every kernel family uses: flat invocation indices over large grids, the one workgroup
// tree reduction, and memoised generators (equal compile-time constants give the identical kernel object, which
// the runtime's pipeline cache then finds without hashing the WGSL text).

/** 0, 1, …, n − 1: for unrolling loops while generating WGSL. */
export const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * Workgroup counts for `n` invocations of `size` threads, spread over x and y when n needs more than
 * maxComputeWorkgroupsPerDimension (65535) groups. Shaders recover the flat index with {@link FLAT_INDEX}.
 */
export function grid1d(n: number, size: number): [number, number] {
  const groups = Math.ceil(n / size);
  if (groups <= 65535) return [Math.max(groups, 1), 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** WGSL: the flat invocation index for a grid from {@link grid1d}; needs the {@link FLAT_BUILTINS} arguments. */
export const FLAT_INDEX = (size: number) => `(wid.y * nwg.x + wid.x) * ${size}u + lid.x`;
export const FLAT_BUILTINS =
  '@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_id) lid: vec3u';

/**
 * WGSL `isNan(v: f32) -> bool` and `isNan4(v: vec4<f32>) -> vec4<bool>`, by the bits. WGSL lets a compiler
 * assume no NaNs, and llvmpipe's does fold `v != v` to false; an integer test on the bits it cannot fold.
 */
export const IS_NAN = /* wgsl */ `
fn isNan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
fn isNan4(v: vec4<f32>) -> vec4<bool> { return (bitcast<vec4<u32>>(v) & vec4<u32>(0x7fffffffu)) > vec4<u32>(0x7f800000u); }`;

/** Memoizes a WGSL generator on its compile-time constants, so equal constants give the identical Kernel. */
export function memoKernel<A extends unknown[], K>(make: (...args: A) => K): (...args: A) => K {
  const cache = new Map<string, K>();
  return (...args: A) => {
    const key = JSON.stringify(args);
    let k = cache.get(key);
    if (!k) {
      k = make(...args);
      cache.set(key, k);
    }
    return k;
  };
}

export interface TreeReductionSpec {
  /** Name of the generated WGSL function (its workgroup array is `<fn>_buf`). */
  fn: string;
  /** WGSL type of the values, e.g. `f32` or `vec2<f32>`. */
  type: string;
  /** Values reduced per lane: the workgroup's invocations taking part (a power of two). */
  size: number;
  /** Independent reductions side by side (default 1): lane l reduces values [l, l + lanes, …]. */
  lanes?: number;
  /** How two partial results combine (default `a + b`). */
  combine?: (a: string, b: string) => string;
  /**
   * Who receives the total: 'all' (default; two more barriers, and the function may be called again) or
   * 'first', invocation 0 alone (it makes the last combination itself, so it needs no barrier to see it).
   */
  to?: 'all' | 'first';
}

/**
 * The workgroup tree reduction, as module-scope WGSL: a workgroup array and
 * `fn <fn>(i: u32, v: T) -> T` (with `lanes > 1`: `fn <fn>(i: u32, lane: u32, v: T) -> T`) that returns the
 * combination of the `size` values given by invocations i = 0 … size − 1 to every one of them (with
 * `to: 'first'`, to invocation 0 only). Pairs combine halving the stride (i with i + size/2, then i + size/4, …),
 * one barrier per level. On llvmpipe each barrier
 * stops a workgroup's SIMD loop (README, "Machines"), so the software variants avoid it; GPU variants use it.
 * Every invocation of the workgroup must call it, from uniform control flow.
 */
export function treeReduction(s: TreeReductionSpec): string {
  const lanes = s.lanes ?? 1;
  const combine = s.combine ?? ((a, b) => `${a} + ${b}`);
  if (!Number.isInteger(Math.log2(s.size))) throw new RangeError(`treeReduction ${s.fn}: size ${s.size} is not a power of two`);
  const at = (i: string) => (lanes === 1 ? `${s.fn}_buf[${i}]` : `${s.fn}_buf[(${i}) * ${lanes}u + lane]`);
  return /* wgsl */ `
var<workgroup> ${s.fn}_buf: array<${s.type}, ${s.size * lanes}>;
fn ${s.fn}(i: u32, ${lanes === 1 ? '' : 'lane: u32, '}v: ${s.type}) -> ${s.type} {
  ${at('i')} = v;
  for (var h = ${s.size / 2}u; h > 0u; h >>= 1u) {
    workgroupBarrier();
    if (i < h) { ${at('i')} = ${combine(at('i'), at('i + h'))}; }
  }
  ${
    s.to === 'first'
      ? `return ${at('0u')};`
      : `workgroupBarrier();
  let r = ${at('0u')};
  workgroupBarrier();
  return r;`
  }
}`;
}

/** The ticket counters a kernel of takeCells reads (bind Gpu.ticketBuffer), and its two uniforms. */
export const TICKETS = { tickets: { read_write: 'atomic<u32>' } } as const;
export const CELL_PARAMS = { units: 'u32', perZ: 'u32' } as const;

/**
 * What a launch of a takeCells kernel adds to its own, for `cells` cells of (x, y) in a grid with `zs` z layers:
 * with `workgroups` (> 0) the counters' uniforms, the ticket buffer and that many workgroups; with 0 nothing but the
 * grid itself (`grid`: its x and y for the cells).
 */
export function cellLaunch(
  ticketBuffer: GPUBuffer,
  workgroups: number,
  cells: number,
  zs: number,
  grid: readonly [number, number],
): { params: Record<string, number>; buffers: Record<string, GPUBuffer>; workgroups: [number, number, number] } {
  return workgroups
    ? { params: { units: cells * zs, perZ: cells }, buffers: { tickets: ticketBuffer }, workgroups: [workgroups, 1, 1] }
    : { params: {}, buffers: {}, workgroups: [grid[0], grid[1], zs] };
}

/**
 * A kernel whose workgroups take the cells of its grid from a counter instead of each computing its own (`on`;
 * else the WGSL as it is). `wgsl`'s main must name its workgroup's cell `let gidx = wid.y * nwg.x + wid.x;` and
 * its z as `wid.z`, and return nowhere early; it is wrapped in a loop that takes cell after cell (ticket 0 counts
 * them; p.units cells in all, p.perZ of them a z) until none is left. The last workgroup to finish (ticket 1
 * counts them) sets both counters back to zero for the next dispatch. Launched with one workgroup a thread on
 * llvmpipe (unitWorkgroups), whose thread pool gives each thread a fixed share of a dispatch's workgroups: the
 * thread that starts first takes over the cells of one that starts late. The same cells, each computed once by one
 * workgroup, so the same results. Where it runs, orderedAtomics says why the counters can be trusted.
 */
export function takeCells(on: boolean, wgsl: string): string {
  if (!on) return wgsl;
  const open = wgsl.indexOf('{', wgsl.indexOf('fn main(')) + 1;
  const cell = 'let gidx = wid.y * nwg.x + wid.x;';
  if (!wgsl.includes(cell)) throw new Error('takeCells: the kernel does not name its cell as expected');
  const body = wgsl
    .slice(open, wgsl.lastIndexOf('}'))
    .replace(cell, 'let gidx = unit % p.perZ;')
    .replace(/wid\.z/g, '(unit / p.perZ)');
  // (the loop's exit depends on a broadcast ticket, the same in every lane: subgroup-uniform, which WGSL's
  // analysis cannot see)
  return `${wgsl.slice(0, open).replace('@compute', '@diagnostic(off, subgroup_uniformity) @compute')}
  loop {
    var got = 0u;
    if (sid == 0u) { got = atomicAdd(&tickets[0], 1u); }
    let unit = subgroupBroadcast(got, 0u);
    if (unit >= p.units) { break; }
    {${body}}
  }
  if (sid == 0u) {
    let done = atomicAdd(&tickets[1], 1u);
    if (done + 1u == nwg.x * nwg.y * nwg.z) { atomicStore(&tickets[0], 0u); atomicStore(&tickets[1], 0u); }
  }
}`;
}
