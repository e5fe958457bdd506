// Dawn's polls back off during long waits (src/gpu/dawn-polling.ts): which callbacks count as Dawn's poll, when a
// poll runs at once and when it waits, the WEBGPU_NN_POLL_MS setting, and that Dawn's own polls are recognised
// (the assumption the rest rests on: if a new Dawn polled differently, this test would say so).
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { gentleSetImmediate, isDawnPoll, pollInterval } from '../../src/gpu/dawn-polling.js';
import { fill } from '../../src/shaders/elementwise.js';
import { download, empty, useGpu } from '../helpers/gpu.js';

const ctx = useGpu();
// A native function without name or parameters, as Dawn's napi poll is.
const nativePoll = Function.prototype as unknown as () => void;

describe('Dawn polling', () => {
  it('isDawnPoll: an anonymous native function without parameters, nothing else', () => {
    expect(isDawnPoll(nativePoll)).toBe(true);
    expect(isDawnPoll(() => {})).toBe(false);
    expect(isDawnPoll(function named() {})).toBe(false);
    expect(isDawnPoll((() => {}).bind(null))).toBe(false); // "bound "
    expect(isDawnPoll(Math.random)).toBe(false); // native, but named
    let resolve: unknown;
    new Promise((r) => {
      resolve = r;
    });
    expect(isDawnPoll(resolve)).toBe(false); // native and anonymous, but one parameter
    expect(isDawnPoll(undefined)).toBe(false);
  });

  it('polls at once for the first half millisecond of a wait, then every interval; a pause starts a new wait', () => {
    let clock = 0;
    const calls: string[] = [];
    const schedule = gentleSetImmediate(
      () => calls.push('now'),
      (_fn, ms) => calls.push(`after ${ms} ms`),
      2,
      () => clock,
    );
    const at = (t: number, fn: () => void = nativePoll) => {
      clock = t;
      schedule(fn);
    };
    at(100);
    at(100.2);
    at(100.49);
    at(100.5); // half a millisecond into the wait
    at(102.5);
    at(104.5);
    at(104.6, () => {}); // other callbacks always run at once
    at(120); // 15.5 ms after the last poll: a new wait
    at(120.1);
    expect(calls).toEqual(['now', 'now', 'now', 'after 2 ms', 'after 2 ms', 'after 2 ms', 'now', 'now', 'now']);
  });

  it("WEBGPU_NN_POLL_MS: 1 ms unless set, 0 keeps Dawn's polling, anything else is a UsageError naming it", () => {
    expect(pollInterval(undefined)).toBe(1);
    expect(pollInterval('')).toBe(1);
    expect(pollInterval('0')).toBe(0);
    expect(pollInterval('2.5')).toBe(2.5);
    for (const bad of ['fast', '-1', '1000', 'NaN']) {
      expect(() => pollInterval(bad)).toThrow(UsageError);
      expect(() => pollInterval(bad)).toThrow(/WEBGPU_NN_POLL_MS is "[^"]*"; expected milliseconds/);
    }
  });

  it("Dawn's own polls are recognised while a readback waits, and the readback completes", async () => {
    const { gpu } = ctx;
    const installed = globalThis.setImmediate;
    const seen: boolean[] = [];
    // Dawn looks the global up at every poll: a recorder in front of the installed one sees each callback.
    globalThis.setImmediate = ((fn: (...a: unknown[]) => void, ...args: unknown[]) => {
      seen.push(isDawnPoll(fn));
      return installed(fn, ...args);
    }) as typeof setImmediate;
    try {
      const y = empty(gpu, 1 << 16);
      fill(gpu, y, { n: 1 << 16, value: 3 });
      const got = await download(gpu, y, 1 << 16);
      expect(got.every((v) => v === 3)).toBe(true);
      gpu.pool.release(y);
    } finally {
      globalThis.setImmediate = installed;
    }
    expect(seen.filter(Boolean).length).toBeGreaterThan(0);
  });
});
