import { describe, expect, it } from 'vitest';
import { sshEndpoint } from '../../../src/vast/endpoint.js';
import {
  buildOfferQuery,
  chooseOffers,
  explainOffers,
  normalizeGpuName,
  type OfferConstraints,
} from '../../../src/vast/offers.js';
import { defaultOffers } from '../../../src/vast/sim/server.js';
import { parseOffers, VastInstanceSchema, type VastInstance } from '../../../src/vast/types.js';

const base: OfferConstraints = {
  gpuNames: ['RTX_3090', 'rtx_4090', 'A100_SXM4'],
  maxHourlyCost: 1.5,
  minGpuMemoryGb: 24,
  minReliability: 0.95,
  verifiedOnly: true,
  minDiskGb: 40,
  minInetDownMbps: 100,
  minCudaVersion: 12.2,
  numGpus: 1,
};

function offer(over: Record<string, unknown>): Record<string, unknown> {
  return {
    id: 1,
    machine_id: 10,
    gpu_name: 'RTX 3090',
    num_gpus: 1,
    gpu_ram: 24576,
    dph_total: 0.3,
    dph_base: 0.29,
    storage_cost: 0.1,
    reliability2: 0.99,
    verified: true,
    disk_space: 100,
    inet_down: 500,
    cuda_max_good: 12.4,
    rentable: true,
    rented: false,
    ...over,
  };
}

describe('buildOfferQuery', () => {
  it('builds the CLI query shape with server spellings and MB units', () => {
    const q = buildOfferQuery(base);
    expect(q).toEqual({
      verified: { eq: true },
      external: { eq: false },
      rentable: { eq: true },
      rented: { eq: false },
      gpu_name: { in: ['RTX 3090', 'rtx 4090', 'A100 SXM4'] },
      num_gpus: { eq: 1 },
      gpu_ram: { gte: 24000 },
      dph_total: { lte: 1.5 },
      reliability: { gte: 0.95 },
      disk_space: { gte: 40 },
      inet_down: { gte: 100 },
      cuda_max_good: { gte: 12.2 },
      order: [['dph_total', 'asc']],
      type: 'on-demand',
      allocated_storage: 40,
      limit: 64,
    });
  });
  it('omits verified and cuda when not asked, and searches bids when interruptible', () => {
    const q = buildOfferQuery({
      ...base,
      verifiedOnly: false,
      minCudaVersion: undefined,
      interruptible: true,
    });
    expect(q.verified).toBeUndefined();
    expect(q.cuda_max_good).toBeUndefined();
    expect(q.type).toBe('bid');
  });
  it('normalises GPU names', () => {
    expect(normalizeGpuName(' rtx_4090 ')).toBe('RTX 4090');
    expect(normalizeGpuName('A100  SXM4')).toBe('A100 SXM4');
  });
});

describe('chooseOffers', () => {
  it('re-checks every constraint client-side', () => {
    const offers = [
      offer({ id: 1 }),
      offer({ id: 2, gpu_name: 'RTX 3060' }),
      offer({ id: 3, gpu_ram: 12000 }),
      offer({ id: 4, dph_total: 1.6 }),
      offer({ id: 5, reliability2: 0.9 }),
      offer({ id: 6, verified: false }),
      offer({ id: 7, disk_space: 20 }),
      offer({ id: 8, inet_down: 50 }),
      offer({ id: 9, cuda_max_good: 11.8 }),
      offer({ id: 10, num_gpus: 2 }),
      offer({ id: 11, rented: true }),
      offer({ id: 12, rentable: false }),
      offer({ id: 13, verified: undefined, verification: 'deverified' }),
      offer({ id: 14, verified: undefined, verification: 'verified', gpu_name: 'rtx 4090' }),
    ];
    const { chosen, rejected } = explainOffers(offers, base);
    expect(chosen.map((o) => o.id)).toEqual([1, 14]);
    expect(rejected).toHaveLength(12);
    expect(rejected.find((r) => r.id === 4)?.reason).toMatch(/dph_total/);
  });

  it('compares maxHourlyCost against the full dph_total (storage included)', () => {
    const offers = [
      offer({ id: 1, dph_base: 0.99, dph_total: 1.02 }),
      offer({ id: 2, dph_base: 0.5, dph_total: 0.51 }),
    ];
    expect(chooseOffers(offers, { ...base, maxHourlyCost: 1 }).map((o) => o.id)).toEqual([2]);
  });

  it('sorts cheapest first with deterministic ties (reliability desc, then id asc)', () => {
    const offers = [
      offer({ id: 5, dph_total: 0.4, reliability2: 0.99 }),
      offer({ id: 3, dph_total: 0.3, reliability2: 0.97 }),
      offer({ id: 4, dph_total: 0.3, reliability2: 0.99 }),
      offer({ id: 2, dph_total: 0.3, reliability2: 0.99 }),
      offer({ id: 1, dph_total: 0.5 }),
    ];
    expect(chooseOffers(offers, base).map((o) => o.id)).toEqual([2, 4, 3, 5, 1]);
    expect(chooseOffers([...offers].reverse(), base).map((o) => o.id)).toEqual([2, 4, 3, 5, 1]);
  });

  it('excludes bad machines and already-tried offers', () => {
    const offers = [
      offer({ id: 1, machine_id: 10 }),
      offer({ id: 2, machine_id: 20 }),
      offer({ id: 3, machine_id: 30 }),
    ];
    const got = chooseOffers(offers, base, { machineIds: new Set([10]), offerIds: new Set([3]) });
    expect(got.map((o) => o.id)).toEqual([2]);
  });

  it('drops hostile or malformed offers with a reason instead of crashing', () => {
    const hostile: unknown[] = [
      offer({ id: 1 }),
      offer({ id: 2, dph_total: Number.NaN }),
      offer({ id: 3, dph_total: 'cheap' }),
      offer({ id: undefined }),
      offer({ id: 5, dph_total: -0.5 }),
      offer({ id: 6, gpu_ram: Infinity }),
      offer({ id: 7, reliability2: 7 }),
      offer({ id: 8, gpu_name: '' }),
      null,
      'offer',
      42,
      offer({ id: 9, dph_total: '0.25', gpu_ram: '24576', verified: 'true' }),
      offer({ id: 1, dph_total: 0.01 }),
    ];
    const { offers, dropped } = parseOffers(hostile);
    expect(offers.map((o) => o.id)).toEqual([1, 9, 1]);
    expect(dropped).toHaveLength(10);
    for (const d of dropped) expect(d.reason).toBeTruthy();
    // Coerced numeric strings are fine; the duplicate id keeps its first (validated) copy only.
    const chosen = chooseOffers(hostile, base);
    expect(chosen.map((o) => [o.id, o.dph_total])).toEqual([
      [9, 0.25],
      [1, 0.3],
    ]);
  });

  it('keeps extra fields and the fixture offers all parse', () => {
    const { offers, dropped } = parseOffers(defaultOffers());
    expect(dropped).toEqual([]);
    expect(offers.length).toBeGreaterThanOrEqual(12);
    expect(offers[0]).toHaveProperty('geolocation');
    expect(offers[0]).toHaveProperty('search');
  });
});

describe('sshEndpoint', () => {
  const inst = (over: Partial<VastInstance> & Record<string, unknown>): VastInstance =>
    VastInstanceSchema.parse({
      id: 1,
      actual_status: 'running',
      ssh_host: 'ssh5.vast.ai',
      ssh_port: 12345,
      ...over,
    });
  it('prefers the direct address from the 22/tcp port map, stripping whitespace', () => {
    const i = inst({
      public_ipaddr: ' 203.0.113.7\n',
      ports: { '22/tcp': [{ HostIp: '0.0.0.0', HostPort: '41022' }] },
    });
    expect(sshEndpoint(i)).toEqual({ host: '203.0.113.7', port: 41022 });
  });
  it('falls back to the proxy, +1 for jupyter runtypes', () => {
    expect(sshEndpoint(inst({ public_ipaddr: '203.0.113.7', ports: null }))).toEqual({
      host: 'ssh5.vast.ai',
      port: 12345,
    });
    expect(sshEndpoint(inst({ image_runtype: 'jupyter_direc ssh_direc ssh_proxy' }))).toEqual({
      host: 'ssh5.vast.ai',
      port: 12346,
    });
  });
  it('is null until running, and for junk addresses', () => {
    expect(sshEndpoint(inst({ actual_status: 'loading' }))).toBeNull();
    expect(sshEndpoint(inst({ actual_status: null }))).toBeNull();
    expect(sshEndpoint(null)).toBeNull();
    expect(sshEndpoint(inst({ ssh_host: '', ports: { '22/tcp': [{ HostPort: 'x' }] } }))).toBeNull();
  });
});
