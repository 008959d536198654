/**
 * `retrain offers [--interruptible] [--json] [--symbols S --minutes M]`: the live Vast offers that
 * meet the config's constraints, cheapest all-in first, and with --symbols/--minutes what a run of
 * them would cost.
 */
import Table from 'cli-table3';
import { loadConfig } from '../config/load.js';
import { vastClientFrom } from '../compute/factory.js';
import { InputError } from '../errors.js';
import { concurrencyCap } from '../plan/concurrency.js';
import { resolveSymbols } from '../symbols/symbols.js';
import { estimateLine, estimateRun, liveOffers, type PricedOffer } from '../vast/estimate.js';
import { offerReliability, offerVerified } from '../vast/types.js';
import type { Mode } from '../config/schema.js';

export interface OffersFlags {
  config?: string;
  interruptible?: boolean;
  json?: boolean;
  symbols?: string;
  minutes?: string;
  overheadMinutes?: string;
  maxConcurrent?: string;
  mode?: string;
}

function positive(name: string, raw: string | undefined, fallback?: number): number {
  if (raw === undefined) {
    if (fallback === undefined) throw new InputError(`${name} is required with --symbols`);
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new InputError(`${name} ${JSON.stringify(raw)}: expected a number ≥ 0`);
  return n;
}

export function offerRow(p: PricedOffer): Record<string, unknown> {
  const o = p.offer;
  return {
    id: o.id,
    machine_id: o.machine_id,
    gpu: o.gpu_name,
    num_gpus: o.num_gpus,
    gpu_ram_gb: Math.round(o.gpu_ram / 100) / 10,
    dph_total: o.dph_total,
    hourly_usd: p.hourly,
    ...(p.bid !== undefined ? { bid: p.bid } : {}),
    reliability: offerReliability(o),
    cuda: o.cuda_max_good,
    inet_down_mbps: o.inet_down,
    inet_up_mbps: (o as { inet_up?: number }).inet_up ?? null,
    verified: offerVerified(o),
  };
}

export async function offersCommand(flags: OffersFlags): Promise<number> {
  const config = loadConfig({ file: flags.config });
  const interruptible = flags.interruptible ?? config.vast.interruptible;
  let est: { symbols: number; minutes: number; overhead: number; cap: number } | undefined;
  if (flags.symbols !== undefined || flags.minutes !== undefined) {
    if (flags.symbols === undefined) throw new InputError('--minutes needs --symbols');
    const symbols = resolveSymbols(flags.symbols).length;
    const minutes = positive('--minutes', flags.minutes);
    const overhead = positive('--overhead-minutes', flags.overheadMinutes, 2);
    const mode = (flags.mode ?? config.train.mode) as Mode;
    if (!['sequential', 'parallel', 'hybrid'].includes(mode)) throw new InputError(`--mode ${mode}: unknown`);
    const cap = concurrencyCap({
      mode,
      symbols,
      maxInstances: config.train.maxInstances,
      maxConcurrent:
        flags.maxConcurrent !== undefined
          ? positive('--max-concurrent', flags.maxConcurrent)
          : config.train.maxConcurrent,
      gpu: true,
    });
    est = { symbols, minutes, overhead, cap };
  }
  const client = vastClientFrom(config);
  const { offers } = await liveOffers(client, config, interruptible);
  const estimate = est
    ? estimateRun({
        prices: offers.map((o) => o.hourly),
        symbols: est.symbols,
        minutesPerSymbol: est.minutes,
        overheadMinutes: est.overhead,
        cap: est.cap,
        ...(config.vast.pool.enabled ? { pool: { slotsPerHost: config.vast.pool.slotsPerHost } } : {}),
      })
    : undefined;
  if (flags.json) {
    process.stdout.write(
      JSON.stringify(
        { interruptible, offers: offers.map(offerRow), ...(est ? { estimate: estimate ?? null } : {}) },
        null,
        2,
      ) + '\n',
    );
    return 0;
  }
  if (offers.length === 0) {
    process.stdout.write(
      `no ${interruptible ? 'interruptible ' : ''}offer meets the constraints right now\n`,
    );
  } else {
    const t = new Table({
      head: ['id', 'gpu', 'VRAM GB', '$/h all-in', 'reliability', 'CUDA', 'inet down/up Mb/s', 'verified'],
      style: { head: [], border: [], compact: true },
    });
    for (const p of offers) {
      const r = offerRow(p);
      t.push([
        String(r.id),
        `${String(r.num_gpus)}× ${String(r.gpu)}`,
        String(r.gpu_ram_gb),
        `$${p.hourly.toFixed(4)}${p.bid !== undefined ? ` (bid ${p.bid})` : ''}`,
        Number(r.reliability).toFixed(3),
        String(r.cuda),
        `${String(r.inet_down_mbps)}/${String(r.inet_up_mbps ?? '?')}`,
        r.verified ? 'yes' : 'no',
      ]);
    }
    process.stdout.write(
      `${offers.length} ${interruptible ? 'interruptible ' : ''}offers meet the constraints, cheapest first\n${t.toString()}\n`,
    );
  }
  if (est) process.stdout.write(estimateLine(estimate ?? null, est.minutes) + '\n');
  return 0;
}
