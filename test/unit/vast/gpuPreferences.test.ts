/**
 * GPU preferences (src/vast/gpuPreferences.ts): the plain list stays one class; ordered classes each
 * keep their own cap and a later class is chosen only when the earlier ones have no offer; a class
 * cap above vast.maxHourlyCost is a clear config error; the waiting state shows in the tables and
 * on the dashboard.
 */
import { describe, expect, it } from 'vitest';
import { runPage } from '../../../dashboards/views.js';
import { statusLabel, waitedColumn, renderRunTable } from '../../../src/cli/table.js';
import { offerConstraints } from '../../../src/compute/vast.js';
import { loadConfig } from '../../../src/config/load.js';
import { ConfigSchema } from '../../../src/config/schema.js';
import type { LedgerEntry } from '../../../src/ledger/ledger.js';
import {
  chooseByPreference,
  describeConstraints,
  gpuClasses,
  type GpuNameEntry,
} from '../../../src/vast/gpuPreferences.js';
import { buildOfferQuery } from '../../../src/vast/offers.js';

const offer = (id: number, gpu: string, dph: number) => ({
  id,
  machine_id: id * 10,
  gpu_name: gpu,
  num_gpus: 1,
  gpu_ram: 81920,
  dph_total: dph,
  reliability2: 0.99,
  verified: true,
  disk_space: 100,
  inet_down: 500,
  cuda_max_good: 12.4,
  rentable: true,
  rented: false,
});

const PREFS: GpuNameEntry[] = [
  { name: 'RTX_4090', maxHourlyCost: 0.6 },
  { name: 'A100', maxHourlyCost: 1.2 },
];

describe('GPU preferences', () => {
  const config = loadConfig({ env: {} });
  config.vast.maxHourlyCost = 1.5;
  config.vast.gpuNames = PREFS;
  const base = offerConstraints(config);
  const classes = gpuClasses(PREFS, 1.5);

  it('one search covers every class: all names, the highest class cap', () => {
    expect(base.gpuNames).toEqual(['RTX_4090', 'A100']);
    expect(base.maxHourlyCost).toBe(1.2);
    const q = buildOfferQuery(base);
    expect(q.gpu_name).toEqual({ in: expect.arrayContaining(['RTX 4090', 'A100', 'A100 SXM4']) });
    expect(q.dph_total).toEqual({ lte: 1.2 });
  });

  it('the first class wins while it has an offer within its cap, even when a later one is cheaper', () => {
    const got = chooseByPreference([offer(1, 'A100 SXM4', 0.5), offer(2, 'RTX 4090', 0.55)], base, classes);
    expect(got.gpuClass).toBe('RTX_4090 ≤ $0.60/h');
    expect(got.offers.map((o) => o.id)).toEqual([2]);
  });

  it('a 4090 over its class cap is no capacity for that class: the A100 class is used', () => {
    const got = chooseByPreference([offer(1, 'A100 PCIE', 1.1), offer(2, 'RTX 4090', 0.7)], base, classes);
    expect(got.gpuClass).toBe('A100 ≤ $1.20/h');
    expect(got.offers.map((o) => o.id)).toEqual([1]);
    // Excluded (bad machine) counts as no capacity too.
    const none = chooseByPreference([offer(1, 'A100 PCIE', 1.3)], base, classes);
    expect(none).toEqual({ offers: [] });
  });

  it('the plain list is one class under vast.maxHourlyCost, cheapest first whatever the GPU', () => {
    const plain = gpuClasses(['RTX_4090', 'A100'], 1.0);
    expect(plain).toEqual([
      { names: ['RTX_4090', 'A100'], maxHourlyCost: 1.0, label: 'RTX_4090/A100 ≤ $1.00/h' },
    ]);
    const got = chooseByPreference(
      [offer(1, 'RTX 4090', 0.7), offer(2, 'A100 SXM4', 0.5)],
      { ...base, gpuNames: ['RTX_4090', 'A100'], maxHourlyCost: 1.0 },
      plain,
    );
    expect(got.offers.map((o) => o.id)).toEqual([2, 1]);
  });

  it('the constraints in words name every class and requirement', () => {
    const text = describeConstraints(base, classes);
    expect(text).toContain('RTX_4090 ≤ $0.60/h, then A100 ≤ $1.20/h');
    expect(text).toContain('≥ 16 GB GPU RAM');
    expect(text).toContain('verified');
  });

  it('a class cap above vast.maxHourlyCost is refused with the field named', () => {
    const raw = { ...loadConfig({ env: {} }) } as Record<string, unknown>;
    const vast = { ...(raw.vast as Record<string, unknown>), maxHourlyCost: 1.0, gpuNames: PREFS };
    const r = ConfigSchema.safeParse({ ...raw, vast });
    expect(r.success).toBe(false);
    expect(r.error!.issues[0]!.message).toBe(
      'vast.gpuNames[1] (A100) maxHourlyCost 1.2 is above vast.maxHourlyCost 1',
    );
    expect(ConfigSchema.safeParse({ ...raw, vast: { ...vast, maxHourlyCost: 1.2 } }).success).toBe(true);
  });
});

describe('waiting_capacity in the tables and on the dashboard', () => {
  const entry = (over: Partial<LedgerEntry>): LedgerEntry => ({
    symbol: 'BTCUSDT',
    status: 'waiting_capacity',
    attempts: 1,
    costUsd: 0,
    history: [],
    updatedAt: '2026-01-14T00:05:00.000Z',
    waitingSince: '2026-01-14T00:01:02.000Z',
    ...over,
  });

  it('status and run table: since when, and a waited column once any symbol waited', () => {
    expect(statusLabel(entry({}))).toBe('waiting_capacity since 00:01:02Z');
    expect(statusLabel(entry({ status: 'running' }))).toBe('running');
    expect(waitedColumn([entry({ status: 'success', waitingSince: undefined })])).toBeNull();
    const table = renderRunTable(
      ['BTCUSDT', 'ETHUSDT'],
      {
        BTCUSDT: entry({}),
        ETHUSDT: entry({ symbol: 'ETHUSDT', status: 'success', waitingSince: undefined, waitedMin: 3.25 }),
      },
      {},
    );
    expect(table).toContain('waited');
    expect(table).toContain('waiting_capacity since 00:01:02Z');
    expect(table).toContain('3.25');
  });

  it('dashboard: the row says waiting_capacity and since when', () => {
    const html = runPage(
      {
        date: '20260114',
        entries: [entry({})],
        summary: null,
        statusLocation: '/s',
        summaryLocation: '/m',
      },
      false,
    );
    expect(html).toMatch(
      /class="waiting_capacity">waiting_capacity <span data-waiting-since="2026-01-14T00:01:02.000Z">since 00:01:02Z<\/span>/,
    );
  });
});
