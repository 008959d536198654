/**
 * "Already done" and "nothing overwritten", from the stored artifacts rather than the ledger (which
 * expires): a date's training is done when `ml-artifacts/<jobId>/` holds model.bin and a valid
 * metrics.json (the seeds' rule: with `status`, it must be `ok`); a forced re-run writes under the
 * first free `ml-artifacts/<jobId>__r<N>/`, so the earlier run's artifacts stay as they were.
 */
import { trainJobId } from '../jobspec/build.js';
import { parseMetricsText } from '../promotion/metrics.js';
import { keys } from '../storage/layout.js';
import type { ArtifactStore } from '../storage/store.js';

/** True when the date's first run stored a model and metrics that are ok. */
export async function storedSuccess(store: ArtifactStore, symbol: string, date: string): Promise<boolean> {
  const id = trainJobId(symbol, date);
  const [model, metrics] = [keys.artifact(id, 'model.bin'), keys.artifact(id, 'metrics.json')];
  if (!(await store.exists(model)) || !(await store.exists(metrics))) return false;
  const text = (await store.getBytes(metrics)).toString('utf8');
  const parsed = parseMetricsText(text);
  if (!parsed.ok) return false;
  const status = (parsed.metrics as Record<string, unknown>).status;
  return status === undefined || status === 'ok';
}

/**
 * The artifacts id of a forced re-run: the jobId itself when nothing is stored under it yet, else
 * `<jobId>__r2`, `__r3`... the first with nothing stored.
 */
export async function forcedArtifactsId(store: ArtifactStore, symbol: string, date: string): Promise<string> {
  const id = trainJobId(symbol, date);
  for (let n = 1; ; n++) {
    const candidate = n === 1 ? id : `${id}__r${n}`;
    if ((await store.list(keys.artifactsPrefix(candidate))).length === 0) return candidate;
  }
}
