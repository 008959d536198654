/**
 * Production in the seeds' layout: `models/production/<symbol>/model.bin` + `metrics.json`, no
 * manifest, the folder named in any letter case (`btcusdt` in our users' crontabs). It is read as the
 * current production when the symbol has no manifest: candidates are compared with it, and a winner
 * archives it to `models/production/<SYMBOL>/history/<stamp>/` (docs/promotion-rules.md, migration).
 */
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';
import { parseMetricsText, type ParsedMetrics } from './metrics.js';

export interface LegacyProduction {
  /** `models/production/<dir>/` as found. */
  prefix: string;
  modelKey: string;
  metricsKey: string;
  metrics: ParsedMetrics;
}

const ROOT = 'models/production/';

/** The legacy production of `symbol`, or null. The exact-case folder wins over other spellings. */
export async function readLegacyProduction(
  store: ArtifactStore,
  symbol: string,
): Promise<LegacyProduction | null> {
  const dirs = [symbol];
  for (const key of await store.list(ROOT)) {
    const parts = key.slice(ROOT.length).split('/');
    if (
      parts.length === 2 &&
      parts[1] === 'model.bin' &&
      parts[0] !== symbol &&
      parts[0]!.toUpperCase() === symbol.toUpperCase()
    )
      dirs.push(parts[0]!);
  }
  for (const dir of dirs) {
    const prefix = keys.productionPrefix(dir);
    if (await store.exists(`${prefix}manifest.json`)) continue;
    const modelKey = `${prefix}model.bin`;
    const metricsKey = `${prefix}metrics.json`;
    if (!(await store.exists(modelKey)) || !(await store.exists(metricsKey))) continue;
    const metrics = parseMetricsText((await store.getBytes(metricsKey)).toString('utf8'));
    return { prefix, modelKey, metricsKey, metrics };
  }
  return null;
}
