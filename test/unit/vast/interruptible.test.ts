/**
 * Interruptible (bid) rentals: the bid derived from an offer, the `price` sent only when the job asks
 * for it, and an outbid instance told apart from a dead one. The provider talks to the simulator over
 * real HTTP; acquire is stopped once the instance exists (no SSH here).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseRunOptions } from '../../../src/cli/runOptions.js';
import { hostGoneError } from '../../../src/compute/lost.js';
import type { LeaseInfo } from '../../../src/compute/provider.js';
import { deploymentInstances, isPreempted, VastProvider } from '../../../src/compute/vast.js';
import { loadConfig } from '../../../src/config/load.js';
import { CancelledError, HostLostError, PreemptedError, ProvisionError } from '../../../src/errors.js';
import type { JobSpec } from '../../../src/jobspec/types.js';
import { HostKeyPins } from '../../../src/remote/ssh/hostKeys.js';
import { VastClient } from '../../../src/vast/client.js';
import { bidFor, buildOfferQuery, type BidPolicy } from '../../../src/vast/offers.js';
import { defaultOffers, startVastSim, type VastSim } from '../../../src/vast/sim/server.js';
import { VastOfferSchema, type VastInstance } from '../../../src/vast/types.js';

const KEY = 'sim-key-interruptible';
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'retrain-bid-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const offer = (over: Record<string, unknown>) =>
  VastOfferSchema.parse({
    id: 1,
    machine_id: 10,
    gpu_name: 'RTX 3090',
    num_gpus: 1,
    gpu_ram: 24576,
    dph_total: 0.12 + (0.15 * 30) / 720,
    dph_base: 0.2,
    min_bid: 0.12,
    storage_cost: 0.15,
    reliability2: 0.99,
    verified: true,
    disk_space: 100,
    inet_down: 500,
    cuda_max_good: 12.4,
    ...over,
  });

describe('bidFor', () => {
  const policy: BidPolicy = { bidMultiplier: 1.2, maxHourlyCost: 1, diskGb: 30 };
  const storage = (0.15 * 30) / 720;

  it('bids bidMultiplier x min_bid, storage billed on top', () => {
    const b = bidFor(offer({}), policy);
    expect(b).toEqual({ price: 0.144, minBid: 0.12, storageHour: storage, hourly: 0.144 + storage });
  });

  it('an absolute bidPrice is sent as is; an offer whose min_bid is above it is skipped', () => {
    expect(bidFor(offer({}), { ...policy, bidPrice: 0.3 })).toMatchObject({ price: 0.3 });
    expect(bidFor(offer({ min_bid: 0.35 }), { ...policy, bidPrice: 0.3 })).toEqual({
      reject: 'min_bid 0.35 above the bid 0.3',
    });
  });

  it('is capped by maxHourlyCost (storage included) and never goes below min_bid', () => {
    // 0.5 x 1.2 = 0.6 wanted; the cap leaves 0.55 - storage.
    expect(bidFor(offer({ min_bid: 0.5 }), { ...policy, maxHourlyCost: 0.55 })).toMatchObject({
      price: 0.55 - storage,
      hourly: 0.55,
    });
    expect(bidFor(offer({ min_bid: 0.5 }), { ...policy, maxHourlyCost: 0.5 })).toHaveProperty('reject');
    expect(bidFor(offer({ min_bid: 0.5 }), { ...policy, bidPrice: 2 })).toMatchObject({
      price: 1 - storage,
    });
  });

  it('without min_bid or storage_cost, the bid search price is the floor', () => {
    const b = bidFor(offer({ min_bid: undefined, storage_cost: undefined, dph_total: 0.2 }), policy);
    expect(b).toMatchObject({ minBid: 0.2, storageHour: 0, price: 0.24 });
  });

  it('the search asks for bid prices only when interruptible', () => {
    const c = { ...constraintsOf(), interruptible: true };
    expect(buildOfferQuery(c).type).toBe('bid');
    expect(buildOfferQuery(constraintsOf()).type).toBe('on-demand');
  });
});

function constraintsOf() {
  return {
    gpuNames: ['RTX_3090'],
    maxHourlyCost: 1,
    minGpuMemoryGb: 16,
    minReliability: 0.9,
    verifiedOnly: true,
    minDiskGb: 30,
    minInetDownMbps: 0,
    numGpus: 1,
  };
}

describe('VastProvider with interruptible jobs', () => {
  let sim: VastSim;
  const badAdded: number[] = [];
  const events: { event: string; data: Record<string, unknown> }[] = [];
  afterEach(async () => {
    await sim?.close();
    badAdded.length = 0;
    events.length = 0;
  });

  async function setUp(vast: Record<string, unknown> = {}) {
    sim = await startVastSim({
      apiKey: KEY,
      offers: defaultOffers(),
      sshEndpoint: { host: '127.0.0.1', port: 1 },
      bootDelayMs: 50,
    });
    const config = loadConfig({
      env: { RETRAIN_HOME: dir },
      cwd: dir,
      overrides: { vast: { apiUrl: sim.url, apiRetryBaseMs: 5, maxProvisionTries: 2, ...vast } },
    });
    const client = new VastClient({ apiUrl: sim.url, apiKey: KEY, minRetryDelayMs: 5 });
    const provider = new VastProvider({
      config,
      client,
      privateKey: Buffer.from(''),
      publicKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ+test test',
      pins: new HostKeyPins(join(dir, 'pins.json')),
      badMachines: () => ({ add: async (id) => void badAdded.push(id), list: async () => [...badAdded] }),
      onEvent: (event, data) => events.push({ event, data }),
    });
    return { config, client, provider };
  }

  const spec = (interruptible: boolean) =>
    ({
      jobId: 'train__BTCUSDT__20260101',
      symbol: 'BTCUSDT',
      date: '20260101',
      ...(interruptible ? { interruptible: true } : {}),
    }) as unknown as JobSpec;

  /** Rents and stops acquire as soon as the instance exists; returns its lease info. */
  async function rentOnly(provider: VastProvider, s: JobSpec): Promise<LeaseInfo> {
    const abort = new AbortController();
    let info: LeaseInfo | undefined;
    await expect(
      provider.acquire(s, {
        signal: abort.signal,
        onLeaseCreated: async (i) => {
          info = i;
          abort.abort();
        },
      }),
    ).rejects.toBeInstanceOf(CancelledError);
    return info!;
  }

  it('sends a price (min_bid x bidMultiplier) only for an interruptible job, and books bid + storage', async () => {
    const { provider } = await setUp();
    const bid = await rentOnly(provider, spec(true));
    const plain = await rentOnly(provider, spec(false));
    const st = sim.state();
    // The cheapest verified RTX 3090 (machine 31001, min_bid 0.12) for both: bids price at min_bid.
    expect(st.bids[Number(bid.id)]).toBe(0.144);
    expect(st.bids[Number(plain.id)]).toBeNull();
    const storage = (0.15 * 30) / 720;
    expect(bid).toMatchObject({ interruptible: true, bidUsd: 0.144, machineId: 31001 });
    expect(bid.hourlyCostUsd).toBeCloseTo(0.144 + storage, 9);
    expect(plain.interruptible).toBeUndefined();
    expect(plain.bidUsd).toBeUndefined();
    const inst = st.instances.find((i) => i.id === Number(bid.id))!;
    expect(inst).toMatchObject({ is_bid: true });
    expect(inst.dph_total).toBeCloseTo(bid.hourlyCostUsd, 9);
    expect(events.find((e) => e.event === 'instance_rented')?.data).toMatchObject({
      interruptible: true,
      bid: 0.144,
      minBid: 0.12,
    });
    await provider.release(bid);
    await provider.release(plain);
  });

  it('a bidPrice below every min_bid rents nothing (such a bid would never start)', async () => {
    const { provider } = await setUp({ bidPrice: 0.01 });
    await expect(provider.acquire(spec(true), { signal: new AbortController().signal })).rejects.toThrow(
      ProvisionError,
    );
    await expect(provider.acquire(spec(true), { signal: new AbortController().signal })).rejects.toThrow(
      /no offer to bid on \(offer \d+: min_bid [\d.]+ above the bid 0.01/,
    );
    expect(sim.state().rented).toEqual([]);
  });

  it('outbid: isAlive says gone, lostReason preempted, the machine is excluded; the reaper still sees it', async () => {
    const { provider, client, config } = await setUp();
    const bid = await rentOnly(provider, spec(true));
    const plain = await rentOnly(provider, spec(false));
    await new Promise((r) => setTimeout(r, 120));
    expect(await provider.isAlive(bid)).toBe(true);
    expect(sim.outbidInstance(Number(bid.id))).toBe(true);
    expect(await provider.isAlive(bid)).toBe(false);
    expect(provider.lostReason(bid)).toBe('preempted');
    expect(badAdded).toEqual([31001]);
    expect(events.filter((e) => e.event === 'instance_preempted')).toEqual([
      {
        event: 'instance_preempted',
        data: { instanceId: Number(bid.id), machineId: 31001, status: 'stopped', bid: 0.144 },
      },
    ]);
    expect(hostGoneError(provider, 'BTCUSDT', bid, null)).toBeInstanceOf(PreemptedError);
    expect(hostGoneError(provider, 'BTCUSDT', bid, null)).toMatchObject({
      code: 'preempted',
      retryable: true,
    });
    // A dead on-demand instance is a lost host, not a preemption.
    sim.killInstance(Number(plain.id));
    expect(await provider.isAlive(plain)).toBe(false);
    expect(provider.lostReason(plain)).toBeUndefined();
    expect(hostGoneError(provider, 'BTCUSDT', plain, null)).toBeInstanceOf(HostLostError);
    // The stopped instance still bills its storage: it is listed for the reaper, and destroyed.
    const listed = await deploymentInstances(client, config);
    expect(listed.map((l) => l.id).sort()).toEqual([bid.id, plain.id].sort());
    await provider.release(bid);
    await provider.release(plain);
    expect(provider.lostReason(bid)).toBeUndefined();
    expect(sim.state().alive).toEqual([]);
  });

  it('outbid while booting: a failed boot, destroyed, the machine excluded, the next offer rented', async () => {
    const { provider } = await setUp();
    const abort = new AbortController();
    const created: LeaseInfo[] = [];
    await expect(
      provider.acquire(spec(true), {
        signal: abort.signal,
        onLeaseCreated: async (i) => {
          created.push(i);
          if (created.length === 1) sim.outbidInstance(Number(i.id));
          else abort.abort();
        },
      }),
    ).rejects.toBeInstanceOf(CancelledError);
    expect(created).toHaveLength(2);
    expect(badAdded).toEqual([31001]);
    expect(created[1]!.machineId).not.toBe(31001);
    expect(events.find((e) => e.event === 'provision_failed')?.data.reason).toMatch(
      /is stopped while booting \(outbid: interruptible\)/,
    );
    expect(sim.state().destroyed).toEqual([Number(created[0]!.id)]);
    await provider.release(created[1]!);
  });

  it('isPreempted: a stopped or exited bid instance we still want running', () => {
    const i = (o: Record<string, unknown>) => o as unknown as VastInstance;
    expect(isPreempted(i({ is_bid: true, actual_status: 'stopped', intended_status: 'running' }))).toBe(true);
    expect(isPreempted(i({ is_bid: true, actual_status: 'exited', intended_status: 'running' }))).toBe(true);
    expect(isPreempted(i({ is_bid: true, actual_status: 'stopped', intended_status: 'stopped' }))).toBe(
      false,
    );
    expect(isPreempted(i({ is_bid: false, actual_status: 'stopped', intended_status: 'running' }))).toBe(
      false,
    );
    expect(
      isPreempted(i({ actual_status: 'stopped', intended_status: 'running' }), { interruptible: true }),
    ).toBe(true);
    expect(isPreempted(i({ is_bid: true, actual_status: 'running', intended_status: 'running' }))).toBe(
      false,
    );
  });
});

describe('--interruptible', () => {
  afterEach(() => vi.unstubAllEnvs());
  const base = { symbols: 'BTCUSDT', date: '20260101' };

  it('goes into the plan with driver vast; the config default and --no-interruptible', () => {
    vi.stubEnv('RETRAIN_HOME', dir);
    vi.stubEnv('RETRAIN_CONFIG', '');
    expect(parseRunOptions({ ...base, driver: 'vast', interruptible: true }).plan.interruptible).toBe(true);
    expect(parseRunOptions({ ...base, driver: 'vast' }).plan.interruptible).toBeUndefined();
    vi.stubEnv('RETRAIN_INTERRUPTIBLE', 'true');
    expect(parseRunOptions({ ...base, driver: 'vast' }).plan.interruptible).toBe(true);
    expect(
      parseRunOptions({ ...base, driver: 'vast', interruptible: false }).plan.interruptible,
    ).toBeUndefined();
    // A config default does not apply to other drivers; the flag there is an error.
    expect(parseRunOptions({ ...base, driver: 'local' }).plan.interruptible).toBeUndefined();
    expect(() => parseRunOptions({ ...base, driver: 'ssh', interruptible: true })).toThrow(
      /--interruptible needs --driver vast/,
    );
  });
});
