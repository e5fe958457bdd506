// The tuning cache: the tuner's choices in one JSON file per adapter, in the user's cache directory
// ($XDG_CACHE_HOME/webgpu-nn, else ~/.cache/webgpu-nn), named after the adapter and a hash of its identity:
//
//   { "format": "webgpu-nn tuning cache", "version": 1, "engine": "<hash of the kernel registry>",
//     "adapter": { vendor, architecture, description, kind, features, host? },
//     "entries": { "<op> <sizes>": { variant, config?, ms, heuristic: { variant, config?, ms }, candidates } } }
//
// An adapter's identity is what the driver reports, plus, for software adapters, the host CPU (llvmpipe
// reports the same description on every CPU, and the best tiles differ between CPUs). One adapter never
// uses another's entries: a file whose identity differs ("foreign"), that another version of the kernels
// wrote ("stale"), or that does not parse ("corrupt") is ignored with a warning and replaced by the next
// tuning. A cache file shipped with an application is loaded with WEBGPU_NN_TUNE_CACHE=<file> (or
// TuningFile.load): its entries serve where the user's own cache has none, and it is never written.
//
//   WEBGPU_NN_TUNE=0   no tuning and no cache: the registries' heuristics alone (as before tuning existed)
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { cpus, homedir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AdapterDescription } from '../gpu/device.js';
import type { Gpu } from '../gpu/runtime.js';
import { OPS } from '../shaders/registry.js';
import { writeFileAtomic } from '../util/files.js';
import { type TunedEntry, Tuner, type TuningStore } from './tuner.js';

export const CACHE_FORMAT = 'webgpu-nn tuning cache';
export const CACHE_VERSION = 1;

/** What identifies an adapter for the cache. */
export interface AdapterIdentity {
  vendor: string;
  architecture: string;
  description: string;
  kind: 'software' | 'gpu';
  features: string[];
  /** Software adapters only: the CPU they run on. */
  host?: { cpu: string; cores: number };
}

export function adapterIdentity(a: AdapterDescription): AdapterIdentity {
  const id: AdapterIdentity = {
    vendor: a.vendor,
    architecture: a.architecture,
    description: a.description,
    kind: a.kind,
    features: [...a.features].sort(),
  };
  if (a.kind === 'software') id.host = { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length };
  return id;
}

/** A hash of every op's variants and their summaries: a cache written against other kernels is stale. */
export function engineFingerprint(): string {
  const registry = OPS.map((op) => [op.name, op.names.map((n) => [n, op.variant(n).summary])]);
  return createHash('sha256')
    .update(JSON.stringify([CACHE_VERSION, registry]))
    .digest('hex')
    .slice(0, 16);
}

/** The user's cache directory for webgpu-nn. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'webgpu-nn');
}

/** The cache file of an adapter in `dir`. */
export function cacheFileFor(identity: AdapterIdentity, dir = cacheDir()): string {
  const slug = `${identity.vendor}-${identity.description}`
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);
  const hash = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 10);
  return join(dir, `tuning-${slug}-${hash}.json`);
}

interface CacheFile {
  format: string;
  version: number;
  engine: string;
  adapter: AdapterIdentity;
  entries: Record<string, TunedEntry>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Why `e` is not a well-formed entry, or null. */
function badEntry(e: unknown): string | null {
  if (!isObject(e)) return 'not an object';
  if (typeof e.variant !== 'string') return 'no variant';
  if (e.config !== undefined && (!isObject(e.config) || !Object.values(e.config).every((v) => typeof v === 'number')))
    return 'config is not an object of numbers';
  if (typeof e.ms !== 'number') return 'no time';
  return null;
}

/** Reads a cache file: its entries, or why it cannot be used ('corrupt', 'stale' or 'foreign' and a reason). */
export function readCacheFile(
  path: string,
  identity: AdapterIdentity,
  engine: string,
): { entries: Map<string, TunedEntry> } | { problem: 'corrupt' | 'stale' | 'foreign'; why: string } {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    return { problem: 'corrupt', why: (e as Error).message };
  }
  if (!isObject(data) || data.format !== CACHE_FORMAT) return { problem: 'corrupt', why: `not a "${CACHE_FORMAT}" file` };
  if (data.version !== CACHE_VERSION || data.engine !== engine) {
    return { problem: 'stale', why: `written for other kernels (version ${data.version}, engine ${data.engine}; this is ${engine})` };
  }
  if (!isObject(data.adapter) || !isObject(data.entries)) return { problem: 'corrupt', why: 'no adapter or entries' };
  if (JSON.stringify(data.adapter) !== JSON.stringify(identity)) {
    return { problem: 'foreign', why: `tuned on another adapter (${JSON.stringify(data.adapter)})` };
  }
  const entries = new Map<string, TunedEntry>();
  for (const [k, e] of Object.entries(data.entries)) {
    const bad = badEntry(e);
    if (bad) return { problem: 'corrupt', why: `entry "${k}": ${bad}` };
    entries.set(k, e as TunedEntry);
  }
  return { entries };
}

/** The per-adapter cache file as the tuner's store (plus read-only entries from shipped files). */
export class TuningFile implements TuningStore {
  private readonly shipped = new Map<string, TunedEntry>();
  private dirty = false;

  private constructor(
    readonly path: string,
    readonly identity: AdapterIdentity,
    readonly engine: string,
    private readonly entries: Map<string, TunedEntry>,
    private readonly warn: (line: string) => void,
  ) {}

  /** Opens `path` (default: this adapter's file in the user's cache directory); an unusable file starts empty, with a warning. */
  static open(identity: AdapterIdentity, opts: { path?: string; warn?: (line: string) => void } = {}): TuningFile {
    const path = opts.path ?? cacheFileFor(identity);
    const warn = opts.warn ?? ((l: string) => console.warn(l));
    const engine = engineFingerprint();
    let entries = new Map<string, TunedEntry>();
    if (existsSync(path)) {
      const r = readCacheFile(path, identity, engine);
      if ('problem' in r) warn(`webgpu-nn: ignoring the ${r.problem} tuning cache ${path} (${r.why}); kernels will be re-tuned`);
      else entries = r.entries;
    }
    return new TuningFile(path, identity, engine, entries, warn);
  }

  /** Adds the entries of a shipped cache file (read-only, used where this cache has none); false, with a warning, if unusable. */
  load(path: string): boolean {
    if (!existsSync(path)) {
      this.warn(`webgpu-nn: the tuning cache ${path} does not exist; ignoring it`);
      return false;
    }
    const r = readCacheFile(path, this.identity, this.engine);
    if ('problem' in r) {
      this.warn(`webgpu-nn: ignoring the ${r.problem} tuning cache ${path} (${r.why})`);
      return false;
    }
    for (const [k, e] of r.entries) this.shipped.set(k, e);
    return true;
  }

  get size(): number {
    return new Set([...this.entries.keys(), ...this.shipped.keys()]).size;
  }

  get(key: string): TunedEntry | undefined {
    return this.entries.get(key) ?? this.shipped.get(key);
  }

  set(key: string, entry: TunedEntry): void {
    this.entries.set(key, entry);
    this.dirty = true;
  }

  /** Every entry, own and shipped (own first where both have one), sorted by key. */
  all(): [string, TunedEntry][] {
    const out = new Map(this.shipped);
    for (const [k, e] of this.entries) out.set(k, e);
    return [...out].sort(([a], [b]) => (a < b ? -1 : 1));
  }

  /** Writes the file (atomically) when something was tuned since it was read. */
  save(): void {
    if (!this.dirty) return;
    this.writeTo(this.path, this.entries);
    this.dirty = false;
  }

  /** Writes every entry, own and shipped, to another file (to ship with an application). */
  export(path: string): void {
    this.writeTo(path, new Map(this.all()));
  }

  private writeTo(path: string, entries: Map<string, TunedEntry>): void {
    const file: CacheFile = {
      format: CACHE_FORMAT,
      version: CACHE_VERSION,
      engine: this.engine,
      adapter: this.identity,
      entries: Object.fromEntries([...entries].sort(([a], [b]) => (a < b ? -1 : 1))),
    };
    mkdirSync(dirname(path), { recursive: true });
    writeFileAtomic(path, `${JSON.stringify(file, null, 1)}\n`);
  }
}

/** Whether tuning is on: WEBGPU_NN_TUNE=0 turns it off (the heuristics alone). */
export const tuningEnabled = (env: NodeJS.ProcessEnv = process.env): boolean => env.WEBGPU_NN_TUNE !== '0';

/**
 * Attaches the tuner with this adapter's cache file to `gpu` (and WEBGPU_NN_TUNE_CACHE's shipped file), unless
 * WEBGPU_NN_TUNE=0. Returns the tuner, or null when tuning is off.
 */
export function attachTuning(gpu: Gpu, opts: { path?: string; warn?: (line: string) => void } = {}): Tuner | null {
  if (!tuningEnabled()) {
    gpu.tuning = null;
    return null;
  }
  const file = TuningFile.open(adapterIdentity(gpu.adapter), opts);
  const shipped = process.env.WEBGPU_NN_TUNE_CACHE;
  if (shipped) file.load(shipped);
  const tuner = new Tuner(gpu, file, opts.warn);
  gpu.tuning = tuner;
  return tuner;
}

/** The tuner attached to `gpu`, if any. */
export const tunerOf = (gpu: Gpu): Tuner | null => (gpu.tuning instanceof Tuner ? gpu.tuning : null);
