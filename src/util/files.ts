// Crash-safe file writes: data goes to a temporary file in the target's directory, is fsynced,
// then renamed over the target. A reader (or a resumed run after a crash) sees either the old
// file or the new one, never a half-written mix. A write that fails (a full disk, a read-only file
// system) removes its temporary file and throws an OutputError naming the path and the reason; one
// killed midway leaves its temporary file, which OutputDir removes the next time it opens the directory.

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { OutputError } from '../errors.js';
import { systemReason } from './system-error.js';

/** `<file>.tmp-<pid>-<8 hex digits>`: the temporary name writeFileAtomic writes `file` under. */
const TEMP = /^(.+)\.tmp-(\d+)-[0-9a-f]{8}$/;

/** The file a temporary file of writeFileAtomic was for, or null when `name` is not one. */
export function tempFileTarget(name: string): string | null {
  return TEMP.exec(name)?.[1] ?? null;
}

/** Atomically replaces `path` with `data` (a string is written as UTF-8). */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx');
    for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined)
      try {
        closeSync(fd);
      } catch {
        /* already failing; keep the first error */
      }
    try {
      unlinkSync(tmp);
    } catch {
      /* the temp file may never have been created */
    }
    throw new OutputError(`cannot write ${path}: ${systemReason(err)}; ${basename(path)} is as it was before this write`);
  }
  // The rename itself is only durable once the directory entry is flushed. Some platforms
  // (Windows) cannot open or fsync a directory; the write has still happened, so ignore that.
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* best effort */
  }
}
