/**
 * Money: booking what a lease cost (per-second billing from its start) to the symbol and the run,
 * giving a host back, and the run's budget checked before each rental.
 */
import type { LeaseInfo } from '../../compute/provider.js';
import { leaseCostUsd } from '../../compute/reap.js';
import { asRetrainError, BudgetExceededError } from '../../errors.js';
import { EVENTS } from '../../telemetry/events.js';
import type { AttemptContext } from './context.js';
import { costBooked } from './record.js';

/** Books what a lease cost to the symbol and the run; the lease is then no longer the attempt's. */
export async function bookCost(ctx: AttemptContext, info: LeaseInfo): Promise<number> {
  const cost = leaseCostUsd(info, ctx.now());
  if (cost > 0) await costBooked(ctx, cost);
  await ctx.deps.spend?.book(ctx.runId, info, cost);
  if (ctx.facts.lease?.id === info.id && ctx.facts.lease.driver === info.driver)
    await ctx.save({ lease: undefined });
  return cost;
}

/**
 * Gives the host back (idempotent) and books its cost once. `reusable`: the host is sound for
 * another symbol (a pooled instance is handed on rather than destroyed).
 */
export async function releaseLease(
  ctx: AttemptContext,
  info: LeaseInfo,
  reason = 'released',
  reusable = reason === 'released',
): Promise<void> {
  await ctx.provider.release(info, { reusable });
  const cost = await bookCost(ctx, info);
  // A pooled instance may live on for the next symbol (the pool logs what became of it).
  const event = info.pool ? EVENTS.instanceReleased : EVENTS.instanceDestroyed;
  ctx.log.info(
    { event, driver: info.driver, instance: info.id, costUsd: cost, reason, reusable },
    `${ctx.spec.symbol} released ${info.driver} ${info.id}`,
  );
}

/** Provisioning gave back an instance that failed to boot: its time is booked all the same. */
export async function bookBootFailure(ctx: AttemptContext, info: LeaseInfo): Promise<void> {
  const cost = await bookCost(ctx, info);
  ctx.log.info(
    {
      event: EVENTS.instanceDestroyed,
      driver: info.driver,
      instance: info.id,
      costUsd: cost,
      reason: 'boot_failed',
      ...(info.bootFailure ? { detail: info.bootFailure } : {}),
    },
    `${ctx.spec.symbol} gave back ${info.driver} ${info.id}: it failed to boot`,
  );
}

/**
 * At the attempt's end: gives back whatever it still holds, including a lease recorded before a
 * crash that could not be reattached to; never on a hand-over. A failure is logged (the reaper
 * destroys the host once its job has ended).
 */
export async function releaseHeld(ctx: AttemptContext): Promise<void> {
  const held = ctx.lease?.info ?? ctx.facts.lease;
  if (held && !ctx.cancelled) {
    await releaseLease(ctx, held, 'attempt_failed', ctx.hostSound).catch((e) =>
      ctx.log.error(
        { event: EVENTS.instanceReleaseFailed, instance: held.id, err: asRetrainError(e).message },
        `${ctx.spec.symbol} could not release ${held.driver} ${held.id}; the reaper will`,
      ),
    );
  }
  if (ctx.lease) await ctx.lease.transport.close().catch(() => undefined);
}

/** `--budget-usd`: no new rental once the run has spent its budget. */
export async function checkBudget(ctx: AttemptContext): Promise<void> {
  const budget = ctx.job.data.budgetUsd;
  if (budget === undefined || !ctx.deps.spend) return;
  const spent = await ctx.deps.spend.spent(ctx.runId, ctx.now());
  if (spent >= budget) {
    throw new BudgetExceededError(
      `${ctx.spec.symbol}: run ${ctx.runId} has spent $${spent.toFixed(4)} of its $${budget} budget; no new rental`,
    );
  }
}
