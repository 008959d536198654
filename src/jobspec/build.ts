import { sha256Hex } from '../util/hash.js';
import { stableStringify } from '../util/stableJson.js';
import type { CostEntry } from '../data/costs.js';
import type { Driver, JobSpec, PromoteMode, RecipeRef } from './types.js';

export interface JobSpecInput {
  symbol: string;
  date: string;
  featureset: string;
  driver: Driver;
  recipe: RecipeRef;
  dataset: { key: string; sha256: string; bytes: number };
  costs: CostEntry;
  timeoutMinutes: number;
  retries: number;
  promote: PromoteMode;
  canary: boolean;
  interruptible?: boolean;
  dataSource?: 'synthetic';
  artifactsId?: string;
}

/** Ids contain no ':' (BullMQ forbids it) and are never all digits. */
export function trainJobId(symbol: string, date: string): string {
  return `train__${symbol}__${date}`;
}

export function promoteJobId(symbol: string, date: string): string {
  return `promote__${symbol}__${date}`;
}

/** Canary and live runs never publish to production: `auto` becomes `dry`. */
export function effectivePromoteMode(mode: PromoteMode, canary: boolean): PromoteMode {
  return canary && mode === 'auto' ? 'dry' : mode;
}

/** Builds the spec; deterministic (see JobSpec). */
export function buildJobSpec(input: JobSpecInput): JobSpec {
  return {
    v: 1,
    jobId: trainJobId(input.symbol, input.date),
    symbol: input.symbol,
    date: input.date,
    featureset: input.featureset,
    driver: input.driver,
    recipe: input.recipe,
    dataset: input.dataset,
    costs: input.costs,
    timeoutMinutes: input.timeoutMinutes,
    retries: input.retries,
    promote: effectivePromoteMode(input.promote, input.canary),
    canary: input.canary,
    ...(input.interruptible ? { interruptible: true as const } : {}),
    ...(input.dataSource ? { dataSource: input.dataSource } : {}),
    ...(input.artifactsId && input.artifactsId !== trainJobId(input.symbol, input.date)
      ? { artifactsId: input.artifactsId }
      : {}),
  };
}

/** The `ml-artifacts/<id>/` folder of a spec's run (run-scoped for a forced re-run). */
export function artifactsId(spec: Pick<JobSpec, 'jobId' | 'artifactsId'>): string {
  return spec.artifactsId ?? spec.jobId;
}

/** The canonical bytes of a spec (sorted keys). */
export function serializeJobSpec(spec: JobSpec): string {
  return stableStringify(spec);
}

/** Content hash of a spec: identical inputs → identical hash. */
export function jobSpecHash(spec: JobSpec): string {
  return sha256Hex(serializeJobSpec(spec));
}
