import type { Config } from '../config/schema.js';
import { LogHub, SECRET_ENV_NAMES, SecretScrubber } from '../telemetry/logger.js';
import { AlertNotifier, noopNotifier, type Notifier } from './notifier.js';
import { TelegramSink } from './telegram.js';

export { AlertNotifier, noopNotifier, type MessageSink, type Notifier } from './notifier.js';
export type { RunStartInfo, SymbolFailure } from './notifier.js';
export { TelegramSink, type TelegramSinkOptions } from './telegram.js';
export { formatFailures, formatProvisioningStuck, formatRunCompleted, formatRunStarted } from './format.js';

type Env = Record<string, string | undefined>;

export interface CreateNotifierOptions {
  /** TELEGRAM_TOKEN is read from here when the notifier is built; it is never config. */
  env?: Env;
  /** Where send failures are logged (the run date's engine.log); stderr when absent. */
  logs?: () => LogHub | undefined;
}

/**
 * The notifier the configuration asks for: Telegram when TELEGRAM_TOKEN (environment) and a chat
 * id (`notify.telegram.chatId`, TELEGRAM_CHAT_ID) are both set, otherwise one that sends nothing.
 */
export function createNotifier(config: Config, opts: CreateNotifierOptions = {}): Notifier {
  const env = opts.env ?? process.env;
  const t = config.notify.telegram;
  const token = env.TELEGRAM_TOKEN?.trim();
  if (!token || !t.chatId) return noopNotifier;

  const scrubber = new SecretScrubber();
  scrubber.add(token);
  for (const name of SECRET_ENV_NAMES) scrubber.add(env[name]);
  const warn = (fields: Record<string, unknown>, msg: string, date?: string) => {
    const hub = opts.logs?.();
    if (hub) {
      hub.scrubber.add(token);
      (date ? hub.forDate(date) : hub.root).warn(fields, msg);
    } else {
      process.stderr.write(`retrain: ${scrubber.scrub(msg)}\n`);
    }
  };
  const sink = new TelegramSink({
    apiUrl: t.apiUrl,
    token,
    chatId: t.chatId,
    timeoutMs: t.timeoutMs,
    maxAttempts: t.maxAttempts,
    maxRetryAfterSec: t.maxRetryAfterSec,
    warn,
  });
  return new AlertNotifier(sink, {
    groupWindowMs: t.groupWindowMs,
    flushTimeoutMs: t.flushTimeoutMs,
    scrub: (text) => scrubber.scrub(text),
    onError: (err) =>
      warn({ event: 'notify_error' }, `notification not sent: ${scrubber.scrub(String(err))}`),
  });
}

interface Shared {
  key: string;
  notifier: Notifier;
  /** Attached by the workers: their LogHub. */
  logs?: LogHub | undefined;
  /** Opened on demand when nothing is attached (e.g. `retrain enqueue`). */
  own?: LogHub | undefined;
}
let shared: Shared | undefined;

/**
 * The process's notifier, shared by everything that notifies in this process (enqueueRun, the
 * scheduler, the workers): one queue per process keeps Telegram's per-bot rate limit in one place,
 * and one `flushProcessNotifier` before exit covers every path. Built on first use from `config`
 * and the environment; `logs` (the workers') becomes where send failures are logged, else a LogHub
 * of its own writing to the run date's engine.log.
 */
export function processNotifier(config: Config, logs?: LogHub): Notifier {
  const t = config.notify.telegram;
  const key = JSON.stringify([t, process.env.TELEGRAM_TOKEN ?? '']);
  if (!shared || shared.key !== key) {
    const previous = shared?.notifier;
    const entry: Shared = { key, notifier: noopNotifier, logs };
    entry.notifier = createNotifier(config, {
      logs: () =>
        entry.logs ??
        (entry.own ??= new LogHub({ home: config.home, level: config.log.level, stdout: false })),
    });
    shared = entry;
    void previous?.flush();
  } else if (logs) {
    shared.logs = logs;
  }
  return shared.notifier;
}

/** Before the process exits: sends what is pending, waiting at most the configured bound. */
export async function flushProcessNotifier(timeoutMs?: number): Promise<void> {
  const s = shared;
  if (!s) return;
  await s.notifier.flush(timeoutMs);
  s.own?.close();
  s.own = undefined;
}
