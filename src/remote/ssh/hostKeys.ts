/**
 * Host key pinning (trust on first use): the first key a pin id connects to is recorded as
 * `SHA256:<base64>` in a JSON file (0600, atomic writes); a different key later is refused.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TransportError } from '../../errors.js';

export type PinResult = 'pinned' | 'match' | 'mismatch';

/** `SHA256:<base64 without padding>` of a raw host key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export class HostKeyPins {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly file: string) {}

  /** The pinned fingerprint for `pinId`, if any. */
  async get(pinId: string): Promise<string | undefined> {
    return (await this.load())[pinId];
  }

  /** Removes a pin (after a host was knowingly rebuilt, or a rental released). */
  async forget(pinId: string): Promise<void> {
    await this.serial(async () => {
      const pins = await this.load();
      if (!(pinId in pins)) return;
      delete pins[pinId];
      await this.save(pins);
    });
  }

  /** Pins `key` for `pinId` when nothing is pinned yet; tells whether it matches otherwise. */
  check(pinId: string, key: Buffer): Promise<PinResult> {
    const fp = fingerprint(key);
    return this.serial(async () => {
      const pins = await this.load();
      const have = pins[pinId];
      if (have === undefined) {
        pins[pinId] = fp;
        await this.save(pins);
        return 'pinned' as const;
      }
      return have === fp ? ('match' as const) : ('mismatch' as const);
    });
  }

  /**
   * An ssh2 `hostVerifier` for `pinId`: pins on first use, refuses a different key afterwards
   * (the connection then fails; SshTransport reports it as a non-retryable TransportError
   * "host key for <pinId> changed"). `onResult` sees each decision.
   */
  verifier(
    pinId: string,
    onResult?: (r: PinResult | Error) => void,
  ): (key: Buffer, verify: (ok: boolean) => void) => void {
    return (key, verify) => {
      this.check(pinId, key).then(
        (r) => {
          onResult?.(r);
          verify(r !== 'mismatch');
        },
        (err: unknown) => {
          onResult?.(err instanceof Error ? err : new Error(String(err)));
          verify(false);
        },
      );
    };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async load(): Promise<Record<string, string>> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new TransportError(
        `cannot read host key pins ${this.file}: ${(err as NodeJS.ErrnoException).code}`,
        {
          retryable: false,
        },
      );
    }
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        const out: Record<string, string> = {};
        for (const [k, v] of Object.entries(parsed)) if (typeof v === 'string') out[k] = v;
        return out;
      }
    } catch {
      // fall through
    }
    throw new TransportError(`host key pins file ${this.file} is not a JSON object`, { retryable: false });
  }

  private async save(pins: Record<string, string>): Promise<void> {
    await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
    const tmp = `${this.file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    const sorted = Object.fromEntries(
      Object.keys(pins)
        .sort()
        .map((k) => [k, pins[k]]),
    );
    try {
      await writeFile(tmp, JSON.stringify(sorted, null, 2) + '\n', { mode: 0o600 });
      await chmod(tmp, 0o600);
      await rename(tmp, this.file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new TransportError(
        `cannot write host key pins ${this.file}: ${(err as NodeJS.ErrnoException).code}`,
        {
          retryable: false,
        },
      );
    }
  }
}
