// Kernels declared as data. A declaration names the kernel, its uniform parameters and its storage buffers in
// binding order, and gives the WGSL that uses them. From that one declaration come
//   - the WGSL header: `struct Params { … }` at binding 0 (read as `p.<name>`) and one `@binding` line per buffer,
//   - the bind-group layout (explicit, so a buffer the entry point happens not to touch is still bound),
//   - the uniform packing (by parameter name) and the order the buffers are bound in (by buffer name),
// so no kernel numbers its bindings or packs its uniforms by hand, and a missing or misspelt name is an error
// that names the kernel rather than a silently shifted binding. A buffer may also be declared a uniform array of
// fixed length (`{ uniform: 'vec4f', elements: n }`), bound to a range of a buffer: a window of a tensor that
// fits a uniform binding (64 KiB by default), which llvmpipe loads without the per-lane branches of a storage
// load (conv2d/patch.ts).
//
//   const scale = declareKernel({
//     name: 'scale_v1',
//     params: { n: 'u32', alpha: 'f32' },
//     buffers: { x: 'read', y: 'read_write' },
//     wgsl: `@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) {
//       if (g.x < p.n) { y[g.x] = p.alpha * x[g.x]; } }`,
//   });
//   launch(gpu, scale, { params: { n, alpha: 0.5 }, buffers: { x, y }, workgroups: [Math.ceil(n / 64)] });
import { DataError, ShapeError } from '../errors.js';
import type { Binding, BindingKind, Gpu, Kernel } from './runtime.js';

/** WGSL scalar types a uniform parameter may have. */
export type ParamType = 'u32' | 'i32' | 'f32';
export type BufferAccess = 'read' | 'read_write';
/**
 * A storage buffer: its access (an array of f32), or its access and its WGSL element type, e.g. `{ read: 'vec4f' }`;
 * or a uniform array of `elements` of a type (16-byte aligned, e.g. 'vec4f'), bound to a buffer range that many long.
 */
export type BufferDecl = BufferAccess | { read: string } | { read_write: string } | { uniform: string; elements: number };

export interface KernelDecl {
  /** `<family>_<op>_v<N>[_<compile-time constants>]`: labels GPU objects and errors. */
  name: string;
  /** Uniform fields in declaration order, read in WGSL as `p.<name>`. */
  params?: Record<string, ParamType>;
  /** Storage buffers (and uniform arrays) in binding order (bindings 1, 2, …), read in WGSL by these names. */
  buffers: Record<string, BufferDecl>;
  /** WGSL extensions to enable, e.g. `['subgroups']`. */
  enable?: readonly string[];
  /** Everything after the header: helpers, workgroup variables and the entry point `main`. */
  wgsl: string;
}

/** A kernel made by {@link declareKernel}: what the runtime compiles, plus how to fill its bindings. */
export interface DeclaredKernel extends Kernel {
  readonly params: readonly (readonly [string, ParamType])[];
  readonly buffers: readonly string[];
  readonly bindings: readonly BindingKind[];
}

const kindOf = (b: BufferDecl): BindingKind =>
  typeof b === 'string' ? b : 'uniform' in b ? 'uniform' : 'read' in b ? 'read' : 'read_write';

/** A buffer's WGSL declaration at `binding`. */
function declaration(name: string, b: BufferDecl, binding: number): string {
  const at = `@group(0) @binding(${binding})`;
  if (typeof b === 'string') return `${at} var<storage, ${b}> ${name}: array<f32>;`;
  if ('uniform' in b) return `${at} var<uniform> ${name}: array<${b.uniform}, ${b.elements}>;`;
  return 'read' in b
    ? `${at} var<storage, read> ${name}: array<${b.read}>;`
    : `${at} var<storage, read_write> ${name}: array<${b.read_write}>;`;
}

/** Builds a kernel's WGSL header, layout and packing from its declaration. */
export function declareKernel(decl: KernelDecl): DeclaredKernel {
  const params = Object.entries(decl.params ?? {});
  const buffers = Object.entries(decl.buffers);
  const header = [
    ...(decl.enable ?? []).map((e) => `enable ${e};`),
    ...(params.length
      ? [`struct Params { ${params.map(([n, t]) => `${n}: ${t}`).join(', ')} }`, '@group(0) @binding(0) var<uniform> p: Params;']
      : []),
    ...buffers.map(([n, b], i) => declaration(n, b, i + 1)),
  ];
  return {
    name: decl.name,
    wgsl: `${header.join('\n')}\n${decl.wgsl}`,
    params,
    buffers: buffers.map(([n]) => n),
    bindings: buffers.map(([, b]) => kindOf(b)),
  };
}

export interface LaunchArgs {
  /** A value for every declared parameter, by name. */
  params?: Record<string, number>;
  /**
   * A buffer for every declared buffer, by name (one buffer may appear under several read-only names); for a
   * uniform array, a range of one (`{ buffer, offset, size }`, the offset a multiple of the adapter's
   * minUniformBufferOffsetAlignment).
   */
  buffers: Record<string, Binding>;
  /** Workgroup counts in x, y, z. */
  workgroups: readonly [number, number?, number?];
}

/** Records one dispatch of a declared kernel: packs its uniforms and binds its buffers in declaration order. */
export function launch(gpu: Gpu, kernel: DeclaredKernel, args: LaunchArgs): void {
  const values = args.params ?? {};
  if (Object.keys(values).length !== kernel.params.length) {
    const unknown = Object.keys(values).filter((k) => !kernel.params.some(([n]) => n === k));
    if (unknown.length)
      throw new DataError(
        `kernel ${kernel.name}: unknown parameter(s) ${unknown.join(', ')}; it declares ${kernel.params.map(([n]) => n).join(', ') || 'none'}`,
      );
  }
  gpu.dispatch({
    kernel,
    params: packParams(kernel, values),
    buffers: kernel.buffers.map((name) => {
      const b = args.buffers[name];
      if (!b) throw new DataError(`kernel ${kernel.name}: no buffer given for "${name}" (it binds ${kernel.buffers.join(', ')})`);
      return b;
    }),
    workgroups: [args.workgroups[0], args.workgroups[1] ?? 1, args.workgroups[2] ?? 1],
  });
}

/** The uniform block: every field 4 bytes in declaration order, padded to a multiple of 16 bytes (WGSL's rule). */
function packParams(kernel: DeclaredKernel, values: Record<string, number>): Uint32Array {
  const u = new Uint32Array(Math.max(4, Math.ceil(kernel.params.length / 4) * 4));
  const f = new Float32Array(u.buffer);
  const s = new Int32Array(u.buffer);
  kernel.params.forEach(([name, type], i) => {
    const v = values[name];
    const ok =
      type === 'f32'
        ? typeof v === 'number'
        : type === 'u32'
          ? Number.isInteger(v) && v >= 0 && v <= 0xffffffff
          : Number.isInteger(v) && v >= -0x80000000 && v <= 0x7fffffff;
    if (!ok) throw new DataError(`kernel ${kernel.name}: parameter ${name} = ${v} is not a valid ${type}`);
    if (type === 'f32') f[i] = v;
    else if (type === 'i32') s[i] = v;
    else u[i] = v;
  });
  return u;
}

/** What a call's buffers must hold: by the name errors give each, the buffer (null: not given) and its elements. */
export type BufferNeeds = Record<string, readonly [GPUBuffer | null | undefined, number]>;

/**
 * The kernel library's one check that buffers fit the sizes given (WebGPU clamps out-of-range accesses
 * silently, so a buffer too small gives wrong numbers, not an error): a ShapeError naming the op, the buffer,
 * what it holds and what the sizes need. Elements are 4 bytes (f32, i32, u32).
 */
export function checkBuffers(op: string, needs: BufferNeeds): void {
  for (const [name, [buffer, elements]] of Object.entries(needs)) {
    if (!buffer) continue;
    if (!Number.isSafeInteger(elements) || elements < 0) {
      throw new ShapeError(`${op}: the sizes given make buffer ${name} need ${elements} elements; sizes must be non-negative integers`);
    }
    if (buffer.size < elements * 4) {
      throw new ShapeError(
        `${op}: buffer ${name} ("${buffer.label}") holds ${Math.floor(buffer.size / 4)} elements of 4 bytes, but the sizes given need ${elements}; ` +
          'pass a larger buffer or smaller sizes',
      );
    }
  }
}
