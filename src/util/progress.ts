// A tqdm-style progress bar. On a terminal it redraws a single line in place with percentage,
// elapsed time, ETA and rate; when output is piped or logged to a file it draws no bar at all,
// so logs contain only the lines passed to log().

/** The part of a write stream the bar uses; process.stdout and process.stderr satisfy it. */
export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressBarOptions {
  total: number;
  label: string;
  /** Defaults to process.stdout, where the training log lines go too. */
  stream?: ProgressStream;
  /** Unit shown in the rate, e.g. "epoch" gives "1.2s/epoch". */
  unit?: string;
  /** Millisecond clock; injectable for tests. */
  now?: () => number;
}

const BLOCKS = ' ▏▎▍▌▋▊▉█';

/** Formats seconds as mm:ss, or h:mm:ss from an hour up. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds),
    h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    r = s % 60;
  const mmss = `${String(m).padStart(2, '0')}:${String(r).padStart(2, '0')}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

export class ProgressBar {
  private readonly total: number;
  private readonly label: string;
  private readonly stream: ProgressStream;
  private readonly unit: string;
  private readonly now: () => number;
  private readonly start: number;
  private done = 0;
  private suffix = '';
  private lastDraw = -Infinity;
  private finished = false;

  constructor(opts: ProgressBarOptions) {
    this.total = Math.max(0, opts.total);
    this.label = opts.label;
    this.stream = opts.stream ?? process.stdout;
    this.unit = opts.unit ?? 'it';
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
  }

  private get tty(): boolean {
    return this.stream.isTTY === true;
  }

  /** Records progress; on a terminal redraws the bar (at most ~10 times a second, always at the end). */
  update(done: number, suffix?: string): void {
    this.done = Math.min(Math.max(0, done), this.total);
    if (suffix !== undefined) this.suffix = suffix;
    if (!this.tty || this.finished) return;
    const t = this.now();
    if (t - this.lastDraw < 100 && this.done < this.total) return;
    this.lastDraw = t;
    this.stream.write(`\r${this.render()}\x1b[K`);
  }

  /** Prints a full line; on a terminal the bar is cleared first and redrawn below it. */
  log(line: string): void {
    if (!this.tty || this.finished) {
      this.stream.write(`${line}\n`);
      return;
    }
    this.stream.write(`\r\x1b[K${line}\n${this.render()}\x1b[K`);
  }

  /** Draws the final state and moves to a new line; further updates are ignored. */
  finish(): void {
    if (this.finished) return;
    if (this.tty) this.stream.write(`\r${this.render()}\x1b[K\n`);
    this.finished = true;
  }

  /** The bar line, e.g. `Epoch progress  37%|███▍    | 37/100 [02:13<03:47, 1.2s/epoch] loss 0.12`. */
  render(): string {
    const elapsed = (this.now() - this.start) / 1000;
    const frac = this.total > 0 ? this.done / this.total : 1;
    const pct = `${`${Math.floor(frac * 100)}`.padStart(3)}%`;
    const perItem = this.done > 0 ? elapsed / this.done : NaN;
    const eta = formatDuration(perItem * (this.total - this.done));
    const rate = !(perItem > 0)
      ? `?${this.unit}/s`
      : perItem >= 1
        ? `${perItem.toFixed(perItem < 10 ? 1 : 0)}s/${this.unit}`
        : `${(1 / perItem).toFixed(2)}${this.unit}/s`;
    const stats = ` ${this.done}/${this.total} [${formatDuration(elapsed)}<${eta}, ${rate}]${this.suffix ? ` ${this.suffix}` : ''}`;
    const head = `${this.label} ${pct}|`;
    const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - head.length - stats.length - 2));
    const eighths = Math.round(frac * width * 8);
    const full = Math.floor(eighths / 8),
      part = eighths % 8;
    const bar = ('█'.repeat(full) + (part ? BLOCKS[part] : '')).padEnd(width);
    return `${head}${bar}|${stats}`;
  }
}
