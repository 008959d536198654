/**
 * GPU preferences: `vast.gpuNames` as an ordered list of classes, each with its own price cap
 * (`[{name: RTX_4090, maxHourlyCost: 0.6}, {name: A100, maxHourlyCost: 1.2}]`), or the plain list
 * (`[RTX_3090, RTX_4090]`: one class, any of them, cheapest first, under vast.maxHourlyCost).
 *
 * One search covers every class (all names, the highest cap: one API call, whatever the list's
 * length); the offers are then split by class here and the first class with an offer wins, so the
 * choice moves down the list only when the better classes have no capacity.
 */
import { z } from 'zod';
import { chooseOffers, type OfferConstraints, type OfferExclusions } from './offers.js';
import type { VastOffer } from './types.js';

export const GpuNameEntrySchema = z.union([
  z.string().min(1),
  z
    .object({
      name: z.string().min(1),
      /** $/h (full dph_total) for this class; unset: vast.maxHourlyCost. Never above it. */
      maxHourlyCost: z.number().positive().optional(),
    })
    .strict(),
]);
export const GpuNamesSchema = z.array(GpuNameEntrySchema).min(1);
export type GpuNameEntry = z.infer<typeof GpuNameEntrySchema>;

export interface GpuClass {
  /** GPU names of the class (Vast spelling or underscores; families match their variants). */
  names: string[];
  maxHourlyCost: number;
  /** How the class is shown: `RTX_4090 ≤ $0.60/h`. */
  label: string;
}

const usd = (n: number) => `$${n.toFixed(2)}/h`;

/** The classes in order of preference. A plain list is one class. */
export function gpuClasses(entries: readonly GpuNameEntry[], maxHourlyCost: number): GpuClass[] {
  if (entries.every((e) => typeof e === 'string')) {
    const names = entries as string[];
    return [{ names, maxHourlyCost, label: `${names.join('/')} ≤ ${usd(maxHourlyCost)}` }];
  }
  return entries.map((e) => {
    const name = typeof e === 'string' ? e : e.name;
    const cap = Math.min(
      typeof e === 'string' ? maxHourlyCost : (e.maxHourlyCost ?? maxHourlyCost),
      maxHourlyCost,
    );
    return { names: [name], maxHourlyCost: cap, label: `${name} ≤ ${usd(cap)}` };
  });
}

/** Every GPU name of the list (what the search asks for). */
export function allGpuNames(entries: readonly GpuNameEntry[]): string[] {
  return [...new Set(entries.map((e) => (typeof e === 'string' ? e : e.name)))];
}

/** A class cap above vast.maxHourlyCost (the run's hard ceiling), as a config error text; else null. */
export function gpuCapProblem(entries: readonly GpuNameEntry[], maxHourlyCost: number): string | null {
  for (const [i, e] of entries.entries()) {
    if (typeof e !== 'string' && e.maxHourlyCost !== undefined && e.maxHourlyCost > maxHourlyCost) {
      return `vast.gpuNames[${i}] (${e.name}) maxHourlyCost ${e.maxHourlyCost} is above vast.maxHourlyCost ${maxHourlyCost}`;
    }
  }
  return null;
}

export interface PreferredOffers {
  /** The offers of the first class that has any, cheapest first; empty when no class has one. */
  offers: VastOffer[];
  /** That class's label. */
  gpuClass?: string;
}

/**
 * The offers of the most preferred class that has capacity. `base` is the search's constraints
 * (every name, the highest cap); each class re-checks every offer with its own names and cap.
 */
export function chooseByPreference(
  raw: readonly unknown[],
  base: OfferConstraints,
  classes: readonly GpuClass[],
  excluded?: OfferExclusions,
): PreferredOffers {
  for (const c of classes) {
    const offers = chooseOffers(
      raw,
      { ...base, gpuNames: c.names, maxHourlyCost: c.maxHourlyCost },
      excluded,
    );
    if (offers.length > 0) return { offers, gpuClass: c.label };
  }
  return { offers: [] };
}

/** The constraints in words, for a no-capacity message: which offer the market did not have. */
export function describeConstraints(base: OfferConstraints, classes: readonly GpuClass[]): string {
  const parts = [
    classes.map((c) => c.label).join(', then '),
    `${base.numGpus} GPU${base.numGpus === 1 ? '' : 's'}`,
    `≥ ${base.minGpuMemoryGb} GB GPU RAM`,
    `reliability ≥ ${base.minReliability}`,
    ...(base.verifiedOnly ? ['verified'] : []),
    `disk ≥ ${base.minDiskGb} GB`,
    `≥ ${base.minInetDownMbps} Mbps down`,
    ...(base.minCudaVersion !== undefined ? [`CUDA ≥ ${base.minCudaVersion}`] : []),
    ...(base.interruptible ? ['interruptible (bid)'] : []),
  ];
  return parts.join('; ');
}
