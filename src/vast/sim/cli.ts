/**
 * `retrain vast-sim`: starts the simulator from CLI flags and prints its URL.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../../errors.js';
import { defaultOffers, startVastSim, type VastSim } from './server.js';

type N = number | string;

export interface VastSimFlags {
  port?: N;
  sshHost: string;
  sshPort: N;
  offersFile?: string;
  bootDelayMs?: N;
  timeScale?: N;
  rate429?: N;
  rate5xx?: N;
  offerGone?: N;
  /** Comma-separated machine ids whose instances stay `loading` forever. */
  stuck?: string;
  dieRate?: N;
  dieAfterMs?: N;
  outbidRate?: N;
  outbidAfterMs?: N;
  apiKey?: string;
  seed?: N;
  /** `kind` (default) or `vast-like`. */
  profile?: string;
  rateLimits?: boolean;
  competitorRate?: N;
  offerChurn?: N;
  badImageRate?: N;
  /** Comma-separated machine ids whose instances never boot (image error). */
  badImageMachineIds?: string;
  transientStatusRate?: N;
  transientStatusMs?: N;
  slowCreateRate?: N;
  slowCreateMs?: N;
  oddRows?: boolean;
  attachKeyLossRate?: N;
  /** A file of public keys (authorized_keys format) the SSH endpoint accepts: turns on per-instance SSH gates. */
  sshAuthorizedKeys?: string;
}

function toNum(name: string, v: N | undefined, min: number, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new InputError(`--${name} must be a number in [${min}, ${max}]`);
  return n;
}

function ids(name: string, v: string | undefined): number[] | undefined {
  if (v === undefined) return undefined;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (!/^\d+$/.test(s)) throw new InputError(`--${name}: not a machine id: ${s}`);
      return Number(s);
    });
}

function authorizedKeys(file: string | undefined): string[] | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new InputError(`--ssh-authorized-keys: cannot read ${file}`);
  }
  const keys = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('ssh-') || l.startsWith('ecdsa-'));
  if (keys.length === 0) throw new InputError(`--ssh-authorized-keys: no public key in ${file}`);
  return keys;
}

/** Starts the simulator and prints `vast-sim listening on <url>` on stdout. */
export async function runVastSimFromFlags(
  flags: VastSimFlags,
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<VastSim> {
  const port = toNum('port', flags.port, 0, 65535) ?? 0;
  const sshPort = toNum('ssh-port', flags.sshPort, 1, 65535);
  if (!flags.sshHost || sshPort === undefined) throw new InputError('--ssh-host and --ssh-port are required');
  if (flags.profile !== undefined && flags.profile !== 'kind' && flags.profile !== 'vast-like')
    throw new InputError(`--profile must be kind or vast-like, not ${flags.profile}`);
  const sim = await startVastSim({
    port,
    host: '127.0.0.1',
    apiKey: flags.apiKey || undefined,
    offers: flags.offersFile ?? defaultOffers(),
    sshEndpoint: { host: flags.sshHost, port: sshPort },
    sshAuthorizedKeys: authorizedKeys(flags.sshAuthorizedKeys),
    bootDelayMs: toNum('boot-delay-ms', flags.bootDelayMs, 0, 3_600_000),
    timeScale: toNum('time-scale', flags.timeScale, 0.001, 10_000),
    seed: toNum('seed', flags.seed, 0, 2 ** 32),
    profile: flags.profile as 'kind' | 'vast-like' | undefined,
    faults: {
      rate429: toNum('rate429', flags.rate429, 0, 1),
      rate5xx: toNum('rate5xx', flags.rate5xx, 0, 1),
      offerGoneOnCreate: toNum('offer-gone', flags.offerGone, 0, 1),
      stuckLoadingMachineIds: ids('stuck', flags.stuck),
      dieRate: toNum('die-rate', flags.dieRate, 0, 1),
      dieAfterMs: toNum('die-after-ms', flags.dieAfterMs, 0, 86_400_000),
      outbidRate: toNum('outbid-rate', flags.outbidRate, 0, 1),
      outbidAfterMs: toNum('outbid-after-ms', flags.outbidAfterMs, 0, 86_400_000),
      rateLimits: flags.rateLimits,
      competitorRate: toNum('competitor-rate', flags.competitorRate, 0, 1),
      offerChurn: toNum('offer-churn', flags.offerChurn, 0, 1),
      badImageRate: toNum('bad-image-rate', flags.badImageRate, 0, 1),
      badImageMachineIds: ids('bad-image-machine-ids', flags.badImageMachineIds),
      transientStatusRate: toNum('transient-status-rate', flags.transientStatusRate, 0, 1),
      transientStatusMs: toNum('transient-status-ms', flags.transientStatusMs, 0, 86_400_000),
      slowCreateRate: toNum('slow-create-rate', flags.slowCreateRate, 0, 1),
      slowCreateMs: toNum('slow-create-ms', flags.slowCreateMs, 0, 3_600_000),
      oddRows: flags.oddRows,
      attachKeyLossRate: toNum('attach-key-loss-rate', flags.attachKeyLossRate, 0, 1),
    },
  });
  out(`vast-sim listening on ${sim.url}`);
  return sim;
}
