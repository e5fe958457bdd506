// Output directories (src/util/output-dir.ts, src/util/files.ts): every way a location can be unusable ends
// in one OutputError naming the path and the reason, before anything is written; the lock keeps a second
// writer out and is taken over from dead processes; no file of someone else's is ever replaced; temporary
// files of killed writes are removed. No GPU here: these run in milliseconds.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OutputError } from '../../src/errors.js';
import { writeFileAtomic } from '../../src/util/files.js';
import { OutputDir } from '../../src/util/output-dir.js';
import { withoutPermissionOverride } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'webgpu-nn-outdir-'));
chmodSync(root, 0o755); // nobody's process (the permission test, as root without setpriv) must reach into it
afterAll(() => rmSync(root, { recursive: true, force: true }));

const files = ['config.json', 'history.json', 'loss.png'];
const options = { flag: '--out', command: 'test', files };
let n = 0;
const fresh = () => join(root, `d${++n}`);

/** The OutputError `fn` throws (failing the test if it throws anything else or nothing). */
function outputError(fn: () => unknown): OutputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(OutputError);
    return e as OutputError;
  }
  throw new Error('expected an OutputError');
}

describe('an output location that cannot be used', () => {
  it('a file, a path under a file, a device, a special file system, a symlink loop: one OutputError each, nothing created', () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'mine');
    const loop = join(root, 'loop');
    symlinkSync(join(root, 'loop2'), loop);
    symlinkSync(loop, join(root, 'loop2'));
    const cases: [string, RegExp][] = [
      [file, /--out .*a-file: it is a file, not a directory/],
      [join(file, 'x', 'y'), /a-file is a file, not a directory/],
      ['/dev/null', /it is a character device, not a directory/],
      ['/dev/webgpu-nn-test-out', /special file system \(devtmpfs/],
      ['/proc/self/webgpu-nn-test-out', /special file system \(proc\)/], // Node's recursive mkdir spins forever here
      ['/sys/webgpu-nn-test-out', /special file system \(sysfs\)/],
      [join(loop, 'x'), /too many levels of symbolic links \(ELOOP\)/],
    ];
    for (const [path, message] of cases) {
      const e = outputError(() => OutputDir.open(path, options));
      expect(e.message, path).toMatch(message);
      expect(e.message.startsWith('--out ')).toBe(true);
    }
    expect(readFileSync(file, 'utf8')).toBe('mine');
    expect(existsSync('/dev/webgpu-nn-test-out')).toBe(false);
  });

  it('a directory this user may not write in: permission denied, named', () => {
    const locked = join(root, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o555); // as root, the attempt runs without the permission override (withoutPermissionOverride)
    const module = join(import.meta.dirname, '..', '..', 'dist', 'src', 'util', 'output-dir.js');
    const script = `import('${module}').then((m) => {
      for (const p of [process.argv[1], process.argv[1] + '/sub']) {
        try { m.OutputDir.open(p, { flag: '--out', command: 'test', files: [] }); console.log('opened'); }
        catch (e) { console.log(e.name + ': ' + e.message); }
      }
    })`;
    const child = withoutPermissionOverride(module, join(locked, 'sub'));
    const argv = [...child.prefix, process.execPath, '-e', script, locked];
    const r = spawnSync(argv[0], argv.slice(1), { encoding: 'utf8', ...child.spawn });
    expect(r.stdout).toMatch(/^OutputError: --out .*locked: cannot write in it: permission denied \(EACCES\)/m);
    expect(r.stdout).toMatch(/^OutputError: --out .*locked\/sub: cannot create the directory: permission denied \(EACCES\)/m);
    expect(readdirSync(locked)).toEqual([]);
  });

  it('a failed write (here a file-size limit, as a full disk) is an OutputError that leaves the old file and no temporary file', () => {
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, 'history.json'), 'old');
    // writeFileAtomic in a child limited to 1 KiB files: the write fails with EFBIG after its temp file exists.
    const script = `import('${join(import.meta.dirname, '..', '..', 'dist', 'src', 'util', 'files.js')}').then((m) => {
      try { m.writeFileAtomic(process.argv[1], 'x'.repeat(100000)); console.log('written'); }
      catch (e) { console.log(e.name + ': ' + e.message); }
    })`;
    const quoted = [process.execPath, '-e', script, join(dir, 'history.json')].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const r = spawnSync('bash', ['-c', `ulimit -f 1; exec ${quoted}`], { encoding: 'utf8' });
    expect(r.stdout).toMatch(
      /^OutputError: cannot write .*history\.json: file too large .*\(EFBIG\); history\.json is as it was before this write/m,
    );
    expect(readFileSync(join(dir, 'history.json'), 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['history.json']);
  });
});

describe('files in an output directory', () => {
  it('never replaces a file webgpu-nn did not write; replaces its own; refuses a directory where a file goes', () => {
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), '{"mine": true}');
    expect(outputError(() => OutputDir.open(dir, options)).message).toMatch(
      /config\.json exists and webgpu-nn did not write it; it is never overwritten/,
    );
    expect(readFileSync(join(dir, 'config.json'), 'utf8')).toBe('{"mine": true}');
    rmSync(join(dir, 'config.json'));

    const a = OutputDir.open(dir, options);
    a.write('history.json', '[1]');
    a.release();
    const b = OutputDir.open(dir, options); // the manifest says history.json is ours
    b.write('history.json', '[2]');
    expect(() => b.write('notes.txt', 'x')).toThrow(/not one of the files test writes/);
    b.release();
    expect(readFileSync(join(dir, 'history.json'), 'utf8')).toBe('[2]');
    expect(JSON.parse(readFileSync(join(dir, '.webgpu-nn-files.json'), 'utf8')).files).toEqual(['history.json']);

    mkdirSync(join(dir, 'loss.png'));
    expect(outputError(() => OutputDir.open(dir, options)).message).toMatch(/loss\.png is a directory, where webgpu-nn writes a file/);
  });

  it('removes the temporary files of killed writes to its files, and only those', () => {
    const dir = fresh();
    mkdirSync(dir);
    const temps = ['history.json.tmp-123-0badf00d', '.webgpu-nn-files.json.tmp-9-12345678', '.webgpu-nn.lock.tmp-77-abcdef01'];
    for (const t of temps) writeFileSync(join(dir, t), 'half');
    writeFileSync(join(dir, 'notes.txt.tmp-1-12345678'), 'not ours');
    writeFileSync(join(dir, 'history.json.tmp-1-xyz'), 'not our pattern');
    const d = OutputDir.open(dir, options);
    expect([...d.removedTemps].sort()).toEqual([...temps].sort());
    d.release();
    expect(readdirSync(dir).sort()).toEqual(['history.json.tmp-1-xyz', 'notes.txt.tmp-1-12345678']);
  });

  it('writeFileAtomic into a missing directory is an OutputError naming the path', () => {
    const e = outputError(() => writeFileAtomic(join(root, 'missing', 'f.json'), 'x'));
    expect(e.message).toMatch(/cannot write .*missing\/f\.json: no such file or directory \(ENOENT\)/);
  });
});

describe('the lock', () => {
  it('keeps a second writer out while held, and lets it in once released', () => {
    const dir = fresh();
    const a = OutputDir.open(dir, options);
    const e = outputError(() => OutputDir.open(dir, { ...options, command: 'second' }));
    expect(e.message).toMatch(new RegExp(`--out .*d\\d+ is in use by another webgpu-nn test \\(pid ${process.pid}, started `));
    a.release();
    expect(existsSync(join(dir, '.webgpu-nn.lock'))).toBe(false);
    OutputDir.open(dir, options).release();
  });

  it('is taken over from a process that is gone, and from a pid now used by another process', () => {
    for (const holder of [
      { pid: 2 ** 22 + 12345, started: Date.now() - 1000 }, // above Linux's pid limit: no such process
      { pid: 1, started: 0 }, // init runs, but started long after 1970: the pid was reused
    ]) {
      const dir = fresh();
      mkdirSync(dir);
      writeFileSync(join(dir, '.webgpu-nn.lock'), JSON.stringify({ ...holder, host: hostname(), command: 'train' }));
      const d = OutputDir.open(dir, options);
      expect(JSON.parse(readFileSync(join(dir, '.webgpu-nn.lock'), 'utf8')).pid).toBe(process.pid);
      d.release();
    }
  });

  it('two directories asked for by the same name in the same second are distinct', () => {
    const parent = fresh();
    const a = OutputDir.createUnique(parent, 'run', options);
    const b = OutputDir.createUnique(parent, 'run', options);
    expect([a.path, b.path]).toEqual([join(parent, 'run'), join(parent, 'run-2')]);
    a.release();
    b.release();
  });
});
