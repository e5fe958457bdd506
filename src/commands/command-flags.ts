// The flags every command handles alike: parsing (or printing --help), stray arguments, and --model, the
// trained model that evaluate and predict read.
import { UsageError } from '../errors.js';
import { type FlagSpec, type FlagsSpec, type ParsedFlags, formatHelp, parseFlags } from '../util/flags.js';

/**
 * `webgpu-nn <command>`'s flags, or null once its --help text is printed. Positional arguments are an error
 * (followed by `hint`) unless `positionals` is set.
 */
export function commandFlags<const S extends FlagsSpec>(
  argv: readonly string[],
  command: string,
  spec: S,
  summary: string,
  opts: { positionals?: boolean; hint?: string } = {},
): ParsedFlags<S> | null {
  const flags = parseFlags(argv, spec, command);
  if (flags.help) {
    console.log(formatHelp(command, spec, summary));
    return null;
  }
  if (!opts.positionals && flags._.length) throw new UsageError(`webgpu-nn ${command}: unexpected argument "${flags._[0]}"${opts.hint ?? ''}`);
  return flags;
}

/** --model DIR: a `webgpu-nn train` output directory, read by `loadModel`. */
export const MODEL_FLAG = { type: 'string', help: 'a webgpu-nn train output directory (or its best.safetensors)' } as const satisfies FlagSpec;

/** The --model value, which the command cannot do without. */
export function requireModel(model: string | undefined, command: string): string {
  if (!model) throw new UsageError(`webgpu-nn ${command}: --model DIR is required (a webgpu-nn train output directory)`);
  return model;
}
