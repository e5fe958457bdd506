// How often Dawn's node bindings poll for finished GPU work (Node only: platform-node.ts installs it).
//
// Dawn's node bindings (npm `webgpu`) resolve their promises (mapAsync, onSubmittedWorkDone,
// createComputePipelineAsync, ...) by polling: while one is pending, each poll queues the next through the global
// setImmediate (src/dawn/node/binding/AsyncRunner.cpp, "We probably want to reduce the frequency at which this
// gets called", crbug.com/dawn/1127). The event loop then turns as fast as it can and the main thread stays at
// 100% of a core for as long as the GPU works. On a software adapter the GPU's work runs on the same CPU cores:
// on 2 vCPUs llvmpipe's two worker threads shared them with that spinning thread, and the training loop, which
// records an epoch's steps and then waits for its loss, trained at 4,500–4,950 samples/s against 6,500–6,980 when
// it slept through most of the wait before reading (llvmpipe, AMD EPYC, 2026-11-30; perf showed the main thread
// busy for 3.3 of the 4.5 s of 6 epochs).
//
// So the global setImmediate is wrapped. A callback that is a native function without name or parameters (Dawn's
// poll; every other callback passes straight through: isDawnPoll) runs at once during the first
// FAST_MS of a wait, so short waits (a readback of finished work) keep their latency, and after that through
// setTimeout every `WEBGPU_NN_POLL_MS` milliseconds (default 1): a wait then costs ~1,000 polls of a few µs a
// second instead of a core, and ends at most that much later than the GPU. `WEBGPU_NN_POLL_MS=0` keeps Dawn's own
// polling. A wait is a run of polls less than NEW_WAIT_MS apart.
import { promisify } from 'node:util';
import { UsageError } from '../errors.js';

const FAST_MS = 0.5;
const NEW_WAIT_MS = 5;

let installed = false;

/** The poll interval from WEBGPU_NN_POLL_MS (milliseconds, 0 to 100; 0 = Dawn's own polling). */
export function pollInterval(env: string | undefined = process.env.WEBGPU_NN_POLL_MS): number {
  if (env === undefined || env === '') return 1;
  const ms = Number(env);
  if (!Number.isFinite(ms) || ms < 0 || ms > 100) {
    throw new UsageError(`WEBGPU_NN_POLL_MS is "${env}"; expected milliseconds from 0 (Dawn's own polling) to 100, or leave it unset (1)`);
  }
  return ms;
}

/**
 * True for a callback that looks like Dawn's poll: a native function without a name or parameters. JavaScript
 * functions, bound functions (named "bound …") and a promise's resolve (one parameter: `new Promise((r) =>
 * setImmediate(r))`) are not.
 */
export function isDawnPoll(fn: unknown): boolean {
  return (
    typeof fn === 'function' && fn.name === '' && fn.length === 0 && Function.prototype.toString.call(fn).endsWith('{ [native code] }')
  );
}

type Callback = (...args: unknown[]) => void;
type Schedule = (fn: Callback, ...args: unknown[]) => unknown;

/**
 * A setImmediate that hands Dawn's polls to `immediate` during the first FAST_MS of a wait and to `later` (with
 * `interval`) after that, and every other callback to `immediate`; `now` is a millisecond clock.
 */
export function gentleSetImmediate(
  immediate: Schedule,
  later: (fn: Callback, ms: number, ...args: unknown[]) => unknown,
  interval: number,
  now: () => number,
): Schedule {
  let waitStart = -Infinity;
  let lastPoll = -Infinity;
  return (fn, ...args) => {
    if (!isDawnPoll(fn)) return immediate(fn, ...args);
    const t = now();
    if (t - lastPoll > NEW_WAIT_MS) waitStart = t;
    lastPoll = t;
    return t - waitStart < FAST_MS ? immediate(fn, ...args) : later(fn, interval, ...args);
  };
}

/** Replaces the global setImmediate with {@link gentleSetImmediate} (see the header). Idempotent; nothing with an interval of 0. */
export function throttleDawnPolling(interval = pollInterval()): void {
  if (installed || interval === 0) return;
  installed = true;
  const immediate = globalThis.setImmediate;
  const gentle = gentleSetImmediate(
    immediate as unknown as Schedule,
    setTimeout as unknown as Parameters<typeof gentleSetImmediate>[1],
    interval,
    () => performance.now(),
  );
  // util.promisify(setImmediate) keeps returning Node's own promise version
  Object.assign(gentle, { [promisify.custom]: (immediate as unknown as Record<symbol, unknown>)[promisify.custom] });
  globalThis.setImmediate = gentle as unknown as typeof setImmediate;
}
