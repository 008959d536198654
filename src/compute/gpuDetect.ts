/**
 * GPUs of a host we do not rent (drivers local and ssh), for the concurrency default (12 with a
 * GPU, 2 without): `CUDA_VISIBLE_DEVICES` when the host's environment sets it (it is what a
 * training there would see), else the lines of `nvidia-smi -L`, else none. One exec on the host.
 */
import type { Transport } from '../remote/transport.js';

export interface GpuDetection {
  count: number;
  source: 'CUDA_VISIBLE_DEVICES' | 'nvidia-smi' | 'none';
  /** GPU names from nvidia-smi, or the device ids from CUDA_VISIBLE_DEVICES. */
  names: string[];
}

/**
 * The devices a CUDA_VISIBLE_DEVICES value leaves visible: `0,1` two, `` or `-1` none (CUDA
 * stops at the first invalid id, so `0,-1,1` is one).
 */
export function parseCudaVisibleDevices(value: string): string[] {
  const out: string[] = [];
  for (const raw of value.split(',')) {
    const id = raw.trim();
    if (!id || id.startsWith('-') || !/^(?:\d+|GPU-[0-9A-Fa-f-]+|MIG-[0-9A-Za-z/-]+)$/.test(id)) break;
    out.push(id);
  }
  return out;
}

/** `GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)` lines → names. */
export function parseNvidiaSmiList(stdout: string): string[] {
  const names: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^GPU \d+: (.+?)(?: \(UUID: [^)]*\))?\s*$/.exec(line.trim());
    if (m) names.push(m[1]!);
  }
  return names;
}

const PROBE = [
  'if [ "${CUDA_VISIBLE_DEVICES+set}" = set ]; then printf "cvd=%s\\n" "$CUDA_VISIBLE_DEVICES"; fi',
  'if command -v nvidia-smi >/dev/null 2>&1; then echo smi=1; nvidia-smi -L 2>/dev/null; fi',
  'true',
].join('\n');

/** Looks at the host behind `t`. Throws only when the command cannot run at all. */
export async function detectGpus(t: Transport): Promise<GpuDetection> {
  const r = await t.exec(PROBE, { timeoutMs: 20_000 });
  const lines = r.stdout.split('\n');
  const cvd = lines.find((l) => l.startsWith('cvd='));
  if (cvd !== undefined) {
    const ids = parseCudaVisibleDevices(cvd.slice(4));
    return { count: ids.length, source: 'CUDA_VISIBLE_DEVICES', names: ids };
  }
  if (lines.includes('smi=1')) {
    const names = parseNvidiaSmiList(r.stdout);
    return { count: names.length, source: names.length ? 'nvidia-smi' : 'none', names };
  }
  return { count: 0, source: 'none', names: [] };
}

/** For the run line: `2 GPUs (CUDA_VISIBLE_DEVICES=0,1)`, `1 GPU (nvidia-smi: NVIDIA A100)`, `no GPU`. */
export function describeGpus(d: GpuDetection): string {
  if (d.count === 0) {
    return d.source === 'CUDA_VISIBLE_DEVICES' ? 'no GPU (CUDA_VISIBLE_DEVICES hides them all)' : 'no GPU';
  }
  const n = `${d.count} GPU${d.count === 1 ? '' : 's'}`;
  if (d.source === 'CUDA_VISIBLE_DEVICES') return `${n} (CUDA_VISIBLE_DEVICES=${d.names.join(',')})`;
  const kinds = [...new Set(d.names)];
  return `${n} (nvidia-smi: ${kinds.slice(0, 3).join(', ')}${kinds.length > 3 ? ', ...' : ''})`;
}
