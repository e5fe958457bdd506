// The variant registry. Every kernel op (matmul, conv2d's backward-weight, …) is one `Op`: its variants by
// name in order (the first is the simplest correct one, the fallback), what each requires of the adapter and
// of the sizes, how each records its dispatches, the op's cost, and the order variants are preferred in
// when nothing forces one. Selection, the tests and the benchmarks all read the same registry, so a variant
// that exists is tested and benchmarked, and an unknown or impossible variant is an error naming both the op
// and the variant, never a silent fallback to another kernel.
import { VariantError } from '../errors.js';
import { REQUIREMENTS, type Requirement } from '../gpu/capabilities.js';
import { adapterSummary } from '../gpu/device.js';
import { type BufferNeeds, checkBuffers } from '../gpu/kernel.js';
import type { Gpu } from '../gpu/runtime.js';

/** Work a kernel launch does: floating-point operations and bytes moved to and from memory (ideal, no cache). */
export interface Cost {
  flops: number;
  bytes: number;
}

/**
 * A variant's compile-time configuration (a register tile, a workgroup size): an object of numbers by name,
 * as the variant's own tile type (the tuning cache checks that a loaded one holds numbers only).
 */
export type TuneConfig = object;

/** What a variant runs with: its name, and the configuration a tuner chose (none: the variant's own default). */
export interface Choice<N extends string = string> {
  variant: N;
  config?: TuneConfig;
}

/**
 * Measured choices, consulted by every op that is not forced (src/tune/tuner.ts implements it): the tuned
 * choice for these sizes, if any; and, while a planning pass collects what a step runs, each call it meets.
 */
export interface TuningHook {
  choice(op: AnyOpLike, sizes: object): Choice | undefined;
  observe?(op: AnyOpLike, sizes: object, buffers: unknown): void;
}
/** What a tuning hook needs of an op (kept structural so this file and the tuner do not import each other's types). */
export interface AnyOpLike {
  readonly name: string;
}

/** One way to compute an op. `S` are the op's sizes, `B` its buffers. */
export interface Variant<S, B> {
  /** One line: how it works and what it is for ("register tiles, no barriers: software adapters"). */
  summary: string;
  /** Adapter capabilities it needs. */
  requires?: readonly Requirement[];
  /** Why it cannot compute these sizes (e.g. "stride 1 only"), or null when it can. */
  rejects?: (sizes: S) => string | null;
  /**
   * The configurations a tuner may time for these sizes, the variant's default first (absent: the variant
   * has one). Every one must compute the same result; the tests run them all against the references.
   */
  configs?: (gpu: Gpu, sizes: S) => readonly TuneConfig[];
  /** Records its dispatches, with `config` (one of `configs`) or else its default. */
  run: (gpu: Gpu, buffers: B, sizes: S, config?: TuneConfig) => void;
}

export interface OpSpec<S, B, N extends string> {
  /** `family` or `family.op`, as errors, tests and benchmarks name it. */
  name: string;
  /** In order: the first is the fallback every adapter and size can run. */
  variants: { readonly [K in N]: Variant<S, B> };
  /** Preference on this adapter when nothing forces a variant; the first that can run is chosen. */
  prefer: (gpu: Gpu, sizes: S) => readonly N[];
  cost: (sizes: S) => Cost;
  /** The elements each buffer must hold for these sizes: run() refuses smaller buffers (checkBuffers). */
  needs: (sizes: S, buffers: B) => BufferNeeds;
  /** Buffers (by name) that hold bit patterns, not floats, such as packed window codes: a tuner compares them bit for bit. */
  exact?: readonly string[];
}

/** Sizes may force a variant by name (tests, benchmarks); otherwise the op chooses. */
export interface Forced<N extends string> {
  variant?: N;
}

export class Op<S, B, N extends string> {
  readonly name: string;
  readonly names: readonly N[];
  readonly cost: (sizes: S) => Cost;

  constructor(private readonly spec: OpSpec<S, B, N>) {
    this.name = spec.name;
    this.names = Object.keys(spec.variants) as N[];
    this.cost = spec.cost;
  }

  variant(name: N): Variant<S, B> {
    return this.spec.variants[this.known(name)];
  }

  /** Why `name` cannot run `sizes` on this adapter (a missing capability, unsupported sizes), or null. */
  unavailable(gpu: Gpu, name: N, sizes: S): string | null {
    const v = this.variant(name);
    const missing = (v.requires ?? []).find((r) => !REQUIREMENTS[r].met(gpu));
    if (missing) return `needs ${REQUIREMENTS[missing].description}, which this adapter (${adapterSummary(gpu.adapter)}) lacks`;
    return v.rejects?.(sizes) ?? null;
  }

  /** Every variant that can run `sizes` here, in registry order: what tests compare and a tuner times. */
  candidates(gpu: Gpu, sizes: S): N[] {
    return this.names.filter((n) => this.unavailable(gpu, n, sizes) === null);
  }

  /** Every (variant, configuration) a tuner may time for `sizes` here, in registry order. */
  choices(gpu: Gpu, sizes: S): Choice<N>[] {
    return this.candidates(gpu, sizes).flatMap((variant) => {
      const configs = this.spec.variants[variant].configs?.(gpu, sizes);
      return configs?.length ? configs.map((config) => ({ variant, config })) : [{ variant }];
    });
  }

  /** The variant `run` uses: the forced one (an error if it cannot run), else the tuned one, else the first preferred that can. */
  resolve(gpu: Gpu, sizes: S, forced?: string): N {
    return this.choose(gpu, sizes, forced).variant;
  }

  /** resolve() with the tuned configuration, if any. */
  choose(gpu: Gpu, sizes: S, forced?: string): Choice<N> {
    if (forced !== undefined) {
      const name = this.known(forced);
      const why = this.unavailable(gpu, name, sizes);
      if (why) throw new VariantError(`${this.name} variant ${name} cannot run here: it ${why}`);
      return { variant: name };
    }
    // A tuned choice the registry no longer has or cannot run here is ignored (the tuner warns when it loads).
    const tuned = gpu.tuning?.choice(this, sizes as object);
    if (tuned && (this.names as readonly string[]).includes(tuned.variant) && !this.unavailable(gpu, tuned.variant as N, sizes)) {
      return tuned as Choice<N>;
    }
    return { variant: this.preferred(gpu, sizes) };
  }

  /** The variant the registry's heuristics prefer for `sizes` on this adapter, tuning aside. */
  preferred(gpu: Gpu, sizes: S): N {
    for (const name of [...this.spec.prefer(gpu, sizes), ...this.names]) {
      if (this.unavailable(gpu, name, sizes) === null) return name;
    }
    throw new VariantError(
      `${this.name}: no variant can run these sizes (${this.names.map((n) => `${n}: ${this.unavailable(gpu, n, sizes)}`).join('; ')})`,
    );
  }

  /** Records the op with the variant `sizes.variant` forces, or the one choose() picks, once its buffers fit the sizes. */
  run(gpu: Gpu, buffers: B, sizes: S & Forced<N>): void {
    gpu.tuning?.observe?.(this, sizes, buffers);
    const { variant, config } = this.choose(gpu, sizes, sizes.variant);
    checkBuffers(this.name, this.spec.needs(sizes, buffers));
    this.spec.variants[variant].run(gpu, buffers, sizes, config);
  }

  /** The buffers of a call that hold bit patterns rather than floats (the spec's `exact`). */
  exactBuffers(buffers: B): GPUBuffer[] {
    const named = buffers as Record<string, unknown>;
    return (this.spec.exact ?? []).map((k) => named[k]).filter((b): b is GPUBuffer => typeof b === 'object' && b !== null);
  }

  /** Records the op with an explicit choice (a tuner timing its candidates). */
  runChoice(gpu: Gpu, buffers: B, sizes: S, choice: Choice<N>): void {
    const why = this.unavailable(gpu, this.known(choice.variant), sizes);
    if (why) throw new VariantError(`${this.name} variant ${choice.variant} cannot run here: it ${why}`);
    checkBuffers(this.name, this.spec.needs(sizes, buffers));
    this.spec.variants[choice.variant].run(gpu, buffers, sizes, choice.config);
  }

  private known(name: string): N {
    if (!(this.names as readonly string[]).includes(name)) {
      throw new VariantError(`${this.name} has no variant "${name}"; its variants are ${this.names.join(', ')}`);
    }
    return name as N;
  }
}

export const defineOp = <S, B, const N extends string>(spec: OpSpec<S, B, N>): Op<S, B, N> => new Op(spec);
