// The page's live loss chart: train and validation loss against epoch, redrawn on a canvas after every epoch
// (the same two curves as the CLI's loss.png).
import type { EpochRecord } from '../src/train/history.js';

const COLORS = { train: '#1f77b4', val: '#ff7f0e', axis: '#5d6678', grid: '#e6e8ee' };

export class LossChart {
  private records: EpochRecord[] = [];
  private readonly ctx: CanvasRenderingContext2D;
  /** Canvas pixels per CSS pixel. */
  private readonly scale: number;

  constructor(private readonly canvas: HTMLCanvasElement) {
    const ctx = canvas.getContext('2d');
    if (!ctx) throw new Error('the loss chart needs a 2D canvas');
    this.ctx = ctx;
    // Draw at the screen's pixel density so lines stay sharp.
    this.scale = Math.max(1, Math.round(globalThis.devicePixelRatio ?? 1));
    canvas.width *= this.scale;
    canvas.height *= this.scale;
    ctx.scale(this.scale, this.scale);
    this.draw();
  }

  reset(): void {
    this.records = [];
    this.draw();
  }

  add(record: EpochRecord): void {
    this.records.push(record);
    this.draw();
  }

  private draw(): void {
    const { ctx, records } = this;
    const W = this.canvas.width / this.scale;
    const H = this.canvas.height / this.scale;
    const m = { left: 56, right: 16, top: 30, bottom: 38 };
    ctx.clearRect(0, 0, W, H);
    ctx.fillStyle = 'white';
    ctx.fillRect(0, 0, W, H);
    ctx.font = '13px system-ui, sans-serif';
    ctx.fillStyle = COLORS.axis;
    ctx.textAlign = 'center';
    ctx.fillText('Train and validation loss vs epochs', W / 2, 18);

    const losses = records.flatMap((r) => [r.trainLoss, r.valLoss]).filter(Number.isFinite);
    const maxEpoch = Math.max(2, records.length);
    const yMax = losses.length ? niceCeil(Math.max(...losses)) : 2.5;
    const x = (epoch: number) => m.left + ((epoch - 1) / (maxEpoch - 1)) * (W - m.left - m.right);
    const y = (loss: number) => H - m.bottom - (loss / yMax) * (H - m.top - m.bottom);

    // Grid, ticks and axis labels.
    ctx.font = '11px system-ui, sans-serif';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 5; i++) {
      const v = (yMax * i) / 5;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(m.left, y(v));
      ctx.lineTo(W - m.right, y(v));
      ctx.stroke();
      ctx.textAlign = 'right';
      ctx.fillText(v.toFixed(yMax < 1 ? 2 : 1), m.left - 6, y(v) + 4);
    }
    ctx.textAlign = 'center';
    const step = Math.max(1, Math.ceil(maxEpoch / 10));
    for (let e = 1; e <= maxEpoch; e += step) ctx.fillText(String(e), x(e), H - m.bottom + 16);
    ctx.fillText('Epochs', (m.left + W - m.right) / 2, H - 6);
    ctx.save();
    ctx.translate(14, (m.top + H - m.bottom) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText('Loss', 0, 0);
    ctx.restore();
    ctx.strokeStyle = COLORS.axis;
    ctx.strokeRect(m.left, m.top, W - m.left - m.right, H - m.top - m.bottom);

    // The two curves, with a dot per epoch.
    for (const [key, color] of [
      ['trainLoss', COLORS.train],
      ['valLoss', COLORS.val],
    ] as const) {
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (const [i, r] of records.entries()) {
        if (i) ctx.lineTo(x(r.epoch), y(r[key]));
        else ctx.moveTo(x(r.epoch), y(r[key]));
      }
      ctx.stroke();
      for (const r of records) {
        ctx.beginPath();
        ctx.arc(x(r.epoch), y(r[key]), 2.5, 0, 2 * Math.PI);
        ctx.fill();
      }
    }

    // Legend.
    ctx.textAlign = 'left';
    ctx.font = '12px system-ui, sans-serif';
    [
      ['Train loss', COLORS.train],
      ['Validation loss', COLORS.val],
    ].forEach(([label, color], i) => {
      const lx = W - m.right - 130;
      const ly = m.top + 16 + i * 18;
      ctx.fillStyle = color;
      ctx.fillRect(lx, ly - 8, 18, 4);
      ctx.fillStyle = COLORS.axis;
      ctx.fillText(label, lx + 24, ly - 3);
    });
  }
}

/** The smallest of 1, 2, 2.5, 5 times a power of ten that is at least v. */
function niceCeil(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  return [1, 2, 2.5, 5, 10].map((k) => k * p).find((c) => c >= v)!;
}
