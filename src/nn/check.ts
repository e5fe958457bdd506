// Argument checks shared by the ops and the layers: a value of the wrong kind fails at once with the op (or
// layer), the argument and the value, instead of surfacing later as a shape of Infinity or a NaN.
import { DataError, ShapeError } from '../errors.js';

/** An integer ≥ `min` (a size, a stride, a channel count), or a ShapeError naming `where` and `name`. */
export function expectInteger(where: string, name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
    const want = min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer >= ${min}`;
    throw new ShapeError(`${where}: ${name} must be ${want}, got ${describeValue(v)}`);
  }
  return v;
}

/** A finite number in [lo, hi], or a DataError naming `where` and `name`. */
export function expectNumber(where: string, name: string, v: unknown, lo = -Infinity, hi = Infinity): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi) {
    const range = lo > -Infinity && hi < Infinity ? ` in [${lo}, ${hi}]` : lo > -Infinity ? ` >= ${lo}` : hi < Infinity ? ` <= ${hi}` : '';
    throw new DataError(`${where}: ${name} must be a finite number${range}, got ${describeValue(v)}`);
  }
  return v;
}

/** A value as a message shows it: numbers and strings as written, other things by their kind. */
export function describeValue(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  return `a ${typeof v === 'object' ? (v.constructor?.name ?? 'object') : typeof v}`;
}
