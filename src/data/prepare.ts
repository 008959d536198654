/**
 * Preparing a symbol's features for a date before anything is rented: use the stored features, or
 * (`--ensure-features`) build them from the stored market days up to the date. A missing day is
 * `no_data`, an invalid one `bad_data`; synthetic bars are generated only when asked (`--synthetic`)
 * and everything built from them says `source: synthetic`. With `write: false` (`--dry-run`) the
 * same answer is computed and nothing is stored.
 */
import { InputError } from '../errors.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { sha256Hex } from '../util/hash.js';
import { utcDay } from './contract.js';
import { buildFeaturesV1, featuresToCsv, WARMUP_BARS } from './features.js';
import { daysBefore, readMarketDay, storeMarketDay, storedDays, type DataSource } from './market.js';
import { checkReadiness, KNOWN_FEATURESETS } from './readiness.js';
import { generateOhlcv, type OhlcvBar } from './synthetic.js';

/** Days of market data (ending with the date) the features are built from. */
export const LOOKBACK_DAYS = 120;

/** Where a features file's data came from; `unknown` for features stored by hand. */
export type FeaturesSource = DataSource | 'unknown';

export interface FeaturesMeta {
  source: DataSource;
  /** The market days used, oldest first. */
  days: string[];
  bars: number;
  builtAt: string;
}

export type Prepared =
  | {
      ready: true;
      key: string;
      sha256: string;
      bytes: number;
      source: FeaturesSource;
      /** True when this call built the file (stored unless `write` was false). */
      built: boolean;
      /** Synthetic market days this call generated (stored unless `write` was false). */
      generatedDays: number;
    }
  | { ready: false; key: string; reason: 'no_data' | 'bad_data'; detail: string };

export interface PrepareOptions {
  /** Build missing features from market data (`--ensure-features`). */
  build: boolean;
  /** Generate missing market days (`--synthetic`). */
  synthetic: boolean;
  /** false (`--dry-run`): compute, store nothing. */
  write: boolean;
  now?: Date;
}

/** The source recorded next to a features file (unknown when none was recorded). */
export async function featuresSource(
  store: ArtifactStore,
  featureset: string,
  symbol: string,
  date: string,
): Promise<FeaturesSource> {
  const key = keys.featuresMeta(featureset, symbol, date);
  if (!(await store.exists(key))) return 'unknown';
  const meta = await store.getJson<Partial<FeaturesMeta>>(key).catch(() => ({}) as Partial<FeaturesMeta>);
  return meta.source === 'synthetic' || meta.source === 'import' ? meta.source : 'unknown';
}

export async function prepareFeatures(
  store: ArtifactStore,
  featureset: string,
  symbol: string,
  date: string,
  opts: PrepareOptions,
): Promise<Prepared> {
  const existing = await checkReadiness(store, featureset, symbol, date);
  if (existing.ready) {
    const source = await featuresSource(store, featureset, symbol, date);
    return { ...existing, source, built: false, generatedDays: 0 };
  }
  if (!opts.build) {
    const hint = opts.synthetic
      ? ''
      : ' (import market data with `retrain data import`, then use --ensure-features)';
    return { ready: false, key: existing.key, reason: 'no_data', detail: `${existing.reason}${hint}` };
  }
  if (featureset !== 'v1') {
    throw new InputError(
      `unknown featureset ${JSON.stringify(featureset)}: can build ${KNOWN_FEATURESETS.join(', ')}`,
    );
  }
  const window = await marketWindow(store, symbol, date, opts);
  if (!window.ok) return { ready: false, key: existing.key, ...window.problem };
  const { bars, source, days, generated } = window;
  if (bars.length < WARMUP_BARS + 2) {
    return {
      ready: false,
      key: existing.key,
      reason: 'bad_data',
      detail: `${symbol}: ${bars.length} bars in the ${days.length} stored day(s) up to ${date}; features need at least ${WARMUP_BARS + 2}`,
    };
  }
  let csv: string;
  try {
    csv = featuresToCsv(buildFeaturesV1(bars));
  } catch (err) {
    return {
      ready: false,
      key: existing.key,
      reason: 'bad_data',
      detail: `${symbol} ${date}: ${(err as Error).message}`,
    };
  }
  if (opts.write) {
    for (const [day, dayBars] of generated)
      await storeMarketDay(store, symbol, day, dayBars, { source: 'synthetic' });
    await store.putBytes(existing.key, csv);
    const meta: FeaturesMeta = {
      source,
      days,
      bars: bars.length,
      builtAt: (opts.now ?? new Date()).toISOString(),
    };
    await store.putJson(keys.featuresMeta(featureset, symbol, date), meta);
  }
  return {
    ready: true,
    key: existing.key,
    sha256: sha256Hex(csv),
    bytes: Buffer.byteLength(csv),
    source,
    built: true,
    generatedDays: generated.size,
  };
}

type Window =
  | { ok: true; bars: OhlcvBar[]; days: string[]; source: DataSource; generated: Map<string, OhlcvBar[]> }
  | { ok: false; problem: { reason: 'no_data' | 'bad_data'; detail: string } };

/**
 * The bars of the stored days in the lookback window, oldest first. The date itself must be there
 * (else no_data, or with `synthetic` the whole window is generated and the missing days are returned
 * in `generated`); every stored day in the window must be valid (else bad_data).
 */
async function marketWindow(
  store: ArtifactStore,
  symbol: string,
  date: string,
  opts: PrepareOptions,
): Promise<Window> {
  const first = daysBefore(date, LOOKBACK_DAYS - 1);
  const stored = (await storedDays(store, symbol)).filter((d) => d >= first && d <= date);
  if (!stored.includes(date)) {
    if (!opts.synthetic) {
      return {
        ok: false,
        problem: {
          reason: 'no_data',
          detail: `no market data for ${symbol} on ${date} (${store.locate(keys.market(symbol, date))}); import it with \`retrain data import\`, or pass --synthetic for invented data`,
        },
      };
    }
    const bars = generateOhlcv(symbol, date, { lookbackDays: LOOKBACK_DAYS });
    const generated = new Map<string, OhlcvBar[]>();
    for (const b of bars) {
      const d = utcDay(b.ts);
      if (stored.includes(d)) continue;
      const list = generated.get(d);
      if (list) list.push(b);
      else generated.set(d, [b]);
    }
    const days = [...new Set(bars.map((b) => utcDay(b.ts)))];
    return { ok: true, bars, days, source: 'synthetic', generated };
  }
  const bars: OhlcvBar[] = [];
  let source: DataSource = 'import';
  for (const day of stored) {
    const read = await readMarketDay(store, symbol, day);
    if (!read.ok) return { ok: false, problem: { reason: read.reason, detail: read.detail } };
    if (read.meta?.source === 'synthetic') source = 'synthetic';
    const last = bars[bars.length - 1];
    if (last && read.bars[0]!.ts <= last.ts) {
      return {
        ok: false,
        problem: { reason: 'bad_data', detail: `${symbol} ${day}: bars overlap the previous day` },
      };
    }
    bars.push(...read.bars);
  }
  return { ok: true, bars, days: stored, source, generated: new Map() };
}
