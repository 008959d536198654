/**
 * The SSH address of an instance, chosen as the official CLI's `ssh-url` does: direct
 * (`public_ipaddr` + the host port mapped to 22/tcp) when the port map has 22/tcp, otherwise the
 * proxy (`ssh_host` + `ssh_port`, +1 for jupyter runtypes). The user is always root.
 */
import type { VastInstance } from './types.js';

export interface SshEndpoint {
  host: string;
  port: number;
}

function validPort(p: unknown): number | null {
  const n = typeof p === 'string' ? Number(p.trim()) : typeof p === 'number' ? p : NaN;
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : null;
}

/** null until the instance is `running` and has an address. */
export function sshEndpoint(instance: VastInstance | null | undefined): SshEndpoint | null {
  if (!instance || instance.actual_status !== 'running') return null;
  const binding = instance.ports?.['22/tcp']?.[0];
  if (binding) {
    const host = (instance.public_ipaddr ?? '').trim();
    const port = validPort(binding.HostPort);
    if (host && port) return { host, port };
  }
  const host = (instance.ssh_host ?? '').trim();
  let port = validPort(instance.ssh_port);
  if (!host || !port) return null;
  if ((instance.image_runtype ?? '').includes('jupyter')) port = validPort(port + 1);
  return port ? { host, port } : null;
}
