/**
 * An instance as the API shows it (vast-api.md §4): status fields, SSH address, prices. With the
 * `oddRows` fault, rows carry the loosely typed fields the spec allows: `ports` as `{}`, null or a
 * list, `extra_env` as strings (`K=V`) or a mix of strings and pairs, nulls in usage figures.
 */
import type { VastInstance } from '../types.js';
import type { SimContext } from './context.js';
import { phase, runningMs } from './lifecycle.js';
import type { SimInstance } from './types.js';
import { num } from './util.js';

const DIRECT = /(^|\s)(ssh_direc|ssh_direct|jupyter_direc|jupyter_direct)(\s|$)/;

function statusMsg(i: SimInstance, status: string | null): string | null {
  // A pull fails while loading; an OCI error comes when the container is created.
  if (i.badImage && status === (i.badImage.kind === 'pull' ? 'loading' : 'created')) return i.badImage.msg;
  switch (status) {
    case 'loading':
      return i.stuck ? 'Pulling image: waiting for layers' : 'Loading image';
    case 'running':
      return `success, running ${i.image}/ssh`;
    case 'rebooting':
      return 'Rebooting';
    case 'unknown':
      return null;
    case 'stopped':
      return i.outbid ? 'Instance stopped: outbid by a higher bid on this machine' : 'Instance stopped';
    case 'exited':
      return i.outbid && !i.killed
        ? 'Instance stopped: outbid by a higher bid on this machine'
        : 'Error: container exited unexpectedly (code 137)';
    case 'offline':
      return 'host is offline';
    default:
      return null;
  }
}

/** The loosely typed variants of `oddRows`, picked by instance id so a row keeps its shape. */
function oddFields(i: SimInstance, row: Record<string, unknown>, sshUp: boolean): void {
  const variant = i.id % 3;
  if (!sshUp) row.ports = [{}, null, []][variant];
  else row.ports = { ...(row.ports as Record<string, unknown>), '8080/tcp': null };
  const env = Object.entries(i.userEnv);
  row.extra_env = env.map(([k, v], n) => (variant === 1 && n % 2 === 1 ? [k, v] : `${k}=${v}`));
  row.gpu_util = null;
  row.disk_usage = null;
  row.image_args = null;
  row.inet_up = row.inet_up === null ? null : String(row.inet_up);
}

export function view(ctx: SimContext, i: SimInstance, now: number): VastInstance {
  const o = i.offer;
  const status = i.destroyedAt !== undefined ? 'exited' : phase(ctx, i, now);
  // A transient unknown/rebooting keeps the ports: the container still runs.
  const up =
    !i.killed &&
    i.destroyedAt === undefined &&
    (status === 'running' || status === 'unknown' || status === 'rebooting');
  const direct = DIRECT.test(i.runtype);
  const ep =
    i.sshPort !== undefined ? { host: ctx.opts.host ?? '127.0.0.1', port: i.sshPort } : ctx.opts.sshEndpoint;
  const stopped = i.stops.length === i.starts.length && i.destroyedAt === undefined;
  const n = num(o.num_gpus) ?? 1;
  const gpuRam = num(o.gpu_ram) ?? 0;
  const halted = (i.outbid && !i.killed) || stopped;
  const row: Record<string, unknown> = {
    id: i.id,
    machine_id: i.machineId,
    host_id: num(o.host_id),
    label: i.label,
    image_uuid: i.image,
    image_runtype: i.runtype,
    image_args: [],
    onstart: i.onstart,
    extra_env: Object.entries(i.userEnv).map(([k, v]) => [k, v]),
    actual_status: status,
    intended_status: i.destroyedAt !== undefined || stopped ? 'stopped' : 'running',
    // Outbid: the contract is halted while the intent stays `running` (it would resume if it won again).
    cur_state: i.destroyedAt !== undefined ? 'unloaded' : halted ? 'stopped' : 'running',
    next_state: i.destroyedAt !== undefined ? 'unloaded' : stopped ? 'stopped' : 'running',
    status_msg: statusMsg(i, status),
    start_date: i.createdAt / 1000,
    end_date: i.destroyedAt !== undefined ? i.destroyedAt / 1000 : null,
    uptime_mins: status === 'running' ? runningMs(ctx, i, now) / 60000 : 0,
    duration: Math.max(0, now - i.createdAt) / 1000,
    num_gpus: n,
    gpu_name: o.gpu_name,
    gpu_ram: gpuRam,
    gpu_totalram: gpuRam * n,
    gpu_util: status === 'running' ? 37.5 : 0,
    cpu_ram: num(o.cpu_ram) ?? null,
    cpu_cores_effective: num(o.cpu_cores_effective) ?? null,
    disk_space: i.disk,
    disk_usage: 0.1,
    disk_util: 0.01,
    ssh_host: ep.host,
    ssh_port: ep.port,
    // Vast may send trailing whitespace here; clients must strip it.
    public_ipaddr: `${ep.host} `,
    ports: up && direct ? { '22/tcp': [{ HostIp: '0.0.0.0', HostPort: String(ep.port) }] } : null,
    direct_port_start: direct ? ep.port : -1,
    direct_port_end: direct ? ep.port : -1,
    geolocation: o.geolocation ?? null,
    inet_up: num(o.inet_up) ?? null,
    inet_down: num(o.inet_down) ?? null,
    dph_base: i.dphBase,
    dph_total: i.dphTotal,
    is_bid: i.isBid,
    min_bid: num(o.min_bid) ?? null,
    storage_cost: num(o.storage_cost) ?? null,
    reliability2: num(o.reliability2) ?? num(o.reliability) ?? null,
    verification: o.verification ?? (o.verified ? 'verified' : 'unverified'),
    cuda_max_good: num(o.cuda_max_good) ?? null,
    jupyter_token: i.jupyterToken,
    instance: {
      gpuCostPerHour: status === 'running' ? i.dphBase : 0,
      diskHour: i.storageHour,
      totalHour: status === 'running' ? i.dphTotal : i.storageHour,
    },
    search: { gpuCostPerHour: i.dphBase, diskHour: i.storageHour, totalHour: i.dphTotal },
  };
  if (ctx.faults.oddRows) oddFields(i, row, up && direct);
  return row as unknown as VastInstance;
}
