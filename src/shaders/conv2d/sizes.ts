// The sizes of a convolution, its output size, and their validation (shared by the four conv2d ops).
import { ShapeError } from '../../errors.js';

/** The variants of forward, backward-input and backward-weight (each op's registry says what each is). */
export type Conv2dVariant = 'v1' | 'v2' | 'v3' | 'v4';

/** Sizes of a convolution: x[N,C,H,W] convolved with w[O,C,KH,KW]. */
export interface Conv2dSizes {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  /** Same on both axes; default 1. */
  stride?: number;
  /** Zero padding, same on both axes; default 0. */
  padding?: number;
  /** Forces the op's variant (tests, benchmarks); by default its registry chooses. */
  variant?: Conv2dVariant;
}

/** Output height and width: floor((size + 2·padding − kernel) / stride) + 1. */
export function conv2dOutputSize(s: Conv2dSizes): { OH: number; OW: number } {
  const stride = s.stride ?? 1;
  const pad = s.padding ?? 0;
  return { OH: Math.floor((s.H + 2 * pad - s.KH) / stride) + 1, OW: Math.floor((s.W + 2 * pad - s.KW) / stride) + 1 };
}

/** Validated sizes with stride, padding and output size filled in. */
export interface Geometry extends Required<Omit<Conv2dSizes, 'stride' | 'padding' | 'variant'>> {
  S: number;
  pad: number;
  OH: number;
  OW: number;
}

/** The geometry of `s`, or a ShapeError naming `op` and the sizes. */
export function geometry(op: string, s: Conv2dSizes): Geometry {
  const S = s.stride ?? 1;
  const pad = s.padding ?? 0;
  const { OH, OW } = conv2dOutputSize(s);
  const dims = [s.N, s.C, s.H, s.W, s.O, s.KH, s.KW, S];
  if (!dims.every((d) => Number.isInteger(d) && d >= 1) || !Number.isInteger(pad) || pad < 0 || OH < 1 || OW < 1) {
    throw new ShapeError(
      `${op}: bad sizes N=${s.N} C=${s.C} H=${s.H} W=${s.W} O=${s.O} KH=${s.KH} KW=${s.KW} stride=${S} padding=${pad} ` +
        `(output ${OH}x${OW}); sizes and stride must be positive integers, padding a non-negative integer, and the ` +
        'padded input at least as large as the kernel.',
    );
  }
  return { N: s.N, C: s.C, H: s.H, W: s.W, O: s.O, KH: s.KH, KW: s.KW, S, pad, OH, OW };
}
