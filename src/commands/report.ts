// How a failed command tells the user why: a fault of theirs (bad flags, files, shapes) or of the machine
// (no adapter, a full disk) is one line naming what and where, exit status 2 for usage and 1 otherwise; only
// a bug of ours (an InternalError, or an error nothing of ours expected) prints a stack, with a line asking
// for a report.
import { InternalError, UsageError, WebGpuNnError } from '../errors.js';
import { isSystemError, systemReason } from '../util/system-error.js';

const PLEASE_REPORT =
  'webgpu-nn: this is a bug in webgpu-nn, not a fault of yours: please report it with the command you ran and this output.';

/** Prints why the command failed (on stderr) and returns its exit status. */
export function report(e: unknown, print: (text: string) => void = (t) => console.error(t)): number {
  if (e instanceof InternalError) {
    print(`webgpu-nn: ${e.message}\n${e.stack}`);
    return 1;
  }
  if (e instanceof WebGpuNnError) {
    print(`webgpu-nn: ${e.message}`);
    return e instanceof UsageError ? 2 : 1;
  }
  if (isSystemError(e)) {
    // The machine's fault (a disk, a descriptor limit) somewhere no check of ours named it: one line still.
    const where = e.path ? `${e.path}: ` : '';
    print(`webgpu-nn: ${where}${systemReason(e)}${e.syscall ? ` (in ${e.syscall})` : ''}`);
    return 1;
  }
  print(e instanceof Error ? (e.stack ?? String(e)) : String(e));
  print(PLEASE_REPORT);
  return 1;
}
