/**
 * The bash functions the runner ships to the host, kept as real .sh files beside this module (so
 * `bash -n` can check them and no JS escaping is involved). They take no data but numeric ids.
 * See sh/common.sh (process scan, liveness, session kill) and sh/run.sh (run.sh's own functions).
 */
import { readFileSync } from 'node:fs';

function load(name: string): string {
  return readFileSync(new URL(`./sh/${name}`, import.meta.url), 'utf8');
}

/** Defines retrain_scan, retrain_alive and retrain_kill_session. */
export const COMMON_SH: string = load('common.sh');
/** Defines retrain_heartbeat, retrain_step, retrain_reap, retrain_checksums and retrain_finish. */
export const RUN_SH: string = load('run.sh');
