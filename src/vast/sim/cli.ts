/**
 * `retrain vast-sim`: starts the simulator from CLI flags and prints its URL.
 */
import { InputError } from '../../errors.js';
import { defaultOffers, startVastSim, type VastSim } from './server.js';

export interface VastSimFlags {
  port?: number | string;
  sshHost: string;
  sshPort: number | string;
  offersFile?: string;
  bootDelayMs?: number | string;
  rate429?: number | string;
  rate5xx?: number | string;
  offerGone?: number | string;
  /** Comma-separated machine ids whose instances stay `loading` forever. */
  stuck?: string;
  dieRate?: number | string;
  dieAfterMs?: number | string;
  outbidRate?: number | string;
  outbidAfterMs?: number | string;
  apiKey?: string;
  seed?: number | string;
}

function toNum(name: string, v: number | string | undefined, min: number, max: number): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new InputError(`--${name} must be a number in [${min}, ${max}]`);
  return n;
}

/** Starts the simulator and prints `vast-sim listening on <url>` on stdout. */
export async function runVastSimFromFlags(
  flags: VastSimFlags,
  out: (line: string) => void = (l) => process.stdout.write(`${l}\n`),
): Promise<VastSim> {
  const port = toNum('port', flags.port, 0, 65535) ?? 0;
  const sshPort = toNum('ssh-port', flags.sshPort, 1, 65535);
  if (!flags.sshHost || sshPort === undefined) throw new InputError('--ssh-host and --ssh-port are required');
  const stuck = (flags.stuck ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => {
      if (!/^\d+$/.test(s)) throw new InputError(`--stuck: not a machine id: ${s}`);
      return Number(s);
    });
  const sim = await startVastSim({
    port,
    host: '127.0.0.1',
    apiKey: flags.apiKey || undefined,
    offers: flags.offersFile ?? defaultOffers(),
    sshEndpoint: { host: flags.sshHost, port: sshPort },
    bootDelayMs: toNum('boot-delay-ms', flags.bootDelayMs, 0, 3_600_000),
    seed: toNum('seed', flags.seed, 0, 2 ** 32),
    faults: {
      rate429: toNum('rate429', flags.rate429, 0, 1),
      rate5xx: toNum('rate5xx', flags.rate5xx, 0, 1),
      offerGoneOnCreate: toNum('offer-gone', flags.offerGone, 0, 1),
      stuckLoadingMachineIds: stuck,
      dieRate: toNum('die-rate', flags.dieRate, 0, 1),
      dieAfterMs: toNum('die-after-ms', flags.dieAfterMs, 0, 86_400_000),
      outbidRate: toNum('outbid-rate', flags.outbidRate, 0, 1),
      outbidAfterMs: toNum('outbid-after-ms', flags.outbidAfterMs, 0, 86_400_000),
    },
  });
  out(`vast-sim listening on ${sim.url}`);
  return sim;
}
