// The lesson's claims about what batch norm buys, measured: "faster convergence, allowing for higher learning
// rates … It also reduces the sensitivity to the initialization of the network parameters." The seed's CNN is
// trained over a small grid of learning rates and initialisers, with batch norm after each block's ReLU (the
// seed's), before it (right after the convolution, as Ioffe and Szegedy), and without batch norm; every cell
// uses the same digits, split, seed, batches and dropout masks. Per cell: validation accuracy after each
// epoch, epochs to reach 90%, best accuracy, and whether the loss diverged (became NaN or infinite).
import { loadEmbeddedDigits } from '../data/dataset.js';
import { GpuDataset } from '../data/gpu-data.js';
import { splitTrainVal } from '../data/split.js';
import type { Gpu } from '../gpu/runtime.js';
import type { InitName } from '../nn/init.js';
import type { Figure, LegendEntry, Panel } from '../plot/figure.js';
import type { BnPosition } from '../train/model.js';
import { SEED_TRAINING, Trainer } from '../train/trainer.js';

export type BnVariant = BnPosition | 'none';
export const BN_VARIANTS: readonly BnVariant[] = ['after', 'before', 'none'];

export interface BnBenefitsOptions {
  seed: number;
  lrs: number[];
  inits: InitName[];
  variants: BnVariant[];
  epochs: number;
  /** Embedded digits used (80% train, 20% validation). */
  limit: number;
  /** The accuracy whose epoch is reported. */
  target: number;
}

export const BN_BENEFITS_DEFAULTS: BnBenefitsOptions = {
  seed: 42,
  lrs: [0.01, 0.1, 0.5],
  inits: ['pytorch', 'normal', 'xavier-normal'],
  variants: [...BN_VARIANTS],
  epochs: 8,
  limit: 4000,
  target: 0.9,
};
export const BN_BENEFITS_QUICK: BnBenefitsOptions = { ...BN_BENEFITS_DEFAULTS, epochs: 3, limit: 1500 };

export interface Cell {
  lr: number;
  init: InitName;
  variant: BnVariant;
  /** Validation accuracy after each epoch (up to divergence). */
  valAcc: number[];
  trainLoss: number[];
  /** First epoch with validation accuracy ≥ target; null: never. */
  epochsToTarget: number | null;
  bestAcc: number;
  diverged: boolean;
}

export interface BnBenefitsResult {
  options: BnBenefitsOptions;
  trainSamples: number;
  valSamples: number;
  cells: Cell[];
}

export async function runBnBenefits(gpu: Gpu, o: BnBenefitsOptions, log: (line: string) => void = () => {}): Promise<BnBenefitsResult> {
  const ds = loadEmbeddedDigits(o.limit);
  const split = splitTrainVal(ds.count, 0.2, o.seed);
  const data = GpuDataset.upload(gpu, ds, 'train');
  const cells: Cell[] = [];
  for (const init of o.inits)
    for (const lr of o.lrs)
      for (const variant of o.variants) {
        const trainer = new Trainer(gpu, {
          ...SEED_TRAINING,
          epochs: o.epochs,
          patience: o.epochs,
          seed: o.seed,
          lr,
          init,
          batchNorm: variant !== 'none',
          bnPosition: variant === 'none' ? undefined : variant,
        });
        const cell: Cell = { lr, init, variant, valAcc: [], trainLoss: [], epochsToTarget: null, bestAcc: 0, diverged: false };
        for (let epoch = 1; epoch <= o.epochs; epoch++) {
          const loss = await trainer.trainEpoch({ data, indices: split.train }, epoch);
          const { loss: valLoss, accuracy } = await trainer.evaluate({ data, indices: split.val });
          if (!Number.isFinite(loss) || !Number.isFinite(valLoss)) {
            cell.diverged = true;
            break;
          }
          cell.trainLoss.push(loss);
          cell.valAcc.push(accuracy);
          if (cell.epochsToTarget === null && accuracy >= o.target) cell.epochsToTarget = epoch;
        }
        cell.bestAcc = Math.max(0, ...cell.valAcc);
        for (const t of trainer.model.stateDict().values()) t.dispose();
        cells.push(cell);
        log(cellLine(cell, o.target));
      }
  data.dispose();
  return { options: o, trainSamples: split.train.length, valSamples: split.val.length, cells };
}

export const VARIANT_LABEL: Record<BnVariant, string> = { after: 'BN after ReLU', before: 'BN before ReLU', none: 'no BN' };
const VARIANT_COLOR: Record<BnVariant, string> = { after: '#1f77b4', before: '#2ca02c', none: '#d62728' };
const INIT_LABEL: Partial<Record<InitName, string>> = { pytorch: 'PyTorch default', normal: 'N(0, 1)', 'xavier-normal': 'Xavier normal' };
const initLabel = (i: InitName) => INIT_LABEL[i] ?? i;

export function cellLine(c: Cell, target: number): string {
  const acc = c.valAcc.map((a) => `${(100 * a).toFixed(1)}`).join(' ');
  return (
    `${initLabel(c.init).padEnd(16)} lr ${String(c.lr).padEnd(5)} ${VARIANT_LABEL[c.variant].padEnd(15)} ` +
    `to ${Math.round(100 * target)}%: ${c.epochsToTarget === null ? 'never' : `epoch ${c.epochsToTarget}`}`.padEnd(15) +
    `  best ${(100 * c.bestAcc).toFixed(1).padStart(5)}%${c.diverged ? '  DIVERGED' : ''}  [${acc}]`
  );
}

export function bnBenefitsFigure(r: BnBenefitsResult): Figure {
  const o = r.options;
  const epochs = Array.from({ length: o.epochs }, (_, i) => i + 1);
  const panels: Panel[] = [];
  for (const init of o.inits)
    for (const lr of o.lrs) {
      const cells = r.cells.filter((c) => c.init === init && c.lr === lr);
      panels.push({
        title: `${initLabel(init)}, lr ${lr}`,
        xLabel: 'Epoch',
        yLabel: 'Validation accuracy',
        x: { integer: true, min: 0.5, max: o.epochs + 0.5 },
        y: { min: 0, max: 1 },
        grid: true,
        layers: [
          { kind: 'hline', value: o.target, color: '#888888', dash: 'dotted' },
          ...cells.map((c) => ({
            kind: 'line' as const,
            x: epochs.slice(0, c.valAcc.length),
            y: c.valAcc,
            color: VARIANT_COLOR[c.variant],
            marker: 'o' as const,
            markerSize: 2.5,
          })),
          // A diverged run ends in a cross at the epoch whose loss was no longer finite.
          ...cells
            .filter((c) => c.diverged)
            .map((c) => ({
              kind: 'points' as const,
              x: [c.valAcc.length + 1],
              y: [0.03],
              marker: 'x' as const,
              color: VARIANT_COLOR[c.variant],
              size: 6,
            })),
        ],
      });
    }
  const legend: LegendEntry[] = [
    ...o.variants.map((v) => ({ label: VARIANT_LABEL[v], color: VARIANT_COLOR[v], marker: 'o' as const, swatch: 'line' as const })),
    { label: `${Math.round(100 * o.target)}% accuracy`, color: '#888888', dash: 'dotted', swatch: 'line' },
    { label: 'diverged (NaN loss)', color: '#555555', marker: 'x' },
  ];
  return {
    width: 1250,
    height: 360 * o.inits.length + 90,
    title: `The seed's CNN with and without batch norm: ${r.trainSamples} training digits, same split, seed and batches in every cell`,
    legend,
    cols: o.lrs.length,
    shareX: true,
    shareY: true,
    panels,
  };
}

/** The table: one row per cell. */
export function bnBenefitsTable(r: BnBenefitsResult): { header: string[]; rows: string[][] } {
  return {
    header: ['initialiser', 'lr', 'batch norm', `epochs to ${Math.round(100 * r.options.target)}%`, 'best accuracy', 'diverged'],
    rows: r.cells.map((c) => [
      initLabel(c.init),
      String(c.lr),
      VARIANT_LABEL[c.variant],
      c.epochsToTarget === null ? 'never' : String(c.epochsToTarget),
      `${(100 * c.bestAcc).toFixed(1)}%`,
      c.diverged ? 'yes' : 'no',
    ]),
  };
}

/** The claims as sentences of measured numbers: per batch-norm column, over the grid. */
export function bnBenefitsSummary(r: BnBenefitsResult): string[] {
  const o = r.options;
  const pct = (a: number) => `${(100 * a).toFixed(1)}%`;
  const top = o.lrs[o.lrs.length - 1];
  const mean = (cs: Cell[]) => cs.reduce((s, c) => s + c.bestAcc, 0) / Math.max(1, cs.length);
  const out = [
    `${r.cells.length} runs of ${o.epochs} epochs on ${r.trainSamples} digits (${r.valSamples} validation), every cell from the same split, seed and batches:`,
  ];
  for (const v of o.variants) {
    const cells = r.cells.filter((c) => c.variant === v);
    const reached = cells.filter((c) => c.epochsToTarget !== null);
    const spread = o.lrs.map((lr) => {
      const accs = cells.filter((c) => c.lr === lr).map((c) => c.bestAcc);
      return `${(100 * (Math.max(...accs) - Math.min(...accs))).toFixed(1)}`;
    });
    out.push(
      `${VARIANT_LABEL[v]}: reached ${Math.round(100 * o.target)}% in ${reached.length} of ${cells.length} cells` +
        (reached.length ? ` (the first after ${Math.min(...reached.map((c) => c.epochsToTarget!))} epochs)` : '') +
        `, diverged in ${cells.filter((c) => c.diverged).length}; mean best accuracy ${pct(mean(cells))}, at lr ${top} ${pct(mean(cells.filter((c) => c.lr === top)))}; ` +
        `best accuracy spread across initialisers ${spread.join(' / ')} points at lr ${o.lrs.join(' / ')}.`,
    );
  }
  return out;
}
