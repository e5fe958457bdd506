// Faults of the machine rather than of our code: Node's errors from the file system and the OS (an `errno`
// code such as ENOSPC). They are reported as one line naming the path and the reason in words, never as a
// stack trace.

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for this file system or for the file-size limit (ulimit -f)',
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'a part of the path is not a directory',
  EISDIR: 'it is a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  ENOENT: 'no such file or directory',
  EEXIST: 'it already exists',
  EIO: 'input/output error (a failing disk or a network file system)',
  EMFILE: 'too many open files',
  ENFILE: 'too many open files in the system',
  EBUSY: 'device or resource busy',
  ENXIO: 'no such device',
  ENODEV: 'no such device',
  EINVAL: 'invalid argument (a path this file system cannot hold?)',
  EPIPE: 'broken pipe',
};

/** An error Node raised for a system call (it has an errno code such as ENOSPC). */
export function isSystemError(e: unknown): e is NodeJS.ErrnoException & { code: string } {
  return (
    e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && /^E[A-Z0-9]+$/.test((e as NodeJS.ErrnoException).code!)
  );
}

/** "no space left on the device (ENOSPC)"; for anything else the error's own message. */
export function systemReason(e: unknown): string {
  if (!isSystemError(e)) return e instanceof Error ? e.message : String(e);
  const words = REASONS[e.code];
  return words ? `${words} (${e.code})` : e.message;
}
