// `webgpu-nn bn-benefits`: the seed's CNN with and without batch norm over learning rates and initialisers
// (src/lesson/bn-benefits.ts).
import { UsageError } from '../errors.js';
import { adapterSummary } from '../gpu/device.js';
import {
  BN_BENEFITS_DEFAULTS,
  BN_BENEFITS_QUICK,
  BN_VARIANTS,
  type BnVariant,
  bnBenefitsFigure,
  bnBenefitsSummary,
  runBnBenefits,
} from '../lesson/bn-benefits.js';
import { openExperimentDir, writeFigure, writeJson } from '../lesson/output.js';
import { INITIALIZERS, type InitName } from '../nn/init.js';
import { type FlagsSpec, parseFlagsOrHelp } from '../util/flags.js';
import { seedFlag } from './seed-flag.js';
import { withGpu } from './with-gpu.js';

const D = BN_BENEFITS_DEFAULTS,
  Q = BN_BENEFITS_QUICK;
const FLAGS = {
  out: { type: 'string', default: 'runs/bn-benefits', help: 'directory for bn-benefits.png, .svg and .json' },
  seed: seedFlag(D.seed, 'seed of the split, weights, batches and dropout (the same in every cell)'),
  quick: {
    type: 'bool',
    default: false,
    help: `${Q.epochs} epochs on ${Q.limit} digits per cell (about a minute) instead of ${D.epochs} on ${D.limit}`,
  },
  epochs: { type: 'int', min: 1, max: 100, help: 'epochs per cell' },
  limit: { type: 'int', min: 100, max: 10000, help: 'embedded digits used (80% train, 20% validation)' },
  lrs: { type: 'string', default: D.lrs.join(','), help: 'learning rates, comma-separated' },
  inits: { type: 'string', default: D.inits.join(','), help: `initialisers, comma-separated (${INITIALIZERS.join(', ')})` },
  variants: { type: 'string', default: D.variants.join(','), help: `batch-norm columns, comma-separated (${BN_VARIANTS.join(', ')})` },
} as const satisfies FlagsSpec;

function list<T extends string>(flag: string, value: string, allowed: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim());
  const bad = items.filter((s) => !(allowed as readonly string[]).includes(s));
  if (bad.length || !items.length)
    throw new UsageError(`webgpu-nn bn-benefits: --${flag}: unknown ${bad.join(', ')}; choose from ${allowed.join(', ')}`);
  return items as T[];
}

export async function bnBenefitsCommand(argv: string[]): Promise<number> {
  const flags = parseFlagsOrHelp(
    argv,
    FLAGS,
    'bn-benefits',
    "The seed's CNN trained with batch norm after the ReLU, before it, and without, over a grid of learning rates and initialisers.",
  );
  if (!flags) return 0;
  const lrs = flags.lrs.split(',').map((s) => Number(s));
  if (lrs.some((v) => !(v > 0)))
    throw new UsageError(`webgpu-nn bn-benefits: --lrs: expected positive numbers separated by commas, got "${flags.lrs}"`);
  const base = flags.quick ? Q : D;
  const options = {
    ...base,
    seed: flags.seed,
    epochs: flags.epochs ?? base.epochs,
    limit: flags.limit ?? base.limit,
    lrs,
    inits: list<InitName>('inits', flags.inits, INITIALIZERS),
    variants: list<BnVariant>('variants', flags.variants, BN_VARIANTS),
  };
  // Checked and locked first: the grid's minutes of training must not be lost to a bad --out.
  const out = openExperimentDir(flags.out, 'bn-benefits', { figures: ['bn-benefits'], json: ['bn-benefits'] });
  return withGpu(async (gpu) => {
    console.log(`adapter: ${adapterSummary(gpu.adapter)}`);
    const result = await runBnBenefits(gpu, options, (line) => console.log(line));
    for (const line of bnBenefitsSummary(result)) console.log(line);
    writeFigure(out, 'bn-benefits', bnBenefitsFigure(result));
    writeJson(out, 'bn-benefits', { adapter: gpu.adapter, ...result });
    console.log(`wrote ${out.file('bn-benefits.png')} (and .svg, .json)`);
    return 0;
  }).finally(() => out.release());
}
