// Float64 reference: 2-D max pooling (no padding, floor output size), NCHW.

export interface PoolParams {
  N: number;
  C: number;
  H: number;
  W: number;
  kernel?: number;
  stride?: number;
}

export interface PoolResult {
  y: Float64Array;
  argmax: Int32Array; // per output: flat index ih*W+iw into its input H*W plane
  OH: number;
  OW: number;
}

// y[n,c,oh,ow] = max_{kh,kw} x[n,c,oh·s+kh,ow·s+kw]; first max in row-major window order wins ties.
export function maxPool2d(x: Float64Array, p: PoolParams): PoolResult {
  const { N, C, H, W } = p;
  const k = p.kernel ?? 2;
  const s = p.stride ?? k;
  const OH = Math.floor((H - k) / s) + 1;
  const OW = Math.floor((W - k) / s) + 1;
  const y = new Float64Array(N * C * OH * OW);
  const argmax = new Int32Array(N * C * OH * OW);
  for (let nc = 0; nc < N * C; nc++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        let best = -Infinity;
        let bestIdx = -1;
        for (let kh = 0; kh < k; kh++)
          for (let kw = 0; kw < k; kw++) {
            const idx = (oh * s + kh) * W + (ow * s + kw);
            const v = x[nc * H * W + idx];
            // strict > keeps the first max on ties; NaN is taken as the max, as in PyTorch
            if (bestIdx < 0 || v > best || Number.isNaN(v)) {
              best = v;
              bestIdx = idx;
            }
          }
        const o = (nc * OH + oh) * OW + ow;
        y[o] = best;
        argmax[o] = bestIdx;
      }
  return { y, argmax, OH, OW };
}

// dx[n,c,argmax[o]] += dy[o] for every output o (scatter-add; overlapping windows accumulate); an argmax of −1
// (a window a fused ReLU zeroed) sends its gradient nowhere.
export function maxPool2dBackward(dy: ArrayLike<number>, argmax: Int32Array, shape: PoolParams): Float64Array {
  const { N, C, H, W } = shape;
  const dx = new Float64Array(N * C * H * W);
  const perPlane = dy.length / (N * C);
  for (let nc = 0; nc < N * C; nc++)
    for (let j = 0; j < perPlane; j++) {
      const o = nc * perPlane + j;
      if (argmax[o] >= 0) dx[nc * H * W + argmax[o]] += dy[o];
    }
  return dx;
}

/**
 * The window codes of a 2×2, stride-2 pool from its argmax ([N, C, OH, OW] indices into each H×W plane, −1 where
 * a fused ReLU cut the window): per output its maximum's place in the window (0 top-left, 1 top-right,
 * 2 bottom-left, 3 bottom-right) or 255 where cut, a byte each, four outputs of a row per u32, the first lowest.
 */
export function poolCodes(argmax: ArrayLike<number>, s: { N: number; C: number; H: number; W: number }): Uint32Array {
  const OH = Math.floor(s.H / 2);
  const OW = Math.floor(s.W / 2);
  const codes = new Uint32Array((s.N * s.C * OH * OW) / 4);
  for (let i = 0; i < argmax.length; i++) {
    const j = argmax[i];
    const oh = Math.floor(i / OW) % OH;
    const ow = i % OW;
    const [ih, iw] = [Math.floor(j / s.W), j % s.W];
    const code = j < 0 ? 255 : 2 * (ih - 2 * oh) + (iw - 2 * ow);
    if (j >= 0 && (ih - 2 * oh > 1 || iw - 2 * ow > 1 || ih < 2 * oh || iw < 2 * ow))
      throw new Error(`argmax[${i}] = ${j} lies outside its window`);
    codes[i >> 2] |= code << (8 * (i & 3));
  }
  return codes;
}

/** The argmax that window codes (see poolCodes) stand for: each window's top-left index plus the code's offset, −1 where cut. */
export function argmaxOfCodes(codes: Uint32Array, s: { N: number; C: number; H: number; W: number }): Int32Array {
  const OH = Math.floor(s.H / 2);
  const OW = Math.floor(s.W / 2);
  const argmax = new Int32Array(s.N * s.C * OH * OW);
  for (let i = 0; i < argmax.length; i++) {
    const code = (codes[i >> 2] >>> (8 * (i & 3))) & 255;
    if (code !== 255 && code > 3) throw new Error(`code ${code} of output ${i} is neither a window position nor cut`);
    const [oh, ow] = [Math.floor(i / OW) % OH, i % OW];
    argmax[i] = code === 255 ? -1 : (2 * oh + (code >> 1)) * s.W + 2 * ow + (code & 1);
  }
  return argmax;
}
