import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type DestinationStream, type Logger } from 'pino';
import { CENSOR, censorChildBindings, censorSecrets } from './redact.js';

export type { Logger } from 'pino';

/**
 * Replaces registered secret values wherever they occur in a log line (messages, error texts,
 * command output), so a secret that leaks into a string is still not written.
 */
export class SecretScrubber {
  private values: string[] = [];

  add(value: string | undefined): void {
    if (value && value.length >= 6 && !this.values.includes(value)) {
      this.values.push(value);
      this.values.sort((a, b) => b.length - a.length);
    }
  }

  scrub(text: string): string {
    let out = text;
    for (const v of this.values) if (out.includes(v)) out = out.split(v).join(CENSOR);
    return out;
  }
}

/** Well-known secret environment variables, registered with the scrubber at start-up. */
export const SECRET_ENV_NAMES = [
  'VAST_API_KEY',
  'TELEGRAM_TOKEN',
  'S3_SECRET_ACCESS_KEY',
  'S3_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'DASHBOARD_PASSWORD',
  'DASHBOARD_TOKEN',
];

class ScrubbedStream implements DestinationStream {
  constructor(
    private readonly inner: DestinationStream,
    private readonly scrubber: SecretScrubber,
  ) {}
  write(line: string): void {
    this.inner.write(this.scrubber.scrub(line));
  }
}

export interface LogHubOptions {
  home: string;
  level: string;
  /** Also write JSON lines to stdout (workers do; interactive `run` keeps stdout for progress). */
  stdout: boolean;
  scrubber?: SecretScrubber;
}

/**
 * Owns the log destinations: stdout and one `logs/<YYYYMMDD>Z/engine.log` per run date, each
 * line scrubbed of registered secrets.
 */
export class LogHub {
  readonly scrubber: SecretScrubber;
  readonly root: Logger;
  private readonly byDate = new Map<
    string,
    { logger: Logger; file: pino.DestinationStream & { flushSync?: () => void; end?: () => void } }
  >();
  private readonly stdoutDest: DestinationStream | undefined;

  constructor(private readonly opts: LogHubOptions) {
    this.scrubber = opts.scrubber ?? new SecretScrubber();
    for (const name of SECRET_ENV_NAMES) this.scrubber.add(process.env[name]);
    this.stdoutDest = opts.stdout
      ? new ScrubbedStream(pino.destination({ dest: 1, sync: true }), this.scrubber)
      : undefined;
    this.root = censorChildBindings(
      pino(this.baseOptions(), this.stdoutDest ?? new ScrubbedStream(devNull(), this.scrubber)),
    );
  }

  private baseOptions(): pino.LoggerOptions {
    return {
      level: this.opts.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Keys that name secrets are censored in a line's fields (and in children's bindings, below).
      formatters: { level: (label) => ({ level: label }), log: censorSecrets },
    };
  }

  /** A logger that writes to stdout (if enabled) and to the date's engine.log. */
  forDate(date: string): Logger {
    let entry = this.byDate.get(date);
    if (!entry) {
      const dir = join(this.opts.home, 'logs', `${date}Z`);
      mkdirSync(dir, { recursive: true });
      const file = pino.destination({ dest: join(dir, 'engine.log'), sync: true, mkdir: true });
      const streams: pino.StreamEntry[] = [
        { stream: new ScrubbedStream(file, this.scrubber), level: 'trace' },
      ];
      if (this.stdoutDest) streams.push({ stream: this.stdoutDest, level: 'trace' });
      const logger = censorChildBindings(pino(this.baseOptions(), pino.multistream(streams)));
      entry = { logger, file };
      this.byDate.set(date, entry);
    }
    return entry.logger;
  }

  close(): void {
    for (const { file } of this.byDate.values()) file.end?.();
    this.byDate.clear();
  }
}

function devNull(): DestinationStream {
  return { write: () => undefined };
}
