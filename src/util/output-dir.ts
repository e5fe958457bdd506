// An output directory a command writes its files into (`--out`), with the guarantees the README's section
// "Output directories, interruption and resumption" states:
//   - it is checked and created before any work: a file in the way, a path under a file, a special file
//     system (/proc, /sys, /dev), no permission, a read-only or full disk each end in one OutputError naming
//     the path and the reason (and never a hang: Node's recursive mkdir spins forever under /proc);
//   - one command at a time: a lock file (.webgpu-nn.lock, holding pid, host and start time) is taken with an
//     atomic hard link; a lock whose process is gone is taken over;
//   - files are never replaced unless webgpu-nn wrote them: the manifest (.webgpu-nn-files.json) lists every
//     file written here, and an existing file of another name owner is refused;
//   - temporary files left by a write that was killed (writeFileAtomic's `<file>.tmp-<pid>-<hex>`) are
//     removed when the directory is opened.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  type Stats,
  statfsSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { OutputError } from '../errors.js';
import { tempFileTarget, writeFileAtomic } from './files.js';
import { isSystemError, systemReason } from './system-error.js';

const LOCK = '.webgpu-nn.lock';
const MANIFEST = '.webgpu-nn-files.json';

export interface OutputDirOptions {
  /** Where the path came from, named in errors: a flag such as '--out'. */
  flag: string;
  /** The command writing there (recorded in the lock, named to a second command that finds it taken). */
  command: string;
  /** The files the command writes there. */
  files: readonly string[];
  /**
   * Existing files among `files` that the caller has verified webgpu-nn wrote though the manifest does not list
   * them (a run directory from before manifests, recognised by its checkpoint's format): they may be replaced.
   */
  adopt?: readonly string[];
}

/** File systems that hold no output: proc, sysfs, cgroup, debugfs, securityfs, devpts, tracefs, bpf, pstore. */
const SPECIAL_FILE_SYSTEMS: Record<number, string> = {
  40864: 'proc',
  1650812274: 'sysfs',
  2613483: 'cgroup',
  1667723888: 'cgroup2',
  1684170528: 'debugfs',
  1935894131: 'securityfs',
  7377: 'devpts',
  1953653091: 'tracefs',
  3405662737: 'bpf',
  1634035564: 'pstore',
};

interface LockInfo {
  pid: number;
  host: string;
  /** When the holding process started (ms since the epoch), to tell a reused pid from the holder. */
  started: number;
  command: string;
}

const heldLocks = new Set<string>();
let exitHookInstalled = false;

export class OutputDir {
  /** Temporary files of killed writes that opening the directory removed. */
  readonly removedTemps: string[];
  private readonly manifest: Set<string>;
  private released = false;

  private constructor(
    /** The directory as the user gave it (messages show it so). */
    readonly path: string,
    private readonly options: OutputDirOptions,
    removedTemps: string[],
    manifest: Set<string>,
  ) {
    this.removedTemps = removedTemps;
    this.manifest = manifest;
  }

  /**
   * Checks `path`, creates it (and its parents) when missing, takes its lock, removes temporary files of killed
   * writes, and refuses (OutputError) when one of `files` exists there without webgpu-nn having written it.
   */
  static open(path: string, options: OutputDirOptions): OutputDir {
    const { flag } = options;
    if (typeof path !== 'string' || path === '') throw new OutputError(`${flag}: expected a directory, got an empty path`);
    makeDirectory(path, flag);
    return OutputDir.take(path, options);
  }

  /**
   * A new directory `<parent>/<name>` of its own: when that exists already (two runs started in the same
   * second), `<name>-2`, `<name>-3`, … The directory is created exclusively, so concurrent callers get
   * distinct ones.
   */
  static createUnique(parent: string, name: string, options: OutputDirOptions): OutputDir {
    makeDirectory(parent, options.flag);
    for (let k = 1; k <= 1000; k++) {
      const path = join(parent, k === 1 ? name : `${name}-${k}`);
      try {
        mkdirSync(path);
      } catch (e) {
        if (isSystemError(e) && e.code === 'EEXIST') continue;
        throw new OutputError(`cannot create the output directory ${path}: ${systemReason(e)}; choose one with ${options.flag}`);
      }
      return OutputDir.take(path, options);
    }
    throw new OutputError(`${parent} already holds ${name} and 999 more like it; choose a directory with ${options.flag}`);
  }

  private static take(path: string, options: OutputDirOptions): OutputDir {
    const { flag } = options;
    rejectSpecialFileSystem(path, path, flag);
    acquireLock(path, options);
    try {
      const manifest = readManifest(path);
      const removed: string[] = [];
      const ours = new Set([...options.files, ...manifest, MANIFEST, LOCK]);
      for (const name of readdirSync(path)) {
        const target = tempFileTarget(name);
        if (target !== null && ours.has(target)) {
          unlinkSync(join(path, name));
          removed.push(name);
        }
      }
      const adopted = new Set(options.adopt ?? []);
      for (const name of options.files) {
        const file = join(path, name);
        let st: Stats;
        try {
          st = lstatSync(file);
        } catch {
          continue;
        }
        if (!st.isFile()) {
          throw new OutputError(
            `${flag} ${path}: ${file} is ${kindOf(st)}, where webgpu-nn writes a file; move it away or choose another ${flag}`,
          );
        }
        if (!manifest.has(name) && !adopted.has(name)) {
          throw new OutputError(
            `${flag} ${path}: ${file} exists and webgpu-nn did not write it; it is never overwritten: move it away or choose another ${flag}`,
          );
        }
      }
      const dir = new OutputDir(path, options, removed, manifest);
      const newlyAdopted = [...adopted].filter((f) => !manifest.has(f) && existsSync(join(path, f)));
      if (newlyAdopted.length) dir.record(newlyAdopted);
      return dir;
    } catch (e) {
      releaseLock(path);
      if (e instanceof OutputError) throw e;
      throw new OutputError(`${flag} ${path}: ${systemReason(e)}`);
    }
  }

  /** `DIR/name`. */
  file(name: string): string {
    return join(this.path, name);
  }

  /** Whether `name` exists in the directory. */
  holds(name: string): boolean {
    return existsSync(this.file(name));
  }

  /** Writes `name` atomically, listing it in the manifest first (so a file of ours is never taken for someone else's). */
  write(name: string, data: string | Uint8Array): void {
    if (this.released) throw new OutputError(`${this.path}: written after the command released it (a bug)`);
    if (!this.options.files.includes(name))
      throw new OutputError(`${this.path}: ${name} is not one of the files ${this.options.command} writes (a bug)`);
    if (!this.manifest.has(name)) this.record([name]);
    writeFileAtomic(this.file(name), data);
  }

  /** Gives the directory up: removes the lock. Idempotent; also done when the process exits. */
  release(): void {
    if (this.released) return;
    this.released = true;
    releaseLock(this.path);
  }

  private record(names: string[]): void {
    for (const n of names) this.manifest.add(n);
    writeFileAtomic(this.file(MANIFEST), `${JSON.stringify({ writer: 'webgpu-nn', files: [...this.manifest].sort() }, null, 2)}\n`);
  }
}

/** "a file", "a character device", ... for messages. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFile()) return 'a file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  return 'not a directory';
}

/**
 * Creates `path` and its missing parents one level at a time (Node's `mkdirSync(p, { recursive: true })`
 * loops forever on some paths under /proc), stopping at the first component that is not a directory.
 */
function makeDirectory(path: string, flag: string): void {
  const absolute = resolve(path);
  const chain: string[] = [];
  for (let p = absolute; ; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  const fail = (at: string, e: unknown) =>
    new OutputError(`${flag} ${path}: cannot create ${at === absolute ? 'the directory' : at}: ${systemReason(e)}; choose another ${flag}`);
  // The deepest part that exists says which file system the directory would be made on: refuse a special one
  // before creating anything there (a part that is no directory is refused below).
  const deepest = [...chain].reverse().find((p) => existsSync(p)) ?? '/';
  if (statSync(deepest).isDirectory()) rejectSpecialFileSystem(deepest, path, flag);
  for (const p of chain) {
    let st: Stats | null = null;
    try {
      st = statSync(p);
    } catch (e) {
      if (!(isSystemError(e) && e.code === 'ENOENT')) throw fail(p, e);
    }
    if (!st) {
      try {
        mkdirSync(p);
        continue;
      } catch (e) {
        if (!(isSystemError(e) && e.code === 'EEXIST')) throw fail(p, e);
        st = statSync(p); // made by someone else meanwhile
      }
    }
    if (!st.isDirectory()) {
      throw new OutputError(
        `${flag} ${path}: ${p === absolute ? 'it' : p} is ${kindOf(st)}, not a directory; choose a directory for ${flag}`,
      );
    }
  }
}

/** Refuses (an OutputError about `path`) when `at` lies on a special file system. */
function rejectSpecialFileSystem(at: string, path: string, flag: string): void {
  let real = resolve(at);
  try {
    real = realpathSync(at);
  } catch {
    /* keep the resolved path */
  }
  let type: string | undefined;
  try {
    type = SPECIAL_FILE_SYSTEMS[statfsSync(real).type];
  } catch {
    /* statfs unsupported here: the path check below still applies */
  }
  if (!type && (real === '/dev' || (real.startsWith('/dev/') && !real.startsWith('/dev/shm')))) type = 'devtmpfs (/dev)';
  if (type) {
    throw new OutputError(`${flag} ${path}: it is on a special file system (${type}) that holds no output; choose a directory on a disk`);
  }
}

function readManifest(dir: string): Set<string> {
  const file = join(dir, MANIFEST);
  if (!existsSync(file)) return new Set();
  try {
    const files = (JSON.parse(readFileSync(file, 'utf8')) as { files?: unknown }).files;
    return new Set(Array.isArray(files) ? files.filter((f): f is string => typeof f === 'string') : []);
  } catch {
    return new Set(); // unreadable: nothing counts as ours, the safe side
  }
}

// ---- the lock ----------------------------------------------------------------------------------------------

/** When process `pid` started, in ms since the epoch, from /proc (Linux); null elsewhere. */
function processStart(pid: number | 'self'): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]);
    // USER_HZ is 100 on every Linux platform Node runs on; both sides use the same formula anyway.
    return Number.isFinite(ticks) && Number.isFinite(btime) ? btime * 1000 + ticks * 10 : null;
  } catch {
    return null;
  }
}

/** Whether the process holding a lock still runs (a pid reused by another process does not count). */
function holderAlive(holder: LockInfo): boolean {
  if (holder.host !== hostname()) return true; // another machine's process: cannot tell, assume it runs
  try {
    process.kill(holder.pid, 0);
  } catch (e) {
    if (isSystemError(e) && e.code === 'ESRCH') return false;
  }
  const started = processStart(holder.pid);
  return started === null || !Number.isFinite(holder.started) || Math.abs(started - holder.started) < 5000;
}

function acquireLock(dir: string, { flag, command }: OutputDirOptions): void {
  const lock = join(dir, LOCK);
  const info: LockInfo = { pid: process.pid, host: hostname(), started: processStart('self') ?? Date.now(), command };
  const text = `${JSON.stringify(info)}\n`;
  const cannot = (e: unknown) => new OutputError(`${flag} ${dir}: cannot write in it: ${systemReason(e)}; choose another ${flag}`);
  for (let attempt = 0; attempt < 5; attempt++) {
    // Written in full under a temporary name, then linked into place: link fails if a lock exists, so the
    // lock appears atomically with its contents (a killed writer never leaves an empty lock).
    const tmp = `${lock}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    try {
      writeNew(tmp, text);
    } catch (e) {
      throw cannot(e);
    }
    let taken = false;
    try {
      linkSync(tmp, lock);
      taken = true;
    } catch (e) {
      if (!(isSystemError(e) && e.code === 'EEXIST')) {
        // No hard links on this file system: an exclusive create is the next best thing.
        if (!(isSystemError(e) && ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV'].includes(e.code))) {
          tryUnlink(tmp);
          throw cannot(e);
        }
        try {
          writeNew(lock, text);
          taken = true;
        } catch (e2) {
          if (!(isSystemError(e2) && e2.code === 'EEXIST')) {
            tryUnlink(tmp);
            throw cannot(e2);
          }
        }
      }
    }
    tryUnlink(tmp);
    if (taken) {
      heldLocks.add(resolve(dir));
      if (!exitHookInstalled) {
        exitHookInstalled = true;
        process.on('exit', () => {
          for (const d of heldLocks) releaseLock(d);
        });
      }
      return;
    }
    let holder: LockInfo | null = null;
    try {
      holder = JSON.parse(readFileSync(lock, 'utf8')) as LockInfo;
    } catch {
      /* gone meanwhile, or not ours: stale */
    }
    if (holder && typeof holder.pid === 'number' && holderAlive(holder)) {
      const where = holder.host === hostname() ? '' : ` on ${holder.host}`;
      throw new OutputError(
        `${flag} ${dir} is in use by another webgpu-nn ${holder.command} (pid ${holder.pid}${where}, started ${new Date(holder.started).toISOString()}); ` +
          `wait for it to finish${flag === '--resume' ? '' : ` or choose another ${flag}`}${where ? ` (if it is not running, remove ${lock})` : ''}`,
      );
    }
    tryUnlink(lock); // the holder is gone: take the lock over
  }
  throw new OutputError(`${flag} ${dir}: could not take its lock ${lock}: other processes keep taking it; try again`);
}

function writeNew(path: string, text: string): void {
  const fd = openSync(path, 'wx');
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

function tryUnlink(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    /* already gone */
  }
}

/** Removes `dir`'s lock if this process holds it. */
function releaseLock(dir: string): void {
  const key = resolve(dir);
  if (!heldLocks.delete(key)) return;
  const lock = join(dir, LOCK);
  try {
    if ((JSON.parse(readFileSync(lock, 'utf8')) as LockInfo).pid === process.pid) unlinkSync(lock);
  } catch {
    /* gone, or taken over: not ours to remove */
  }
}
