import type { CostEntry } from '../data/costs.js';

export type Driver = 'local' | 'ssh' | 'vast';
export type Mode = 'sequential' | 'parallel' | 'hybrid';
export type PromoteMode = 'off' | 'dry' | 'auto';

/**
 * Everything one symbol's training needs, fixed at plan time. Deterministic: the same inputs give
 * byte-identical JSON (keys are serialised sorted) and the same jobId. It holds no wall clock but
 * the requested date.
 */
export interface JobSpec {
  v: 1;
  /** `train__<SYMBOL>__<YYYYMMDD>`: also the BullMQ job id and the `ml-artifacts/<jobId>/` key. */
  jobId: string;
  symbol: string;
  /** YYYYMMDD, the trading date the model is trained for. */
  date: string;
  featureset: string;
  driver: Driver;
  recipe: RecipeRef;
  dataset: { key: string; sha256: string; bytes: number };
  costs: CostEntry;
  timeoutMinutes: number;
  retries: number;
  /** Effective promotion mode (canary/live already applied: never `auto` then). */
  promote: PromoteMode;
  canary: boolean;
  /**
   * Driver vast: rent interruptible (bid) instances (`--interruptible`, or config
   * `vast.interruptible`). Present only when true, so other specs keep their bytes.
   */
  interruptible?: true;
  /**
   * The features were built from synthetic (invented) market data (`--synthetic`): the promotion
   * guard never publishes such a candidate. Present only then, so other specs keep their bytes.
   */
  dataSource?: 'synthetic';
  /**
   * Where this run's artifacts go when not `ml-artifacts/<jobId>/`: a `--force` re-run of a date
   * whose artifacts are already stored writes under `<jobId>__r<N>` and keeps the earlier run's.
   */
  artifactsId?: string;
}

export interface RecipeRef {
  name: string;
  version: number;
  /** What the user named: a shipped recipe name or an absolute path to a recipe file/dir. */
  ref: string;
  /** SHA-256 over the recipe file and the files shipped with it. */
  sha256: string;
  /** Variables after CLI overrides (validated: no shell metacharacters). */
  vars: Record<string, string>;
}
