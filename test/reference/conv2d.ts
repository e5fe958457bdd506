// Float64 reference: 2-D convolution (PyTorch cross-correlation), NCHW, weights [O,C,KH,KW].

export interface Conv2dParams {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  stride?: number;
  padding?: number;
}

// out = floor((size + 2·padding − kernel) / stride) + 1.
export function convOutSize(size: number, kernel: number, stride: number, padding: number): number {
  return Math.floor((size + 2 * padding - kernel) / stride) + 1;
}

// y[n,o,oh,ow] = b[o] + Σ_{c,kh,kw} x[n,c,oh·s+kh−p,ow·s+kw−p]·w[o,c,kh,kw] (zero padding).
export function conv2d(x: Float64Array, w: Float64Array, b: Float64Array | null, p: Conv2dParams): Float64Array {
  const { N, C, H, W, O, KH, KW } = p;
  const s = p.stride ?? 1;
  const pad = p.padding ?? 0;
  const OH = convOutSize(H, KH, s, pad);
  const OW = convOutSize(W, KW, s, pad);
  const y = new Float64Array(N * O * OH * OW);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let acc = b ? b[o] : 0;
          for (let c = 0; c < C; c++)
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * s + kh - pad;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * s + kw - pad;
                if (iw < 0 || iw >= W) continue;
                acc += x[((n * C + c) * H + ih) * W + iw] * w[((o * C + c) * KH + kh) * KW + kw];
              }
            }
          y[((n * O + o) * OH + oh) * OW + ow] = acc;
        }
  return y;
}

export interface Conv2dGrads {
  dx: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

// For each forward term x·w: dx += dy·w, dw += dy·x; db[o] = Σ_{n,oh,ow} dy[n,o,oh,ow].
export function conv2dBackward(x: Float64Array, w: Float64Array, dy: Float64Array, p: Conv2dParams): Conv2dGrads {
  const { N, C, H, W, O, KH, KW } = p;
  const s = p.stride ?? 1;
  const pad = p.padding ?? 0;
  const OH = convOutSize(H, KH, s, pad);
  const OW = convOutSize(W, KW, s, pad);
  const dx = new Float64Array(x.length);
  const dw = new Float64Array(w.length);
  const db = new Float64Array(O);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          const g = dy[((n * O + o) * OH + oh) * OW + ow];
          db[o] += g;
          for (let c = 0; c < C; c++)
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * s + kh - pad;
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * s + kw - pad;
                if (iw < 0 || iw >= W) continue;
                const xi = ((n * C + c) * H + ih) * W + iw;
                const wi = ((o * C + c) * KH + kh) * KW + kw;
                dx[xi] += g * w[wi];
                dw[wi] += g * x[xi];
              }
            }
        }
  return { dx, dw, db };
}
