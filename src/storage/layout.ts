/**
 * Storage keys, the same in every store (DESIGN.md "Storage layout"). Dates: `date` is always the
 * compact YYYYMMDD form; candidates use the dashed form in their key, as the design says.
 */
export const keys = {
  features: (featureset: string, symbol: string, date: string) =>
    `datasets/${featureset}/${symbol}/${date}/features.csv`,
  /** One UTC day of raw OHLCV bars the features are built from (docs/market-data.md). */
  market: (symbol: string, date: string) => `market/${symbol}/${date}/ohlcv.csv`,
  /** Where a market day came from (`source: import | synthetic`), its rows, SHA-256, first/last bar. */
  marketMeta: (symbol: string, date: string) => `market/${symbol}/${date}/meta.json`,
  marketPrefix: (symbol?: string) => (symbol ? `market/${symbol}/` : 'market/'),
  /** Provenance of a features file: the market days it was built from and their sources. */
  featuresMeta: (featureset: string, symbol: string, date: string) =>
    `datasets/${featureset}/${symbol}/${date}/meta.json`,
  artifactsPrefix: (jobId: string) => `ml-artifacts/${jobId}/`,
  artifact: (jobId: string, name: string) => `ml-artifacts/${jobId}/${name}`,
  candidatePrefix: (symbol: string, date: string) => `models/candidates/${symbol}/${dashed(date)}/`,
  candidate: (symbol: string, date: string, name: string) =>
    `models/candidates/${symbol}/${dashed(date)}/${name}`,
  productionPrefix: (symbol: string) => `models/production/${symbol}/`,
  production: (symbol: string, name: string) => `models/production/${symbol}/${name}`,
  productionHistory: (symbol: string, stamp: string, name: string) =>
    `models/production/${symbol}/history/${stamp}/${name}`,
  runStatus: (date: string) => `runs/${date}Z/status.json`,
  summary: (date: string) => `summary/${date}Z/engine_summary.json`,
} as const;

/** YYYYMMDD → YYYY-MM-DD */
export function dashed(date: string): string {
  return `${date.slice(0, 4)}-${date.slice(4, 6)}-${date.slice(6, 8)}`;
}
