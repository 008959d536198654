/**
 * Container mode (`container:` in a recipe, drivers local and ssh): each step of run.sh runs as
 * `ENGINE run --rm --name retrain-<pid>-<step> -v WORKDIR:WORKDIR -w WORKDIR ... IMAGE bash -c STEP`.
 * The work dir is mounted at its own path, so every placeholder path stays valid inside. run.sh
 * itself (pid, heartbeat, timeouts, exit_code) stays on the host, so detach/reattach, log follow
 * and the heartbeat hold as without a container; each container's name is written to `containers`
 * first, and every way out of a step (its end, its timeout, run.sh's end, killRun) force-removes
 * them: killing the engine's client alone would leave the container running.
 */
import type { RecipeDef } from '../recipes/schema.js';
import { shellQuote as q } from '../recipes/template.js';

/** The environment variables passed into the container (by name: values never on a command line). */
export function containerEnvNames(def: Pick<RecipeDef, 'env' | 'secrets'>): string[] {
  const names = new Set([
    ...Object.keys(def.env),
    ...def.secrets,
    'RETRAIN_HEARTBEAT_FILE',
    'RETRAIN_CHECKPOINT_DIR',
    'RETRAIN_RESUME_FROM',
    'CUDA_VISIBLE_DEVICES',
  ]);
  return [...names].sort();
}

/**
 * Bash defining `retrain_container_cmd N`, which sets the array RETRAIN_CT_CMD to the engine
 * command for step N (and records the container's name), or returns 1 with a line in train.log
 * when the host has no usable engine.
 */
export function containerShell(
  def: Pick<RecipeDef, 'container' | 'env' | 'secrets'>,
  workdir: string,
): string {
  const c = def.container;
  if (!c) return '';
  const fixed = [
    '-v',
    `${workdir}:${workdir}`,
    '-w',
    workdir,
    ...containerEnvNames(def).flatMap((n) => ['-e', n]),
    ...c.mounts.flatMap((m) => ['-v', m]),
    ...c.args,
  ]
    .map(q)
    .join(' ');
  const fail = (what: string) => `printf '[retrain] container: %s\\n' ${q(what)} >>train.log; return 1`;
  return [
    'retrain_container_cmd() {',
    `  local n=$1 engine=${q(c.engine ?? 'auto')} name`,
    '  if [ "$engine" = auto ]; then',
    '    if command -v docker >/dev/null 2>&1; then engine=docker',
    '    elif command -v podman >/dev/null 2>&1; then engine=podman',
    `    else ${fail('neither docker nor podman is installed on this host')}; fi`,
    '  fi',
    `  command -v "$engine" >/dev/null 2>&1 || { ${fail(`${c.engine ?? 'the engine'} is not installed on this host`)}; }`,
    '  name="retrain-$RETRAIN_PID-$n"',
    `  printf '%s %s\\n' "$engine" "$name" >>containers`,
    `  RETRAIN_CT_CMD=("$engine" run --rm --name "$name" ${fixed})`,
    ...(c.gpus === 'all'
      ? [
          // docker's flag; podman reaches NVIDIA GPUs through CDI.
          '  if [ "$engine" = docker ]; then RETRAIN_CT_CMD+=(--gpus all)',
          '  else RETRAIN_CT_CMD+=(--device nvidia.com/gpu=all); fi',
        ]
      : []),
    `  RETRAIN_CT_CMD+=(${q(c.image)})`,
    `  printf '[retrain] step %s runs in %s container %s (image %s)\\n' "$n" "$engine" "$name" ${q(c.image)} >>train.log`,
    '}',
  ].join('\n');
}
