import { InputError } from '../errors.js';

/** `--health-port N` as a config override (health.port); undefined flag, no override. */
export function healthOverrides(flag: string | undefined): Record<string, unknown> {
  if (flag === undefined) return {};
  const port = Number(flag);
  if (!/^\d+$/.test(flag) || port > 65535)
    throw new InputError(`--health-port must be an integer from 0 to 65535, got ${JSON.stringify(flag)}`);
  return { health: { port } };
}
