import type { Job } from 'bullmq';
import type { Config } from '../src/config/schema.js';
import type { Ledger } from '../src/ledger/ledger.js';
import type { ProductionLock } from '../src/promotion/lock.js';
import { promotionRulesOf } from '../src/promotion/custom.js';
import { promoteCandidate, type PromotionResult } from '../src/promotion/guard.js';
import type { ArtifactStore } from '../src/storage/store.js';
import { EVENTS } from '../src/telemetry/events.js';
import type { LogHub } from '../src/telemetry/logger.js';

export interface PromoteJobData {
  symbol: string;
  date: string;
  jobId: string;
  mode: 'off' | 'dry' | 'auto';
  canary: boolean;
  runId: string;
  /** The candidate was trained on synthetic market data: never published (auto becomes dry). */
  synthetic?: boolean;
}

/** The `promote` processor: the guard decides; the ledger records the decision. */
export function createPromoteProcessor(deps: {
  config: Config;
  store: ArtifactStore;
  ledger: Ledger;
  logs: LogHub;
  /** Serialises the writers of one symbol's production across processes. */
  lock: ProductionLock;
}) {
  return async (job: Job<PromoteJobData>): Promise<PromotionResult> => {
    const d = job.data;
    const log = deps.logs.forDate(d.date).child({ runId: d.runId, symbol: d.symbol, jobId: d.jobId });
    try {
      const result = await promoteCandidate({
        store: deps.store,
        symbol: d.symbol,
        date: d.date,
        jobId: d.jobId,
        mode: d.mode,
        canary: d.canary,
        maxDrawdownTolerance: deps.config.promotion.maxDrawdownTolerance,
        rules: promotionRulesOf(deps.config.promotion),
        ...(d.synthetic ? { syntheticData: true } : {}),
        lock: deps.lock,
      });
      await deps.ledger.apply(d.date, d.symbol, {
        decision: result.decision,
        ...(result.downgradedBy === 'synthetic_data' ? { reason: 'synthetic_data' } : {}),
      });
      log.info(
        {
          event: EVENTS.promotionDecided,
          decision: result.decision,
          rule: result.rule,
          mode: result.mode,
          promoted: result.promoted,
        },
        `${d.symbol} promotion: ${result.decision} (${result.reason})`,
      );
      return result;
    } catch (err) {
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) {
        await deps.ledger.apply(d.date, d.symbol, { decision: 'error' });
      }
      throw err;
    }
  };
}
