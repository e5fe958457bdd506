// `webgpu-nn tune` end to end, as a user runs it: it fills the adapter's tuning cache (under XDG_CACHE_HOME)
// and prints what it chose against the heuristics; a second run has nothing left to tune; --out writes a
// file that WEBGPU_NN_TUNE_CACHE loads for `train`; WEBGPU_NN_TUNE=0 refuses. Needs the build (`npm test`
// makes it). Tuning compiles every candidate tile: with Mesa's shader cache cold that takes minutes.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CACHE_FORMAT } from '../../src/tune/cache.js';

const CLI = join(import.meta.dirname, '..', '..', 'dist', 'src', 'cli.js');
const COLD = { timeout: 1_200_000 };

function run(args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let out = '',
      err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('webgpu-nn tune', () => {
  const home = mkdtempSync(join(tmpdir(), 'webgpu-nn-tune-cli-'));
  const env = { WEBGPU_NN_TUNE: '1', XDG_CACHE_HOME: home };
  const shipped = join(home, 'app-tuning.json');

  it('fills the tuning cache, says what it chose and by how much, and writes a file to ship', COLD, async () => {
    expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\` (npm test does)`).toBe(true);
    const r = await run(['tune', '--limit', '300', '--batch-size', '32', '--out', shipped], env);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^tuning cache: .*webgpu-nn\/tuning-.*\.json \(0 entries\)$/m);
    // chosen, its ms, the heuristics' choice, its ms, the gain, and the FMA loop's median over the call's rounds
    expect(r.out).toMatch(/^conv2d\.pool-relu .* v\d.* \d+\.\d{3} +v\d.* \d+\.\d{3} +\d+\.\d\dx +\d+%( \([23] tries\))?$/m);
    expect(r.out).toMatch(/^sum over these calls: [\d.]+ ms with the heuristics, [\d.]+ ms tuned/m);
    // calls too small to tune (the evaluation batches' here) say so instead of a gain, and the table says what that means
    expect(r.out).toMatch(/^batch_norm_eval .* \d+\.\d{3} +small$/m);
    expect(r.out).toMatch(/^small: under 2% of the run's time, so not tuned/m);
    const files = readdirSync(join(home, 'webgpu-nn'));
    expect(files).toHaveLength(1);
    const cache = JSON.parse(readFileSync(join(home, 'webgpu-nn', files[0]), 'utf8'));
    expect(cache.format).toBe(CACHE_FORMAT);
    expect(Object.keys(cache.entries).some((k) => k.startsWith('conv2d.pool-relu.backward-weight '))).toBe(true);
    expect(JSON.parse(readFileSync(shipped, 'utf8')).entries).toEqual(cache.entries);

    const again = await run(['tune', '--limit', '300', '--batch-size', '32'], env);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/everything this run needs is tuned already/);
  });

  it('train loads a shipped file and tunes nothing more; WEBGPU_NN_TUNE=0 refuses to tune', COLD, async () => {
    const fresh = {
      WEBGPU_NN_TUNE: '1',
      XDG_CACHE_HOME: mkdtempSync(join(tmpdir(), 'webgpu-nn-tune-cli-')),
      WEBGPU_NN_TUNE_CACHE: shipped,
    };
    const r = await run(['train', '--limit', '300', '--batch-size', '32', '--epochs', '1', '--out', join(home, 'run')], fresh);
    expect(r.code, r.err).toBe(0);
    expect(r.out).not.toMatch(/tuning \d+ kernel calls/);
    const off = await run(['tune'], { WEBGPU_NN_TUNE: '0' });
    expect(off.code).toBe(2);
    expect(off.err).toMatch(/WEBGPU_NN_TUNE=0 turns tuning off; unset it to tune/);
  });
});
