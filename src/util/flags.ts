// A small declarative command-line flag parser: each program (a webgpu-nn command, a benchmark) describes
// its flags once, and gets parsing, validation with precise errors (naming the flag, the expectation and the
// bad value) and its --help text from that one description.
import { UsageError } from '../errors.js';

export interface FlagSpec {
  type: 'int' | 'float' | 'string' | 'bool';
  default?: unknown;
  /** Inclusive bounds for numbers; `exclusiveMin`/`exclusiveMax` make a bound strict (e.g. --lr > 0). */
  min?: number;
  max?: number;
  exclusiveMin?: boolean;
  exclusiveMax?: boolean;
  help: string;
  choices?: readonly string[];
  /** A string flag that may be given many times; its value is the list of them (default []). */
  repeat?: boolean;
}
export type FlagsSpec = Record<string, FlagSpec>;

/**
 * The program whose flags these are: `name` begins every error, `usage` is how it is run (in the --help
 * text and the hint to run it). A command name `c` stands for `webgpu-nn c`, both name and usage.
 */
export type FlagsProgram = string | { name: string; usage: string };
const programOf = (p: FlagsProgram) => (typeof p === 'string' ? { name: `webgpu-nn ${p}`, usage: `webgpu-nn ${p}` } : p);

type CamelCase<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<CamelCase<T>>}` : S;
type FlagValue<F extends FlagSpec> = F['type'] extends 'int' | 'float'
  ? number
  : F['type'] extends 'bool'
    ? boolean
    : F extends { repeat: true }
      ? string[]
      : F['choices'] extends readonly (infer C)[]
        ? C
        : string;
/** Parsed flags keyed by camelCase name; a flag with no default (other than a bool) may be undefined. */
export type ParsedFlags<S extends FlagsSpec> = {
  -readonly [K in keyof S & string as CamelCase<K>]: S[K] extends { default: NonNullable<unknown> } | { type: 'bool' } | { repeat: true }
    ? FlagValue<S[K]>
    : FlagValue<S[K]> | undefined;
} & {
  _: string[];
  help: boolean;
  /** The flags given on the command line (by their spec names), as opposed to those left at their defaults. */
  given: ReadonlySet<string>;
};

export const camelCase = (name: string) => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** "an integer >= 1", "a number > 0 and <= 1", "one of sgd, adam". */
function describe(f: FlagSpec): string {
  if (f.choices) return `one of ${f.choices.join(', ')}`;
  if (f.type === 'bool') return 'true or false';
  if (f.type === 'string') return 'a value';
  const range = [
    f.min !== undefined ? `${f.exclusiveMin ? '>' : '>='} ${f.min}` : '',
    f.max !== undefined ? `${f.exclusiveMax ? '<' : '<='} ${f.max}` : '',
  ]
    .filter(Boolean)
    .join(' and ');
  return `${f.type === 'int' ? 'an integer' : 'a number'}${range ? ` ${range}` : ''}`;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * Parses `--flag value`, `--flag=value`, `--flag` / `--no-flag` for bools, `-h`/`--help`, and
 * positional arguments (returned in `_`; everything after `--` is positional).
 */
export function parseFlags<const S extends FlagsSpec>(argv: readonly string[], spec: S, program: FlagsProgram): ParsedFlags<S> {
  const { name: prefix, usage } = programOf(program);
  const fail = (msg: string) => new UsageError(`${prefix}: ${msg}. Run "${usage} --help" for the list of flags.`);
  const positional: string[] = [];
  const given = new Set<string>();
  const out: Record<string, unknown> = { _: positional, help: false, given };
  for (const [name, f] of Object.entries(spec)) out[camelCase(name)] = f.type === 'bool' ? (f.default ?? false) : f.repeat ? [] : f.default;
  const has = (name: string) => Object.hasOwn(spec, name);

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '--help' || arg === '-h') {
      out.help = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : arg;
    const inline = eq < 0 ? undefined : arg.slice(eq + 1);

    if (!has(name) && name.startsWith('no-') && has(name.slice(3)) && spec[name.slice(3)].type === 'bool') {
      if (inline !== undefined) throw fail(`--${name} does not take a value`);
      out[camelCase(name.slice(3))] = false;
      given.add(name.slice(3));
      continue;
    }
    if (!arg.startsWith('--') || !has(name)) {
      const bare = name.replace(/^-+/, '');
      const best = Object.keys(spec)
        .map((k) => [k, editDistance(bare, k)] as const)
        .sort((a, b) => a[1] - b[1])[0];
      const hint = best && best[1] <= Math.max(2, bare.length / 3) ? ` (did you mean --${best[0]}?)` : '';
      throw fail(`unknown flag ${arg.startsWith('--') ? `--${name}` : arg}${hint}`);
    }
    const f = spec[name];
    given.add(name);
    if (f.type === 'bool') {
      if (inline === undefined) {
        out[camelCase(name)] = true;
        continue;
      }
      const v = inline.toLowerCase();
      if (!['true', 'false', '1', '0', 'yes', 'no'].includes(v)) throw fail(`--${name}: expected true or false, got "${inline}"`);
      out[camelCase(name)] = v === 'true' || v === '1' || v === 'yes';
      continue;
    }
    let raw = inline;
    if (raw === undefined) {
      const next = argv[i + 1];
      // A following flag means the value was forgotten; a negative number is still a value.
      if (next === undefined || next.startsWith('--') || next === '-h')
        throw fail(`--${name}: expected ${describe(f)}, but no value was given`);
      raw = next;
      i++;
    }
    const value = convert(name, f, raw, fail);
    if (f.repeat) (out[camelCase(name)] as unknown[]).push(value);
    else out[camelCase(name)] = value;
  }
  return out as ParsedFlags<S>;
}

function convert(name: string, f: FlagSpec, raw: string, fail: (msg: string) => UsageError): string | number {
  const bad = () => fail(`--${name}: expected ${describe(f)}, got "${raw}"`);
  if (f.type === 'string') {
    if (raw === '' || (f.choices && !f.choices.includes(raw))) throw bad();
    return raw;
  }
  const v = raw.trim() === '' ? NaN : Number(raw);
  // Integers beyond 2^53 are not exact in JavaScript: 9007199254740993 would silently become ...992.
  if (!Number.isFinite(v) || (f.type === 'int' && !Number.isSafeInteger(v))) throw bad();
  if (f.min !== undefined && (f.exclusiveMin ? v <= f.min : v < f.min)) throw bad();
  if (f.max !== undefined && (f.exclusiveMax ? v >= f.max : v > f.max)) throw bad();
  return v;
}

/**
 * A program's flags, or null once its --help text is printed (the caller then exits 0). Positional arguments
 * are an error (its message followed by `hint`) unless `positionals` is set.
 */
export function parseFlagsOrHelp<const S extends FlagsSpec>(
  argv: readonly string[],
  spec: S,
  program: FlagsProgram,
  summary: string,
  opts: { positionals?: boolean; hint?: string } = {},
): ParsedFlags<S> | null {
  const flags = parseFlags(argv, spec, program);
  if (flags.help) {
    console.log(formatHelp(program, spec, summary));
    return null;
  }
  if (!opts.positionals && flags._.length) {
    throw new UsageError(`${programOf(program).name}: unexpected argument "${flags._[0]}"${opts.hint ?? ''}`);
  }
  return flags;
}

/** The --help text: usage line, summary, and one aligned line per flag with its type, default and range. */
export function formatHelp(program: FlagsProgram, spec: FlagsSpec, summary: string): string {
  const rows = Object.entries(spec).map(([name, f]) => {
    const left =
      f.type === 'bool'
        ? f.default === true
          ? `--[no-]${name}`
          : `--${name}`
        : `--${name} <${f.choices ? f.choices.join('|') : f.type === 'string' ? 'value' : f.type}>`;
    const notes: string[] = [];
    if (f.default !== undefined && !(f.type === 'bool' && f.default === false)) notes.push(`default: ${f.default}`);
    if ((f.type === 'int' || f.type === 'float') && (f.min !== undefined || f.max !== undefined))
      notes.push(describe(f).replace(/^an? \w+ /, ''));
    if (f.repeat) notes.push('may be repeated');
    return [left, notes.length ? `${f.help} (${notes.join('; ')})` : f.help];
  });
  rows.push(['-h, --help', 'Show this help.']);
  const width = Math.min(30, Math.max(...rows.map(([l]) => l.length)) + 2);
  const lines = rows.map(([l, r]) => (l.length + 2 > width ? `  ${l}\n  ${' '.repeat(width)}${r}` : `  ${l.padEnd(width)}${r}`));
  return `Usage: ${programOf(program).usage} [flags]\n\n${summary}\n\nFlags:\n${lines.join('\n')}\n`;
}
