/**
 * The flag and value spellings our users type today (their crontabs and the seeds' scripts), mapped
 * to retrain's own before commander parses: `--dry_run`, `--max_concurrent`, `--timeout_minutes`,
 * and `vastai` for the driver `vast`.
 */
const FLAG_ALIASES: Record<string, string> = {
  '--dry_run': '--dry-run',
  '--max_concurrent': '--max-concurrent',
  '--timeout_minutes': '--timeout-minutes',
};

export const DRIVER_ALIASES: Record<string, string> = { vastai: 'vast' };

/** Rewrites aliased flags (also in their `--flag=value` form); everything after `--` is left alone. */
export function normalizeArgv(argv: readonly string[]): string[] {
  const out: string[] = [];
  let rest = false;
  for (const arg of argv) {
    if (rest || arg === '--') {
      rest = true;
      out.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const alias = FLAG_ALIASES[name];
    out.push(alias ? alias + (eq > 0 ? arg.slice(eq) : '') : arg);
  }
  return out;
}

/** `vastai` → `vast`; other values unchanged (validated later). */
export function driverAlias(raw: string): string {
  return DRIVER_ALIASES[raw.trim().toLowerCase()] ?? raw;
}
