import cliProgress from 'cli-progress';
import type { LedgerEntry } from '../ledger/ledger.js';

export interface ProgressView {
  update(ledger: Record<string, LedgerEntry>): void;
  stop(): void;
}

const FINAL = new Set(['success', 'failed', 'skipped']);

/**
 * Progress of a run: a live bar on a TTY, plain lines (one per symbol state change) otherwise.
 * Only the run's symbols are counted.
 */
export function createProgressView(
  symbols: string[],
  out: NodeJS.WriteStream = process.stdout,
): ProgressView {
  const total = symbols.length;
  if (out.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: ' {bar} {value}/{total} done | running {running} | failed {failed} | {current}',
        hideCursor: true,
        stream: out,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { running: 0, failed: 0, current: '' });
    return {
      update(ledger) {
        const entries = symbols.map((s) => ledger[s]);
        const done = entries.filter((e) => e && FINAL.has(e.status)).length;
        const running = entries.filter((e) => e?.status === 'running');
        const failed = entries.filter((e) => e?.status === 'failed').length;
        const current = running
          .slice(0, 4)
          .map((e) => `${e!.symbol}:${e!.state ?? ''}`)
          .join(' ');
        bar.update(done, { running: running.length, failed, current });
      },
      stop() {
        bar.stop();
      },
    };
  }
  const last = new Map<string, string>();
  return {
    update(ledger) {
      for (const s of symbols) {
        const e = ledger[s];
        if (!e) continue;
        const key = `${e.status}/${e.state ?? ''}/${e.attempts}`;
        if (last.get(s) === key) continue;
        last.set(s, key);
        const extra =
          e.status === 'running'
            ? ` ${e.state ?? ''} (attempt ${e.attempts})`
            : e.reason
              ? ` (${e.reason})`
              : '';
        out.write(`${new Date().toISOString()} ${s} ${e.status}${extra}\n`);
      }
    },
    stop() {},
  };
}
