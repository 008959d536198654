import { InputError } from '../errors.js';

/** Parses a strict YYYYMMDD (or YYYY-MM-DD) calendar date, UTC. Throws InputError naming the value. */
export function parseRunDate(raw: string): string {
  const s = raw.trim();
  const m = /^(\d{4})-?(\d{2})-?(\d{2})$/.exec(s);
  if (!m) throw new InputError(`invalid date ${JSON.stringify(raw)}: expected YYYYMMDD, e.g. 20260115`);
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const dt = new Date(Date.UTC(y, mo - 1, d));
  if (dt.getUTCFullYear() !== y || dt.getUTCMonth() !== mo - 1 || dt.getUTCDate() !== d || y < 2000) {
    throw new InputError(`invalid date ${JSON.stringify(raw)}: no such calendar day`);
  }
  return `${m[1]}${m[2]}${m[3]}`;
}

export function formatRunDate(d: Date): string {
  return d.toISOString().slice(0, 10).replaceAll('-', '');
}

/** Yesterday in UTC: the default run date (the last complete trading day). */
export function yesterdayUtc(now: Date = new Date()): string {
  return formatRunDate(new Date(now.getTime() - 86_400_000));
}
