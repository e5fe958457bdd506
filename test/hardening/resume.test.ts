// Interruption and resumption, end to end: a run interrupted (Ctrl-C, SIGTERM, or SIGKILL at random points,
// many times) and resumed computes bit for bit what an uninterrupted run computes, and every interruption
// leaves a directory that is valid and resumes. Kept lean for CI: 320 images, 3 epochs of 4 steps.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readResumeState } from '../../src/train/checkpoint.js';
import type { EpochRecord } from '../../src/train/history.js';
import { mulberry32 } from '../../src/util/random.js';
import { readSafetensors } from '../../src/util/safetensors-file.js';
import { COLD_START_TIMEOUT, expectExit, hasStackTrace, runCli } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'webgpu-nn-resume-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const SETTINGS = ['--limit', '320', '--epochs', '3', '--seed', '7'];
const reference = join(root, 'reference');

const history = (dir: string): EpochRecord[] => JSON.parse(readFileSync(join(dir, 'history.json'), 'utf8'));

/** The run in `dir` ended exactly as the reference: the same losses and accuracies, the same weights, bit for bit. */
function expectSameRun(dir: string): void {
  const got = history(dir).map(({ epoch, trainLoss, valLoss, valAcc }) => ({ epoch, trainLoss, valLoss, valAcc }));
  const want = history(reference).map(({ epoch, trainLoss, valLoss, valAcc }) => ({ epoch, trainLoss, valLoss, valAcc }));
  expect(got).toEqual(want);
  for (const file of ['best.safetensors', 'last.safetensors']) {
    const a = readSafetensors(join(dir, file)).tensors;
    const b = readSafetensors(join(reference, file)).tensors;
    expect(Object.keys(a).sort(), file).toEqual(Object.keys(b).sort());
    for (const key of Object.keys(b))
      expect(Buffer.from(a[key].data.buffer).equals(Buffer.from(b[key].data.buffer)), `${file} ${key}`).toBe(true);
  }
  // Nothing left behind: no lock, no temporary file.
  expect(readdirSync(dir).filter((f) => f.includes('.tmp-') || f.endsWith('.lock'))).toEqual([]);
}

beforeAll(async () => {
  expectExit(await runCli(['train', ...SETTINGS, '--out', reference]), 0);
}, COLD_START_TIMEOUT);

describe('an interrupted and resumed run equals an uninterrupted one, bit for bit', () => {
  it(
    'Ctrl-C after epoch 1: it says what it kept, and --resume ends where the uninterrupted run did',
    async () => {
      const dir = join(root, 'sigint');
      const first = await runCli(['train', ...SETTINGS, '--out', dir], { interruptOn: { line: /^epoch +1 /, signal: 'SIGINT' } });
      expectExit(first, 130);
      const done = history(dir).length;
      expect(existsSync(join(dir, 'loss.png'))).toBe(true); // written on this way out too
      expect(first.out).toMatch(
        new RegExp(`interrupted in epoch ${done + 1}: .* holds the run as epoch ${done} left it .*; continue with --resume`),
      );
      if (done < 3) {
        const second = await runCli(['train', '--resume', dir]);
        expectExit(second, 0);
        expect(second.out).toMatch(new RegExp(`resuming after epoch ${done}`));
      }
      expectSameRun(dir);
    },
    COLD_START_TIMEOUT,
  );

  it(
    'SIGTERM in epoch 1, before anything could be saved: exit 143, no claim of saved checkpoints, and --resume starts over',
    async () => {
      const dir = join(root, 'sigterm');
      const first = await runCli(['train', ...SETTINGS, '--out', dir], { interruptOn: { line: /^output: /, signal: 'SIGTERM' } });
      expectExit(first, 143);
      if (!existsSync(join(dir, 'history.json'))) {
        expect(first.out).toMatch(
          /interrupted in epoch 1, before any epoch finished: nothing was saved but .*config\.json; --resume .* starts the run again/,
        );
        expect(first.out).not.toMatch(/best\.safetensors/);
      }
      expectExit(await runCli(['train', '--resume', dir]), 0);
      expectSameRun(dir);
    },
    COLD_START_TIMEOUT,
  );

  it(
    'SIGKILL at random points, 8 times: each leaves a valid directory that resumes, and the run still ends bit for bit as the uninterrupted one',
    async () => {
      const dir = join(root, 'killed');
      const rng = mulberry32(2024);
      // A run takes about 1–2 s here (most of it start-up); kill points spread over 0–1.6 s land before the
      // directory exists, during start-up, mid-epoch and mid-write.
      for (let kill = 0; kill < 8; kill++) {
        const started = existsSync(join(dir, 'config.json')) || existsSync(join(dir, 'last.safetensors'));
        const args = started ? ['train', '--resume', dir] : ['train', ...SETTINGS, '--out', dir];
        const r = await runCli(args, { killAfterMs: Math.round(50 + rng() * 1550) });
        expect(hasStackTrace(r.err), r.err).toBe(false);
        // Valid: the state a resume reads parses, and agrees with history.json.
        if (existsSync(join(dir, 'config.json')) || existsSync(join(dir, 'last.safetensors'))) {
          const { state } = readResumeState(dir);
          if (state && existsSync(join(dir, 'history.json'))) {
            expect(history(dir).length).toBeGreaterThanOrEqual(state.history.length - 1);
            expect(history(dir).slice(0, state.history.length - 1)).toEqual(state.history.slice(0, -1));
          }
        }
      }
      const started = existsSync(join(dir, 'config.json')) || existsSync(join(dir, 'last.safetensors'));
      const last = await runCli(started ? ['train', '--resume', dir] : ['train', ...SETTINGS, '--out', dir]);
      expectExit(last, 0);
      expectSameRun(dir);
    },
    COLD_START_TIMEOUT,
  );
});
