// The GPU runtime every kernel runs through: one device, a buffer pool, a pipeline cache keyed by the WGSL
// text, and a recorder that puts many dispatches into one compute pass and one submit.
//
// Why batching matters: on llvmpipe a dispatch recorded into a shared pass costs several times less than one
// the CPU waits for. So `dispatch` only records; work is submitted by `flush()`
// (or when the uniform arena fills), and the CPU waits only in `read()` and `sync()`.
//
// Runtime sizes travel in a uniform block per dispatch. All of a submit's uniform blocks live in one
// "arena" buffer, written with a single writeBuffer just before the submit.
//
// Kernels that check their input on the device record faults in the fault word (fault.ts); every read() and
// sync() copies it back in the same submit and throws the DataError it describes.
import { DataError, DeviceLostError, GpuError, ShaderCompileError, StateError } from '../errors.js';
import type { TuningHook } from '../shaders/op.js';
import { BufferPool } from './buffer-pool.js';
import { type AdapterDescription, type DeviceOptions, describeAdapter, openDevice } from './device.js';
import { FAULT_BYTES, type FaultDescription } from './fault.js';
import { type ProfiledDispatch, Profiler } from './profiler.js';
import { checkAdapterComputes } from './self-test.js';

/** What a binding after the uniform block is: a storage buffer read or read and written, or a uniform array. */
export type BindingKind = 'read' | 'read_write' | 'uniform';

/**
 * A compute kernel: its WGSL text is its identity (the pipeline cache key), its name labels GPU objects.
 * Binding 0 is the uniform block; `bindings` gives the kind of bindings 1, 2, … (kernels made by
 * `declareKernel` always have it); without it the layout is inferred from the WGSL ('auto').
 */
export interface Kernel {
  name: string;
  wgsl: string;
  entryPoint?: string;
  bindings?: readonly BindingKind[];
}

/** A buffer bound whole, or a range of one (a uniform window of a tensor: kernel.ts). */
export type Binding = GPUBuffer | { buffer: GPUBuffer; offset: number; size: number };

/** The buffer a binding is of. */
export const bufferOf = (b: Binding): GPUBuffer => ('offset' in b ? b.buffer : b);

/** One recorded dispatch. Binding 0 is the uniform block `params`; `buffers` are bindings 1, 2, ... */
export interface Dispatch {
  kernel: Kernel;
  params: ArrayBufferView;
  buffers: Binding[];
  workgroups: [number, number?, number?];
}

const ARENA_BYTES = 256 * 1024;

/** The pipeline cache's key: a kernel's entry point and WGSL text (its identity). */
const pipelineKey = (k: Kernel) => `${k.entryPoint ?? 'main'}\n${k.wgsl}`;
const MAP_READ = 0x0001;
const COPY_DST = 0x0008;
const UNIFORM = 0x0040;
const COPY_SRC = 0x0004;
const QUERY_RESOLVE = 0x0200;
const STORAGE = 0x0080;
const COMPUTE_STAGE = 0x4;

/** The counters in Gpu.ticketBuffer. */
export const TICKET_WORDS = 4096;

interface Compiled {
  pipeline: GPUComputePipeline;
  /** Binding numbers declared var<storage, read_write>: their buffer may not be bound twice. */
  writable: Set<number>;
  layout: GPUBindGroupLayout;
  bindGroups: Map<string, GPUBindGroup>;
  generation: number;
}

interface Recording {
  encoder: GPUCommandEncoder;
  pass: GPUComputePassEncoder | null;
}

export class Gpu {
  readonly pool: BufferPool;
  /** The fault word kernels record input faults in (fault.ts); bound by the kernels that check their input. */
  readonly faultBuffer: GPUBuffer;
  /**
   * TICKET_WORDS counters, zero between dispatches: the kernels whose workgroups take tickets (atomicAdd), to take
   * work (takeCells, wgsl.ts) or so that the last one to finish does a final step (backward-weight-patch.ts), set
   * theirs back to zero before the dispatch ends.
   */
  readonly ticketBuffer: GPUBuffer;
  /** Dispatches recorded since the runtime was made, submits made, and readbacks waited for; for logs, benchmarks and tests. */
  readonly counters = { dispatches: 0, submits: 0, pipelines: 0, reads: 0 };
  /** Measured kernel choices (src/tune/), consulted by every op that is not forced; null: the heuristics alone. */
  tuning: TuningHook | null = null;

  private readonly pipelines = new Map<string, Compiled>();
  private readonly byKernel = new WeakMap<Kernel, Compiled>();
  private readonly bufferIds = new WeakMap<GPUBuffer, number>();
  private nextBufferId = 0;
  private readonly arena: GPUBuffer;
  private readonly arenaCpu = new Uint8Array(ARENA_BYTES);
  private readonly slot: number;
  private arenaUsed = 0;
  private rec: Recording | null = null;
  private compileChecks: Promise<void>[] = [];
  private error: Error | null = null;
  private uncaptured: Error | null = null;
  private destroyed = false;
  private timing = false;
  private readonly faultSites = new Map<string, number>();
  private readonly faultDescriptions: FaultDescription[] = [];
  private profiler: Profiler | null = null;
  private capturing: Dispatch[] | null = null;

  private constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterDescription,
    private readonly ownsDevice: boolean,
  ) {
    this.pool = new BufferPool(device);
    this.slot = Math.max(256, device.limits.minUniformBufferOffsetAlignment);
    this.arena = device.createBuffer({ size: ARENA_BYTES, usage: UNIFORM | COPY_DST, label: 'webgpu-nn uniform arena' });
    // Zeroed at creation, as WebGPU zeroes every new buffer: no fault.
    this.faultBuffer = device.createBuffer({ size: FAULT_BYTES, usage: STORAGE | COPY_SRC | COPY_DST, label: 'webgpu-nn fault word' });
    this.ticketBuffer = device.createBuffer({ size: 4 * TICKET_WORDS, usage: STORAGE, label: 'webgpu-nn ticket counters' });
    device.lost.then((info) => {
      if (!this.destroyed) this.error ??= new DeviceLostError(`GPU device lost (${info.reason}): ${info.message}`);
    });
    // Reported at the next read()/sync(), after pending compile checks, so that a shader's compile error
    // is what the user sees rather than the invalid-pipeline errors it causes.
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      this.uncaptured ??= new GpuError(`WebGPU error: ${ev.error.message}`);
    };
  }

  /**
   * Opens the adapter chosen by options or WEBGPU_NN_* environment variables (see device.ts), and refuses
   * one that does not compute (Dawn's null backend, a broken driver) with a NoAdapterError: a small kernel
   * must give its CPU result first.
   */
  static async create(options: DeviceOptions = {}): Promise<Gpu> {
    const { device, adapter } = await openDevice(options);
    const gpu = new Gpu(device, adapter, true);
    try {
      await checkAdapterComputes(gpu);
    } catch (e) {
      gpu.destroy();
      throw e;
    }
    return gpu;
  }

  /** Wraps a device another program opened, so it can run our kernels on its own buffers. */
  static fromDevice(device: GPUDevice, adapterInfo?: GPUAdapterInfo): Gpu {
    return new Gpu(device, describeAdapter(adapterInfo, undefined, device), false);
  }

  get isSoftware(): boolean {
    return this.adapter.kind === 'software';
  }

  /**
   * The number a kernel passes to `raiseFault` for faults of `op` (fault.ts); `describe` words them. One
   * number per op name, handed out once.
   */
  faultSite(op: string, describe: FaultDescription): number {
    let site = this.faultSites.get(op);
    if (site === undefined) {
      this.faultDescriptions.push(describe);
      site = this.faultDescriptions.length;
      this.faultSites.set(op, site);
    }
    return site;
  }

  /** The compute pipeline for a kernel, compiled once per distinct WGSL text. */
  pipeline(kernel: Kernel): GPUComputePipeline {
    return this.compiled(kernel).pipeline;
  }

  private compiled(kernel: Kernel): Compiled {
    // Memoized kernels are the same object every time: a WeakMap hit avoids hashing the WGSL text.
    let c = this.byKernel.get(kernel);
    if (c) return c;
    const key = pipelineKey(kernel);
    c = this.pipelines.get(key);
    if (!c) {
      this.device.pushErrorScope('validation');
      const { module, descriptor } = this.pipelineDescriptor(kernel);
      const pipeline = this.device.createComputePipeline(descriptor);
      // A compile error outranks the errors it causes later (invalid pipeline, invalid command buffer),
      // so read()/sync() await these checks before reporting anything.
      const check = this.device.popErrorScope().then(async (err) => {
        if (err) await this.compileFailed(kernel, module, err.message);
      });
      this.compileChecks.push(check);
      c = this.addPipeline(key, kernel, pipeline);
    }
    this.byKernel.set(kernel, c);
    return c;
  }

  private pipelineDescriptor(kernel: Kernel): { module: GPUShaderModule; descriptor: GPUComputePipelineDescriptor } {
    const module = this.device.createShaderModule({ code: kernel.wgsl, label: kernel.name });
    const layout = kernel.bindings ? this.explicitLayout(kernel.name, kernel.bindings) : 'auto';
    return { module, descriptor: { layout, compute: { module, entryPoint: kernel.entryPoint ?? 'main' }, label: kernel.name } };
  }

  private async compileFailed(kernel: Kernel, module: GPUShaderModule, message: string): Promise<void> {
    const info = await module.getCompilationInfo();
    const lines = info.messages.map((m) => `  line ${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
    this.error ??= new ShaderCompileError(`kernel ${kernel.name} failed to compile:\n${lines.join('\n') || message}`);
  }

  private addPipeline(key: string, kernel: Kernel, pipeline: GPUComputePipeline): Compiled {
    const writable = kernel.bindings
      ? new Set(kernel.bindings.flatMap((access, i) => (access === 'read_write' ? [i + 1] : [])))
      : new Set([...kernel.wgsl.matchAll(/@binding\((\d+)\)\s*var<storage,\s*read_write>/g)].map((m) => Number(m[1])));
    const c = { pipeline, writable, layout: pipeline.getBindGroupLayout(0), bindGroups: new Map(), generation: this.pool.generation };
    this.pipelines.set(key, c);
    this.counters.pipelines++;
    return c;
  }

  /** Whether this kernel's pipeline exists already (created, not necessarily compiled by the driver yet). */
  hasPipeline(kernel: Kernel): boolean {
    return this.byKernel.has(kernel) || this.pipelines.has(pipelineKey(kernel));
  }

  /**
   * Creates the pipelines of these kernels that do not exist yet, all at once with createComputePipelineAsync, so
   * that drivers which compile at pipeline creation do it in parallel and before the first step. (llvmpipe
   * compiles at a pipeline's first dispatch instead: see precompile.ts.)
   */
  async createPipelines(kernels: readonly Kernel[]): Promise<void> {
    this.throwIfFailed();
    const todo = new Map<string, Kernel>();
    for (const k of kernels) if (!this.pipelines.has(pipelineKey(k))) todo.set(pipelineKey(k), k);
    await Promise.all(
      [...todo].map(async ([key, kernel]) => {
        const { module, descriptor } = this.pipelineDescriptor(kernel);
        try {
          const pipeline = await this.device.createComputePipelineAsync(descriptor);
          if (!this.pipelines.has(key)) this.addPipeline(key, kernel, pipeline);
        } catch (e) {
          await this.compileFailed(kernel, module, (e as Error).message);
        }
      }),
    );
    this.throwIfFailed();
  }

  /**
   * Runs `record` without recording anything: dispatches are captured (with a copy of their uniforms) instead
   * of compiled and recorded, and copies and writes are skipped. For learning which kernels a step uses.
   */
  dryRun(record: () => void): Dispatch[] {
    this.flush();
    const captured: Dispatch[] = [];
    this.capturing = captured;
    try {
      record();
    } finally {
      this.capturing = null;
    }
    return captured;
  }

  /** Binding 0 the uniform block, then one binding per declared buffer. */
  private explicitLayout(label: string, bindings: readonly BindingKind[]): GPUPipelineLayout {
    const types = { read: 'read-only-storage', read_write: 'storage', uniform: 'uniform' } as const;
    const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: COMPUTE_STAGE, buffer: { type: 'uniform' } }];
    for (const [i, kind] of bindings.entries()) entries.push({ binding: i + 1, visibility: COMPUTE_STAGE, buffer: { type: types[kind] } });
    const group = this.device.createBindGroupLayout({ label, entries });
    return this.device.createPipelineLayout({ label, bindGroupLayouts: [group] });
  }

  /**
   * The bind group for a dispatch. A training step binds the same pooled buffers at the same arena offsets
   * every step, so groups are cached per pipeline; only for pool buffers, which are destroyed only by
   * pool.trim() (that bumps the pool's generation and so empties the caches).
   */
  private bindGroup(c: Compiled, label: string, offset: number, size: number, buffers: Binding[]): GPUBindGroup {
    let key: string | null = null;
    if (buffers.every((b) => this.pool.owns(bufferOf(b)) || b === this.faultBuffer || b === this.ticketBuffer)) {
      if (c.generation !== this.pool.generation || c.bindGroups.size > 4096) {
        c.bindGroups.clear();
        c.generation = this.pool.generation;
      }
      key = `${offset}:${size}`;
      for (const b of buffers) key += 'offset' in b ? `,${this.bufferId(b.buffer)}@${b.offset}+${b.size}` : `,${this.bufferId(b)}`;
      const hit = c.bindGroups.get(key);
      if (hit) return hit;
    }
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.arena, offset, size } }];
    for (const [i, b] of buffers.entries()) entries.push({ binding: i + 1, resource: 'offset' in b ? { ...b } : { buffer: b } });
    const group = this.device.createBindGroup({ layout: c.layout, entries, label });
    if (key) c.bindGroups.set(key, group);
    return group;
  }

  private bufferId(b: GPUBuffer): number {
    let id = this.bufferIds.get(b);
    if (id === undefined) {
      id = ++this.nextBufferId;
      this.bufferIds.set(b, id);
    }
    return id;
  }

  /** Records one dispatch into the current compute pass. Nothing runs until flush/read/sync. */
  dispatch(d: Dispatch): void {
    this.throwIfFailed();
    if (this.capturing) {
      this.capturing.push({
        ...d,
        params: new Uint8Array(d.params.buffer.slice(d.params.byteOffset, d.params.byteOffset + d.params.byteLength)),
      });
      return;
    }
    const bytes = d.params.byteLength;
    if (bytes > this.slot) throw new GpuError(`kernel ${d.kernel.name}: uniform block of ${bytes} bytes exceeds ${this.slot}`);
    if (this.arenaUsed + this.slot > ARENA_BYTES || this.profiler?.full) {
      // A flush would end timeGpu's timestamped pass early and silently give a wrong time.
      if (this.timing)
        throw new GpuError(`timeGpu: more than ${ARENA_BYTES / this.slot} dispatches in one timed block; time fewer at once`);
      this.flush();
    }
    const offset = this.arenaUsed;
    this.arenaCpu.set(new Uint8Array(d.params.buffer, d.params.byteOffset, bytes), offset);
    this.arenaUsed += this.slot;

    const c = this.compiled(d.kernel);
    const bound = d.buffers.map(bufferOf);
    for (const w of c.writable) {
      const b = bound[w - 1];
      if (b && bound.indexOf(b) !== bound.lastIndexOf(b)) {
        throw new GpuError(
          `kernel ${d.kernel.name}: buffer "${b.label}" is bound twice, once writable; WebGPU forbids that aliasing. Use a separate output buffer.`,
        );
      }
    }
    const bindGroup = this.bindGroup(c, d.kernel.name, offset, Math.ceil(bytes / 16) * 16, d.buffers);

    const pass = this.profiler ? this.profiler.pass(this.encoder(), `${d.kernel.name} ${d.workgroups.join('x')}`) : this.computePass();
    if (this.profiler) this.rec!.pass = pass;
    pass.setPipeline(c.pipeline);
    pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = d.workgroups;
    if (x > 0 && y > 0 && z > 0) pass.dispatchWorkgroups(x, y, z);
    this.counters.dispatches++;
  }

  /** Records a buffer-to-buffer copy in queue order with the dispatches around it. */
  copy(src: GPUBuffer, srcOffset: number, dst: GPUBuffer, dstOffset: number, bytes: number): void {
    this.throwIfFailed();
    if (this.capturing) return;
    this.encoder().copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  }

  /** Writes CPU data into a buffer, after all work recorded so far (writeBuffer would otherwise jump ahead of it). */
  write(buffer: GPUBuffer, data: ArrayBufferView, bufferOffset = 0): void {
    this.throwIfFailed();
    if (this.capturing) return;
    if (this.rec) this.flush();
    this.device.queue.writeBuffer(buffer, bufferOffset, data.buffer, data.byteOffset, data.byteLength);
  }

  /** Submits everything recorded so far, without waiting for it. */
  flush(): void {
    if (!this.rec) return;
    const { encoder, pass } = this.rec;
    pass?.end();
    this.rec = null;
    this.profiler?.resolve(encoder);
    if (this.arenaUsed > 0) this.device.queue.writeBuffer(this.arena, 0, this.arenaCpu.buffer, 0, this.arenaUsed);
    this.arenaUsed = 0;
    this.device.queue.submit([encoder.finish()]);
    this.counters.submits++;
  }

  /**
   * Copies `bytes` bytes of a buffer back to the CPU, after all recorded work. Throws the GPU errors and the
   * device-side input faults (a DataError) that work raised.
   */
  async read(buffer: GPUBuffer, bytes = buffer.size, offset = 0): Promise<ArrayBuffer> {
    this.throwIfFailed();
    const size = Math.ceil(bytes / 4) * 4;
    const mapped = await this.readWithFaultWord(`readback of ${buffer.label}`, size, (staging) =>
      this.encoder().copyBufferToBuffer(buffer, offset, staging, 0, size),
    );
    return mapped.slice(0, bytes);
  }

  /** Waits until the GPU has finished all recorded work; throws any GPU error or device-side fault it raised. */
  async sync(): Promise<void> {
    this.throwIfFailed();
    await this.readWithFaultWord('fault word', 0, () => {});
  }

  /**
   * Records `copy` into a staging buffer of `size` bytes followed by the fault word, submits, waits, and
   * returns the copied bytes; throws GPU errors first, then a recorded fault (clearing the word).
   */
  private async readWithFaultWord(label: string, size: number, copy: (staging: GPUBuffer) => void): Promise<ArrayBuffer> {
    const staging = this.device.createBuffer({ size: size + FAULT_BYTES, usage: MAP_READ | COPY_DST, label });
    this.counters.reads++;
    copy(staging);
    this.encoder().copyBufferToBuffer(this.faultBuffer, 0, staging, size, FAULT_BYTES);
    this.flush();
    try {
      await staging.mapAsync(MAP_READ);
    } catch (e) {
      staging.destroy();
      await this.settleCompileChecks();
      this.throwIfFailed();
      throw new GpuError(`${label} failed: ${(e as Error).message}`);
    }
    const all = staging.getMappedRange(0, size + FAULT_BYTES).slice(0);
    staging.unmap();
    staging.destroy();
    await this.settleCompileChecks();
    this.throwIfFailed();
    const [site, a, b, c] = new Uint32Array(all, size, 4);
    if (site !== 0) {
      this.device.queue.writeBuffer(this.faultBuffer, 0, new Uint32Array(4));
      const describe = this.faultDescriptions[site - 1];
      throw describe
        ? new DataError(describe(a, b, c))
        : new GpuError(
            `the GPU recorded fault ${site} (${a}, ${b}, ${c}), which no op registered; is the fault word bound by a kernel of yours?`,
          );
    }
    return all.slice(0, size);
  }

  private async settleCompileChecks(): Promise<void> {
    const checks = this.compileChecks;
    this.compileChecks = [];
    await Promise.all(checks);
    this.error ??= this.uncaptured;
  }

  /**
   * Runs `record` (which must only dispatch) inside one compute pass with GPU timestamps at its start and
   * end, and returns the GPU time in milliseconds; null where the adapter has no timestamp queries.
   */
  async timeGpu(record: () => void): Promise<number | null> {
    if (!this.device.features.has('timestamp-query')) {
      record();
      await this.sync();
      return null;
    }
    this.flush();
    const querySet = this.device.createQuerySet({ type: 'timestamp', count: 2, label: 'webgpu-nn timer' });
    const encoder = this.device.createCommandEncoder({ label: 'webgpu-nn timed' });
    const pass = encoder.beginComputePass({
      label: 'webgpu-nn timed',
      timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 },
    });
    this.rec = { encoder, pass };
    this.timing = true;
    try {
      record();
    } finally {
      this.timing = false;
    }
    const resolved = this.device.createBuffer({ size: 16, usage: QUERY_RESOLVE | COPY_SRC, label: 'webgpu-nn timestamps' });
    this.encoder().resolveQuerySet(querySet, 0, 2, resolved, 0);
    const [t0, t1] = new BigUint64Array(await this.read(resolved, 16));
    resolved.destroy();
    querySet.destroy();
    return Number(t1 - t0) / 1e6;
  }

  /**
   * From now on every dispatch gets a compute pass of its own with GPU timestamps (see profiler.ts), until
   * stopProfiling() returns them. Needs the adapter's timestamp queries.
   */
  startProfiling(): void {
    if (!this.device.features.has('timestamp-query')) throw new GpuError('profiling needs timestamp queries, which this adapter lacks');
    this.flush();
    this.profiler ??= new Profiler(this.device);
  }

  /** Every dispatch recorded since startProfiling(), with its GPU time, once the GPU has run them. */
  async stopProfiling(): Promise<ProfiledDispatch[]> {
    const p = this.profiler;
    if (!p) return [];
    this.flush();
    this.profiler = null;
    const out = await p.collect();
    await this.sync();
    return out;
  }

  /** Releases the pool and, if this runtime opened the device, the device itself (lets Node exit). */
  destroy(): void {
    if (this.destroyed) return;
    this.flush();
    this.destroyed = true;
    this.pool.trim();
    this.arena.destroy();
    this.faultBuffer.destroy();
    this.ticketBuffer.destroy();
    if (this.ownsDevice) this.device.destroy();
  }

  private throwIfFailed(): void {
    if (this.destroyed) throw new StateError('this Gpu runtime was destroyed');
    if (this.error) throw this.error;
  }

  private encoder(): GPUCommandEncoder {
    if (!this.rec) this.rec = { encoder: this.device.createCommandEncoder({ label: 'webgpu-nn' }), pass: null };
    if (this.rec.pass) {
      this.rec.pass.end();
      this.rec.pass = null;
    }
    return this.rec.encoder;
  }

  private computePass(): GPUComputePassEncoder {
    if (!this.rec?.pass) {
      const encoder = this.encoder();
      this.rec!.pass = encoder.beginComputePass({ label: 'webgpu-nn' });
    }
    return this.rec!.pass!;
  }
}
