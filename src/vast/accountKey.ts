/**
 * The deployment's SSH public key on the Vast account, registered once before the first create:
 * keys on the account are installed when a container starts, which is what Vast advises
 * (vast-reality.md, "SSH keys"); the per-instance attach is a second chance, not the only one.
 * Idempotent across workers and restarts: a Redis mark says it is done, and the account's key list
 * is read before adding (a key already there is not added twice).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { TurnOptions } from './budget.js';
import type { VastClient } from './client.js';

const DONE_TTL_SEC = 86_400;

function sameKey(a: string, b: string): boolean {
  // Compare type and body; the comment at the end may differ.
  const norm = (k: string) => k.trim().split(/\s+/).slice(0, 2).join(' ');
  return norm(a) === norm(b);
}

/** Makes sure `publicKey` is on the account; true when this call added it. */
export async function ensureAccountKey(opts: {
  redis: Redis;
  prefix: string;
  client: Pick<VastClient, 'listSshKeys' | 'registerSshKey'>;
  publicKey: string;
  turn?: TurnOptions;
}): Promise<boolean> {
  const { redis, client, publicKey } = opts;
  const id = createHash('sha256').update(publicKey.trim()).digest('hex').slice(0, 16);
  const done = `${opts.prefix}:vast:account-key:${id}`;
  if ((await redis.get(done)) === '1') return false;
  const lock = `${done}:lock`;
  const me = randomUUID();
  // One worker registers; the others wait for its mark (or take over when it died).
  for (let i = 0; (await redis.set(lock, me, 'PX', 60_000, 'NX')) !== 'OK'; i++) {
    if ((await redis.get(done)) === '1') return false;
    if (opts.turn?.signal?.aborted || i > 600) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    if ((await redis.get(done)) === '1') return false;
    const keys = await client.listSshKeys(opts.turn);
    let added = false;
    if (!keys.some((k) => sameKey(k, publicKey))) {
      await client.registerSshKey(publicKey, opts.turn);
      added = true;
    }
    await redis.set(done, '1', 'EX', DONE_TTL_SEC);
    return added;
  } finally {
    const cur = await redis.get(lock);
    if (cur === me) await redis.del(lock);
  }
}
