/**
 * Failpoints for the chaos suite (`npm run test:chaos`): `RETRAIN_FAILPOINTS=name[,name...]` makes
 * this process die with SIGKILL — no cleanup, no `finally` — the moment it reaches a named point,
 * exactly as a machine crash or an OOM kill would. Unset in production; reading one env variable is
 * all it costs. Names used: `enter:<STATE>` (right after the state is saved), `provisioning:created`
 * (instance rented and recorded, not yet booted), `transferring:staged`, `executing:started`,
 * `fetching:collected`, `releasing:released`.
 */
export function failpoint(name: string): void {
  const spec = process.env.RETRAIN_FAILPOINTS;
  if (!spec) return;
  if (spec.split(',').some((s) => s.trim() === name)) {
    process.stderr.write(`failpoint ${name}: killing this process\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
