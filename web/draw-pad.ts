// The drawing pad: white strokes on black, as MNIST digits are. What the network gets is prepared as MNIST's
// own digits were: the drawing's bounding box scaled so its longer side is 20 of 28 pixels, its centre of mass
// put at the centre, then src/data/digits.ts (the same code `webgpu-nn predict` runs on PNG files) turns the
// picture into the 28x28 floats the network reads.
import { digitFromRgba } from '../src/data/digits.js';

/** The network's input size, and the side of the box MNIST digits were scaled into. */
const SIDE = 28;
const BOX = 20;

export class DrawPad {
  private readonly ctx: CanvasRenderingContext2D;
  private drawing = false;
  private last: { x: number; y: number } | null = null;
  private readonly work = document.createElement('canvas');

  /** `onChange` runs after every stroke segment and after clear(). */
  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly onChange: () => void,
  ) {
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    if (!ctx) throw new Error('the drawing pad needs a 2D canvas');
    this.ctx = ctx;
    this.work.width = this.work.height = canvas.width;
    this.blank();
    canvas.addEventListener('pointerdown', (e) => {
      canvas.setPointerCapture(e.pointerId);
      this.drawing = true;
      this.last = this.point(e);
      this.stroke(this.last);
    });
    canvas.addEventListener('pointermove', (e) => {
      if (this.drawing) this.stroke(this.point(e));
    });
    const end = () => {
      this.drawing = false;
      this.last = null;
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  clear(): void {
    this.blank();
    this.onChange();
  }

  private blank(): void {
    this.ctx.fillStyle = 'black';
    this.ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
  }

  /** Paints a 28x28 image (floats in [0, 1], white on black) over the whole pad, as if drawn there. */
  paint(pixels: ArrayLike<number>): void {
    const small = new ImageData(SIDE, SIDE);
    for (let i = 0; i < SIDE * SIDE; i++) {
      const v = Math.round(255 * Math.min(1, Math.max(0, pixels[i])));
      small.data.set([v, v, v, 255], 4 * i);
    }
    const tmp = document.createElement('canvas');
    tmp.width = tmp.height = SIDE;
    tmp.getContext('2d')!.putImageData(small, 0, 0);
    this.ctx.imageSmoothingEnabled = true;
    this.ctx.drawImage(tmp, 0, 0, this.canvas.width, this.canvas.height);
    this.onChange();
  }

  /** The drawing as the network's 28x28 input (white on black, floats in [0, 1]), or null when the pad is empty. */
  digit(): Float32Array | null {
    const n = this.canvas.width;
    const { data } = this.ctx.getImageData(0, 0, n, n);
    let x0 = n,
      y0 = n,
      x1 = -1,
      y1 = -1,
      mass = 0,
      mx = 0,
      my = 0;
    for (let y = 0; y < n; y++) {
      for (let x = 0; x < n; x++) {
        const v = data[4 * (y * n + x)] / 255;
        if (v < 0.05) continue;
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
        mass += v;
        mx += v * x;
        my += v * y;
      }
    }
    if (x1 < 0) return null;
    // Scale the bounding box into BOX/SIDE of the frame, then move the centre of mass to the middle.
    const s = ((BOX / SIDE) * n) / Math.max(x1 - x0 + 1, y1 - y0 + 1);
    const dx = n / 2 - (mx / mass - x0) * s;
    const dy = n / 2 - (my / mass - y0) * s;
    const w = this.work.getContext('2d', { willReadFrequently: true })!;
    w.fillStyle = 'black';
    w.fillRect(0, 0, n, n);
    w.imageSmoothingEnabled = true;
    w.drawImage(this.canvas, x0, y0, x1 - x0 + 1, y1 - y0 + 1, dx, dy, (x1 - x0 + 1) * s, (y1 - y0 + 1) * s);
    return digitFromRgba(w.getImageData(0, 0, n, n).data, n, n, 'the drawing pad').pixels;
  }

  private point(e: PointerEvent): { x: number; y: number } {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((e.clientX - r.left) / r.width) * this.canvas.width, y: ((e.clientY - r.top) / r.height) * this.canvas.height };
  }

  private stroke(p: { x: number; y: number }): void {
    const { ctx } = this;
    const from = this.last ?? p;
    ctx.strokeStyle = 'white';
    ctx.lineWidth = this.canvas.width / 12;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(p.x + 0.01, p.y);
    ctx.stroke();
    this.last = p;
    this.onChange();
  }
}

/** Shows a 28x28 image (floats in [0, 1]) on a 28x28 canvas. */
export function showDigit(canvas: HTMLCanvasElement, pixels: ArrayLike<number> | null): void {
  const ctx = canvas.getContext('2d')!;
  const img = new ImageData(SIDE, SIDE);
  for (let i = 0; i < SIDE * SIDE; i++) {
    const v = pixels ? Math.round(255 * pixels[i]) : 0;
    img.data.set([v, v, v, 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
}
