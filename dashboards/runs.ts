import type { Ledger, LedgerEntry } from '../src/ledger/ledger.js';
import { keys, validateKey, type ArtifactStore } from '../src/storage/index.js';
import type { EngineSummary } from '../src/telemetry/summary.js';

/** One run date as the runs page shows it. */
export interface RunView {
  date: string;
  entries: LedgerEntry[];
  /** `summary/<date>Z/engine_summary.json`, once the run was finalized. */
  summary: EngineSummary | null;
  statusLocation: string;
  summaryLocation: string;
}

export interface ArtifactLink {
  key: string;
  /** Where it lives (a path or s3://bucket/key). */
  location: string;
}

export interface SymbolView {
  date: string;
  entry: LedgerEntry;
  artifacts: ArtifactLink[];
  candidate: ArtifactLink[];
}

export const DATE_PARAM = /^\d{8}$/;
export const SYMBOL_PARAM = /^[A-Z0-9]{2,24}$/;

/** Store prefixes the dashboard serves files from (read-only). */
const SERVED_PREFIXES = ['ml-artifacts/', 'models/candidates/', 'runs/', 'summary/'];

export class RunsReader {
  constructor(
    private readonly ledger: Ledger,
    private readonly store: ArtifactStore,
  ) {}

  /** The newest `limit` dates of the ledger, newest first. */
  async recentDates(limit: number): Promise<string[]> {
    return (await this.ledger.dates()).slice(0, limit);
  }

  async run(date: string): Promise<RunView> {
    const entries = Object.values(await this.ledger.get(date)).sort((a, b) =>
      a.symbol.localeCompare(b.symbol),
    );
    return {
      date,
      entries,
      summary: await this.summary(date),
      statusLocation: this.store.locate(keys.runStatus(date)),
      summaryLocation: this.store.locate(keys.summary(date)),
    };
  }

  async symbol(date: string, symbol: string): Promise<SymbolView | null> {
    const entry = await this.ledger.getEntry(date, symbol);
    if (!entry) return null;
    const list = async (prefix: string) =>
      (await this.store.list(prefix)).map((key) => ({ key, location: this.store.locate(key) }));
    return {
      date,
      entry,
      // A forced re-run stores under its own folder (ml-artifacts/<jobId>__rN/): its metricsKey says which.
      artifacts: entry.metricsKey?.startsWith('ml-artifacts/')
        ? await list(entry.metricsKey.slice(0, entry.metricsKey.lastIndexOf('/') + 1))
        : entry.jobId
          ? await list(keys.artifactsPrefix(entry.jobId))
          : [],
      candidate: await list(keys.candidatePrefix(symbol, date)),
    };
  }

  /** A stored file under one of the served prefixes, or null when the key is not one of those. */
  async file(key: string): Promise<Buffer | null> {
    try {
      validateKey(key);
    } catch {
      return null;
    }
    if (!SERVED_PREFIXES.some((p) => key.startsWith(p))) return null;
    if (!(await this.store.exists(key))) return null;
    return this.store.getBytes(key);
  }

  private async summary(date: string): Promise<EngineSummary | null> {
    const key = keys.summary(date);
    if (!(await this.store.exists(key))) return null;
    return this.store.getJson<EngineSummary>(key);
  }
}
