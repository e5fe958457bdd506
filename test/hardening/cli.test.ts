// The command line as a hostile user (or a broken machine) meets it: adapters that do not compute or do not
// exist, stray arguments and out-of-range flags, output locations that cannot be used or fill up, flags given
// again with --resume, a closed stdout. Each ends in one clear line and the right exit status, never a stack
// trace, and nothing already written is lost.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEmbeddedDigits } from '../../src/data/dataset.js';
import { CLI, type CliResult, COLD_START_TIMEOUT, expectOneLine, hasStackTrace, runCli } from '../helpers/cli.js';

const root = mkdtempSync(join(tmpdir(), 'webgpu-nn-cli-faults-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const model = join(root, 'model');
const png = join(root, 'digit.png');

beforeAll(async () => {
  const r = await runCli(['train', '--limit', '200', '--epochs', '1', '--out', model]);
  expect(r.code, r.err).toBe(0);
  const digits = loadEmbeddedDigits(1);
  const image = new PNG({ width: 28, height: 28 });
  for (let i = 0; i < 784; i++) image.data.set([digits.images[i], digits.images[i], digits.images[i], 255], 4 * i);
  writeFileSync(png, PNG.sync.write(image));
}, COLD_START_TIMEOUT);

describe('adapters', () => {
  it(
    "Dawn's null backend is refused by every command before any work, with what to do instead",
    async () => {
      const out = join(root, 'null-out');
      const commands = [
        ['train', '--limit', '100', '--epochs', '1', '--out', join(out, 'train')],
        ['evaluate', '--model', model],
        ['predict', '--model', model, png],
        ['init-histograms', '--out', join(out, 'init')],
        ['bn-gradients', '--epochs', '1', '--limit', '200', '--out', join(out, 'bn')],
        ['demo'],
      ];
      for (const args of commands) {
        const r = await runCli(args, { env: { WEBGPU_NN_BACKEND: 'null' } });
        expectOneLine(r, 1, /adapter .* does not compute: .*WEBGPU_NN_BACKEND=null.* Choose another adapter with WEBGPU_NN_BACKEND/);
        expect(r.out, args[0]).not.toMatch(/epoch|accuracy|WebGPU works|%/);
      }
      // Nothing claims to be a result: no checkpoint, no history, no picture.
      const written = existsSync(out) ? readdirSync(out, { recursive: true }).map(String) : [];
      expect(written.filter((f) => /\.(safetensors|png)$|history\.json/.test(f))).toEqual([]);
    },
    COLD_START_TIMEOUT,
  );

  it(
    'environment variables naming an adapter, backend or power preference that does not exist: a NoAdapterError listing the adapters',
    async () => {
      const cases: [Record<string, string>, RegExp][] = [
        [{ WEBGPU_NN_ADAPTER: 'no-such-gpu' }, /No WebGPU adapter found for adapter "no-such-gpu" .*Adapters Dawn sees here: \w+ "/],
        [
          { WEBGPU_NN_BACKEND: 'directx9' },
          /WEBGPU_NN_BACKEND is "directx9", which is not a backend Dawn knows .*Adapters Dawn sees here:/,
        ],
        [{ WEBGPU_NN_POWER: 'fast' }, /WEBGPU_NN_POWER is "fast"; expected low-power or high-performance/],
      ];
      for (const [env, message] of cases) expectOneLine(await runCli(['demo'], { env }), 1, message);
    },
    COLD_START_TIMEOUT,
  );
});

describe('the command line', () => {
  it(
    'stray arguments and unknown flags are refused everywhere; demo has --help; ranges are what the help says',
    async () => {
      const cases: [string[], RegExp][] = [
        [['evaluate', '--model', model, join(root, 'other-data')], /webgpu-nn evaluate: unexpected argument ".*other-data"; .*--data DIR/],
        [['demo', '--bogus'], /webgpu-nn demo: unknown flag --bogus/],
        [['demo', 'extra'], /webgpu-nn demo: unexpected argument "extra"/],
        [['init-histograms', 'runs/x'], /unexpected argument "runs\/x"/],
        [['train', '--val-split', '1'], /--val-split: expected a number > 0 and < 1, got "1"/],
        [['train', '--seed', '4294967296'], /--seed: expected an integer >= 0 and <= 4294967295, got "4294967296"/],
        [['train', '--epochs', '1e20'], /--epochs: expected an integer >= 1 and <= 1000000/],
        [['bn-gradients', '--seed', '9007199254740993'], /--seed: expected an integer/],
      ];
      for (const [args, message] of cases) expectOneLine(await runCli(args), 2, message);
      const help = await runCli(['demo', '--help']);
      expect(help.code).toBe(0);
      expect(help.out).toMatch(/^Usage: webgpu-nn demo \[flags\]/);
      expect((await runCli(['train', '--help'])).out).toMatch(/--val-split <float>\s+fraction .* \(default: 0\.2; > 0 and < 1\)/);
    },
    COLD_START_TIMEOUT,
  );

  it(
    'predict batches by itself: 600 images in one call',
    async () => {
      const r = await runCli(['predict', '--model', model, ...Array.from({ length: 600 }, () => png)]);
      expect(r.code, r.err).toBe(0);
      const lines = r.out.split('\n').filter((l) => l.startsWith(png));
      expect(lines).toHaveLength(600);
      expect(new Set(lines).size).toBe(1); // the same image, the same answer in every batch
    },
    COLD_START_TIMEOUT,
  );
});

describe('output locations', () => {
  it(
    'a bad --out fails before the GPU is opened or any work is done, and never hangs',
    async () => {
      const file = join(root, 'a-file');
      writeFileSync(file, 'mine');
      const cases: [string[], RegExp][] = [
        [['bn-gradients', '--out', file], /--out .*a-file: it is a file, not a directory/],
        [['bn-gradients', '--out', join(file, 'sub')], /a-file is a file, not a directory/],
        [['init-histograms', '--out', '/proc/self/webgpu-nn'], /--out \/proc\/self\/webgpu-nn: it is on a special file system \(proc\)/],
        [['train', '--out', '/proc/self/webgpu-nn/run'], /special file system \(proc\)/],
        [['train', '--out', '/dev/null'], /--out \/dev\/null: it is a character device, not a directory/],
      ];
      for (const [args, message] of cases) {
        const r = await runCli(args, { killAfterMs: 60_000 });
        expectOneLine(r, 1, message);
        expect(r.out).not.toMatch(/^adapter: /m); // the GPU was never opened
      }
      expect(readFileSync(file, 'utf8')).toBe('mine');
    },
    COLD_START_TIMEOUT,
  );

  it(
    "a file of the user's in --out is never overwritten; a second run cannot write into a directory a run holds",
    async () => {
      const dir = join(root, 'users');
      mkdirSync(dir);
      writeFileSync(join(dir, 'loss.png'), 'my plot');
      expectOneLine(
        await runCli(['train', '--limit', '100', '--epochs', '1', '--out', dir]),
        1,
        /loss\.png exists and webgpu-nn did not write it; it is never overwritten/,
      );
      expect(readFileSync(join(dir, 'loss.png'), 'utf8')).toBe('my plot');

      const busy = join(root, 'busy');
      let second: CliResult | null = null;
      const first = await runCli(['train', '--limit', '640', '--epochs', '50', '--out', busy], {
        onLine: (line, child) => {
          if (second === null && /^epoch +1 /.test(line)) {
            second = {} as CliResult;
            void runCli(['train', '--resume', busy]).then((r) => {
              second = r;
              child.kill('SIGINT');
            });
          }
        },
      });
      expect(first.code, first.err).toBe(130);
      expectOneLine(second!, 1, /--resume .*busy is in use by another webgpu-nn train \(pid \d+, started .*\); wait for it to finish/);
    },
    COLD_START_TIMEOUT,
  );

  // A real full disk: a 120 KiB tmpfs mounted in a user and mount namespace of the test's own (unshare -rm,
  // no privileges needed where the kernel allows user namespaces, as Debian's does). config.json and one
  // checkpoint fit, the second does not; then the disk grows and the run resumes. And a read-only one.
  const canMount = spawnSync('unshare', ['-rm', 'true']).status === 0;
  it.runIf(canMount)(
    'a disk that fills up mid-run: one line naming the file and ENOSPC, nothing half-written, and the run resumes once there is room',
    async () => {
      const disk = join(root, 'disk');
      mkdirSync(disk);
      const cli = (args: string) =>
        `'${process.execPath}' '${CLI}' ${args} 2>&1 | grep -v '^Warning: maxDynamic'; echo "exit \${PIPESTATUS[0]}"`;
      const script = [
        'echo "== read-only"',
        `mkdir '${disk}/ro' && mount -t tmpfs -o ro none '${disk}/ro'`,
        cli(`train --out '${disk}/ro/run'`),
        'echo "== full"',
        `mount -t tmpfs -o size=120k none '${disk}'`,
        cli(`train --limit 200 --epochs 2 --out '${disk}/run'`),
        'echo "== left"',
        `ls -A '${disk}/run'`,
        'echo "== resumed"',
        `mount -o remount,size=16m '${disk}'`,
        cli(`train --resume '${disk}/run'`),
        `echo "epochs: $(grep -c '"epoch"' '${disk}/run/history.json')"`,
      ].join('\n');
      const r = spawnSync('unshare', ['-rm', 'bash', '-c', script], { encoding: 'utf8', timeout: COLD_START_TIMEOUT });
      expect(hasStackTrace(r.stdout), r.stdout).toBe(false);
      const part: Record<string, string> = {};
      let section = '';
      for (const line of r.stdout.split('\n')) {
        const heading = /^== (.+)$/.exec(line);
        if (heading) {
          section = heading[1];
          part[section] = '';
        } else if (section) part[section] += `${line}\n`;
      }
      const messages = (text: string) => text.split('\n').filter((l) => l.startsWith('webgpu-nn: '));
      expect(messages(part['read-only']), r.stdout).toHaveLength(1);
      expect(messages(part['read-only'])[0]).toMatch(/--out .*ro\/run: cannot create the directory: read-only file system \(EROFS\)/);
      expect(part['read-only']).toMatch(/^exit 1$/m);
      expect(messages(part.full), r.stdout).toHaveLength(1);
      expect(messages(part.full)[0]).toMatch(
        /cannot write .*disk\/run\/\w+\.safetensors: no space left on the device \(ENOSPC\).*continue with --resume .*disk\/run/,
      );
      expect(part.full).toMatch(/^exit 1$/m);
      // What is there is whole: no temporary file, no lock.
      expect(part.left).not.toMatch(/\.tmp-|\.lock/);
      expect(part.resumed).toMatch(/^exit 0$/m);
      expect(part.resumed).toMatch(/^epochs: 2$/m);
    },
    COLD_START_TIMEOUT,
  );

  it(
    'a closed stdout (webgpu-nn train | head) stops the run as SIGTERM would, saving it, without a stack trace',
    async () => {
      const dir = join(root, 'epipe');
      const r = await runCli(['train', '--limit', '640', '--epochs', '50', '--out', dir], {
        onLine: (line, child) => {
          if (/^epoch +1 /.test(line)) child.stdout!.destroy();
        },
      });
      expect(r.code, r.err).toBe(143);
      expect(hasStackTrace(r.err), r.err).toBe(false);
      expect(existsSync(join(dir, 'last.safetensors'))).toBe(true);
      expect(readdirSync(dir).filter((f) => f.includes('.tmp-') || f.endsWith('.lock'))).toEqual([]);
    },
    COLD_START_TIMEOUT,
  );
});

describe('flags given again with --resume', () => {
  it(
    'more epochs in any spelling and the same data from a new place are honoured; other changes are refused by name',
    async () => {
      const digits = loadEmbeddedDigits(300);
      const idx = (dims: number[], data: Uint8Array) => {
        const header = Buffer.alloc(4 + 4 * dims.length);
        header.writeUInt32BE(0x800 + dims.length, 0);
        for (const [i, d] of dims.entries()) header.writeUInt32BE(d, 4 + 4 * i);
        return Buffer.concat([header, data]);
      };
      const dataDir = (name: string, labels: Uint8Array) => {
        const d = join(root, name);
        mkdirSync(d);
        writeFileSync(join(d, 'train-images-idx3-ubyte'), idx([300, 28, 28], digits.images));
        writeFileSync(join(d, 'train-labels-idx1-ubyte'), idx([300], labels));
        return d;
      };
      const first = dataDir('data-a', digits.labels);
      const run = join(root, 'resumable');
      expect((await runCli(['train', '--data', first, '--epochs', '1', '--out', run])).code).toBe(0);

      const refused: [string[], RegExp][] = [
        [['--lr', '0.5'], /--lr cannot change when resuming: the run has lr = 0\.01 and the flags ask for 0\.5; drop --lr/],
        [['--no-bn'], /--bn \/ --no-bn cannot change when resuming: the run has batchNorm = true/],
        [['--limit', '100'], /--limit cannot change when resuming: the run has limit = null/],
        [['--epochs', '0'], /--epochs: expected an integer >= 1/],
        [['--out', join(root, 'elsewhere')], /--out .*elsewhere: a resumed run goes on writing to its own directory/],
      ];
      for (const [flags, message] of refused) {
        const r = await runCli(['train', '--resume', run, ...flags]);
        expectOneLine(r, 2, message);
      }
      // Giving a setting again with its own value is no change.
      const moved = join(root, 'data-moved');
      cpSync(first, moved, { recursive: true });
      rmSync(first, { recursive: true });
      expectOneLine(
        await runCli(['train', '--resume', run, '--epochs', '2']),
        2,
        /data directory .*data-a is no longer there; if it moved, give its new place with --data DIR/,
      );
      const other = dataDir(
        'data-other',
        Uint8Array.from(digits.labels, (l) => (l + 1) % 10),
      );
      expectOneLine(
        await runCli(['train', '--resume', run, '--epochs=2', '--data', other]),
        2,
        /--data .*data-other: its images and labels are not those the run was trained on/,
      );
      const r = await runCli(['train', '--resume', run, '--epochs=2', '--data', moved, '--lr', '0.01']);
      expect(r.code, r.err).toBe(0);
      expect(r.out).toMatch(/^epoch +2 /m);
      expect(JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'))).toMatchObject({ data: moved, epochs: 2 });
      expectOneLine(
        await runCli(['train', '--resume', run, '--epochs', '1']),
        2,
        /--epochs 1: the run has already finished 2 epochs; give at least 2/,
      );
    },
    COLD_START_TIMEOUT,
  );
});
