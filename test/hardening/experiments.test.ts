// The lesson's experiment commands (normalization, init-histograms, bn-gradients, bn-benefits, lesson) keep the
// guarantees of every command that writes (README, "Output directories, interruption and resumption"): a bad
// --out, a file of the user's where a result goes, or a directory another command holds fails at once, before
// the GPU is opened, in one line; their flags are checked as train's are. Nearly every case here fails before
// any GPU work, so the file runs in seconds; the re-runs into a command's own output do a little real work.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputDir } from '../../src/util/output-dir.js';
import {
  type ChildRun,
  CLI,
  type CliResult,
  COLD_START_TIMEOUT,
  expectExit,
  expectOneLine,
  runCli,
  withoutPermissionOverride,
} from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'webgpu-nn-experiments-'));
chmodSync(root, 0o755); // nobody's process (the permission case, as root without setpriv) must reach into it
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Each experiment command, with the file it always writes into --out (a user's file of that name stops it). */
const COMMANDS = [
  ['normalization', 'normalization.json'],
  ['init-histograms', 'init-histograms.png'],
  ['bn-gradients', 'bn-gradients.svg'],
  ['bn-benefits', 'bn-benefits.json'],
  ['lesson', 'index.html'],
] as const;

/** Exit status `code`, one line on stderr matching `message`, and the GPU never opened. */
function expectRefused(r: CliResult, code: number, message: RegExp): void {
  expectOneLine(r, code, message);
  expect(r.out).not.toMatch(/^adapter: /m);
}

/** A fresh directory under the test's own root. */
let n = 0;
const fresh = (name: string) => join(root, `${name}-${++n}`);

describe('output locations of the experiment commands', () => {
  it(
    'a file, a path under a file, a device, /proc, a directory that cannot be written: one line each, before the GPU opens',
    async () => {
      const file = join(root, 'a-file');
      writeFileSync(file, 'mine');
      const locked = join(root, 'locked');
      mkdirSync(locked);
      chmodSync(locked, 0o555); // as root, that case runs without the permission override (withoutPermissionOverride)
      for (const [command] of COMMANDS) {
        const cases: [string, RegExp, ChildRun?][] = [
          [file, /--out .*a-file: it is a file, not a directory/],
          [join(file, command), /a-file is a file, not a directory/],
          ['/dev/null', /--out \/dev\/null: it is a character device, not a directory/],
          [`/proc/self/webgpu-nn-${command}`, /special file system \(proc\)/], // Node's recursive mkdir spins forever here
          [
            join(locked, command),
            /locked\/[\w-]+: cannot create the directory: permission denied \(EACCES\)/,
            withoutPermissionOverride(CLI, join(locked, command)),
          ],
        ];
        for (const [out, message, child] of cases) {
          const r = await runCli([command, '--out', out], { killAfterMs: 60_000, spawn: child?.spawn, prefix: child?.prefix });
          expectRefused(r, 1, message);
        }
      }
      expect(readFileSync(file, 'utf8')).toBe('mine');
      expect(readdirSync(locked)).toEqual([]);
    },
    COLD_START_TIMEOUT,
  );

  it(
    "a file of the user's where a result goes is never overwritten; a directory another command holds is refused",
    async () => {
      for (const [command, result] of COMMANDS) {
        const dir = fresh(command);
        mkdirSync(dir);
        writeFileSync(join(dir, result), 'my own');
        expectRefused(
          await runCli([command, '--out', dir]),
          1,
          new RegExp(`${result.replace('.', '\\.')} exists and webgpu-nn did not write it; it is never overwritten`),
        );
        expect(readFileSync(join(dir, result), 'utf8')).toBe('my own');
        expect(existsSync(join(dir, '.webgpu-nn.lock')), 'the lock is released').toBe(false);

        const busy = fresh(command);
        const held = OutputDir.open(busy, { flag: '--out', command: 'test', files: [] });
        try {
          expectRefused(
            await runCli([command, '--out', busy]),
            1,
            new RegExp(`--out .*${command}-\\d+ is in use by another webgpu-nn test \\(pid ${process.pid}, `),
          );
        } finally {
          held.release();
        }
      }
    },
    COLD_START_TIMEOUT,
  );

  it(
    "lesson checks each experiment's sub-directory too, and leaves none of the directories locked when one is refused",
    async () => {
      const cases: [string, (dir: string) => void, RegExp][] = [
        [
          'a file where a sub-directory goes',
          (d) => writeFileSync(join(d, 'bn-benefits'), 'mine'),
          /bn-benefits: it is a file, not a directory/,
        ],
        [
          "a user's file in a sub-directory",
          (d) => {
            mkdirSync(join(d, 'normalization'));
            writeFileSync(join(d, 'normalization', 'normalization.png'), 'mine');
          },
          /normalization\/normalization\.png exists and webgpu-nn did not write it/,
        ],
        [
          "a user's history.json in train/",
          (d) => {
            mkdirSync(join(d, 'train'));
            writeFileSync(join(d, 'train', 'history.json'), 'mine');
          },
          /train\/history\.json exists and webgpu-nn did not write it/,
        ],
      ];
      for (const [what, prepare, message] of cases) {
        const dir = fresh('lesson');
        mkdirSync(dir);
        prepare(dir);
        const r = await runCli(['lesson', '--quick', '--out', dir]);
        expectRefused(r, 1, message);
        const locks = readdirSync(dir, { recursive: true })
          .map(String)
          .filter((f) => f.endsWith('.webgpu-nn.lock'));
        expect(locks, what).toEqual([]);
      }
    },
    COLD_START_TIMEOUT,
  );
});

describe('flags of the experiment commands', () => {
  it(
    'stray arguments, unknown flags and seeds beyond 2^32 − 1 are refused; --help works; the largest seed is taken',
    async () => {
      for (const [command] of COMMANDS) {
        const cases: [string[], RegExp][] = [
          [['runs/x'], new RegExp(`webgpu-nn ${command}: unexpected argument "runs/x"`)],
          [['--out', fresh(command), 'extra'], /unexpected argument "extra"/],
          [['--bogus'], new RegExp(`webgpu-nn ${command}: unknown flag --bogus`)],
          [['--seed', '4294967296'], /--seed: expected an integer >= 0 and <= 4294967295, got "4294967296"/],
          [['--seed', '-1'], /--seed: expected an integer >= 0 and <= 4294967295, got "-1"/],
          [['--seed'], /--seed: expected an integer >= 0 and <= 4294967295, but no value was given/],
          [['--out', ''], /--out: expected a value, got ""/],
        ];
        for (const [args, message] of cases) expectRefused(await runCli([command, ...args]), 2, message);
        const ok = await runCli([command, '--help']);
        expect(ok.code, ok.err).toBe(0);
        expect(ok.out).toMatch(new RegExp(`^Usage: webgpu-nn ${command} \\[flags\\]`));
        expect(ok.out).toMatch(/--seed <int>\s+.*<= 4294967295\)/);
        // The largest seed passes the flags and the output checks: the command gets as far as the adapter
        // (Dawn's null backend, which is then refused) and has made its directory.
        const out = fresh(command);
        const r = await runCli([command, '--seed', '4294967295', '--out', out], { env: { WEBGPU_NN_BACKEND: 'null' } });
        expectExit(r, 1);
        expect(r.err).toMatch(/does not compute/);
        expect(statSync(out).isDirectory()).toBe(true);
      }
    },
    COLD_START_TIMEOUT,
  );
});

describe('re-running an experiment into its own output directory', () => {
  it(
    'replaces the files it wrote there, and only those',
    async () => {
      const out = fresh('init-histograms');
      const first = await runCli(['init-histograms', '--batch', '2', '--layers', '2', '--out', out]);
      expect(first.code, first.err).toBe(0);
      const manifest = JSON.parse(readFileSync(join(out, '.webgpu-nn-files.json'), 'utf8')).files;
      expect(manifest).toEqual(['init-histograms.json', 'init-histograms.png', 'init-histograms.svg', 'init-std.png', 'init-std.svg']);
      writeFileSync(join(out, 'notes.txt'), 'mine');
      const before = readFileSync(join(out, 'init-histograms.json'), 'utf8');
      const again = await runCli(['init-histograms', '--batch', '2', '--layers', '2', '--seed', '7', '--out', out]);
      expect(again.code, again.err).toBe(0);
      expect(readFileSync(join(out, 'init-histograms.json'), 'utf8')).not.toBe(before); // another seed: replaced
      expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('mine');
      expect(readdirSync(out).filter((f) => f.includes('.tmp-') || f.endsWith('.lock'))).toEqual([]);
    },
    COLD_START_TIMEOUT,
  );
});
