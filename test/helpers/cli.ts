// Running the `webgpu-nn` command as a user does, in a child process (needs the build: `npm test` makes it).
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';

export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');

/** How a child is started: a command to run it under (its argv before node's), and spawn options. */
export interface ChildRun {
  prefix: string[];
  spawn: SpawnOptions;
}

/**
 * How to start a child that must meet a directory it may not write in (EACCES). As root every directory is
 * writable, so the child then runs without the capabilities that override file permissions (`setpriv`, from
 * util-linux), still as root, so it reads the repository wherever it lies. Without setpriv it runs as nobody
 * (uid 65534) instead, which must reach `paths`: where nobody could not (a clone under a mode-0700 directory, as
 * `mktemp -d` makes), this throws naming the directory, where the child would die on a module it cannot read.
 */
export function withoutPermissionOverride(...paths: string[]): ChildRun {
  if (process.getuid?.() !== 0) return { prefix: [], spawn: {} };
  if (spawnSync('setpriv', ['--version']).status === 0)
    return { prefix: ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--'], spawn: {} };
  for (const path of paths) {
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      const mode = statSync(dir).mode & 0o777;
      if ((mode & 0o001) === 0)
        throw new Error(
          `this case runs as nobody because the suite runs as root without setpriv (util-linux), and nobody cannot enter ${dir} (mode ${mode.toString(8)}), which holds ${path}: install util-linux, or run the suite from a directory others may enter (chmod o+x ${dir})`,
        );
      if (dir === dirname(dir)) break;
    }
  }
  return { prefix: [], spawn: { uid: 65534, gid: 65534 } };
}

// Each command is a new process that compiles its kernels; with Mesa's shader cache cold (a fresh machine)
// llvmpipe takes 1–5 s per kernel, so tests that run commands get generous limits. They assert no times.
export const COLD_START_TIMEOUT = 600_000;

export interface CliResult {
  code: number | null;
  /** The signal that ended the process, when one did. */
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

export interface CliOptions {
  /** Called with every line of stdout as it arrives. */
  onLine?: (line: string, child: ChildProcess) => void;
  /** Sends `signal` once, at the first line of stdout that matches `line` (Ctrl-C is SIGINT). */
  interruptOn?: { line: RegExp; signal: NodeJS.Signals };
  /** Extra environment variables. */
  env?: Record<string, string>;
  cwd?: string;
  /** Run it through `bash -c` with this prefix (e.g. 'ulimit -f 64;'). */
  shellPrefix?: string;
  /** Other spawn options (uid, gid). */
  spawn?: SpawnOptions;
  /** A command to run it under: its argv before node's (e.g. withoutPermissionOverride's). */
  prefix?: string[];
  /** Kill it (SIGKILL) after this many ms: a hang fails the test instead of stalling it. */
  killAfterMs?: number;
}

/** Runs `webgpu-nn args...` and resolves with its exit status and output. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const quoted = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const [file, argv] = opts.shellPrefix
      ? ['bash', ['-c', `${opts.shellPrefix} exec ${quoted}`]]
      : opts.prefix?.length
        ? [opts.prefix[0], [...opts.prefix.slice(1), process.execPath, CLI, ...args]]
        : [process.execPath, [CLI, ...args]];
    const child = spawn(file, argv, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...opts.env },
      cwd: opts.cwd,
      ...opts.spawn,
    });
    let out = '',
      err = '',
      partial = '';
    const timer = opts.killAfterMs ? setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs) : null;
    let interrupted = false;
    child.stdout!.on('data', (d: Buffer) => {
      out += d;
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        opts.onLine?.(line, child);
        if (opts.interruptOn && !interrupted && opts.interruptOn.line.test(line)) {
          interrupted = true;
          child.kill(opts.interruptOn.signal);
        }
      }
    });
    child.stderr!.on('data', (d: Buffer) => (err += d));
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, out, err: withoutDawnNoise(err) });
    });
  });
}

/** stderr without Dawn's harmless warnings (see GPU-NOTES): what a user would take for our messages. */
export function withoutDawnNoise(err: string): string {
  return err
    .split('\n')
    .filter((l) => !/^Warning: maxDynamic\w+ artificially reduced/.test(l) && !/XDG_RUNTIME_DIR/.test(l))
    .join('\n');
}

/** True when the text holds a JavaScript stack trace. */
export const hasStackTrace = (text: string): boolean => /^\s+at .+(\(|:\d+:\d+)/m.test(text);

/** Exit status `code`, and no stack trace on stderr (a stack is for bugs of ours only). */
export function expectExit(r: CliResult, code: number): void {
  expect(r.code, `${r.out}\n${r.err}`).toBe(code);
  expect(hasStackTrace(r.err), r.err).toBe(false);
}

/** Exit status `code`, and the message on stderr: one line (besides Dawn's warnings), no stack trace. */
export function expectOneLine(r: CliResult, code: number, message: RegExp): void {
  expectExit(r, code);
  const lines = r.err.split('\n').filter((l) => l.trim() !== '');
  expect(lines, r.err).toHaveLength(1);
  expect(lines[0]).toMatch(/^webgpu-nn: /);
  expect(lines[0]).toMatch(message);
}
