/**
 * The bring-your-own-training pieces that need no host: the new recipe fields, versioned
 * references, the rental image and registry login, image errors in status_msg, GPU detection
 * parsing, and the container command run.sh gets.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { describeGpus, parseCudaVisibleDevices, parseNvidiaSmiList } from '../../../src/compute/gpuDetect.js';
import { imageErrorIn, maskLogin, registryOf, rentalImage } from '../../../src/recipes/image.js';
import { splitVersion } from '../../../src/recipes/loader.js';
import { maskedSecretNames } from '../../../src/recipes/secrets.js';
import { describeIssues, RecipeSchema } from '../../../src/recipes/schema.js';
import { containerShell } from '../../../src/remote/container.js';

const BASE = {
  name: 'byo',
  version: 1,
  train: ['python3 train.py'],
  outputs: { required: ['model.bin'] },
};
const parse = (extra: Record<string, unknown>) => RecipeSchema.safeParse({ ...BASE, ...extra });
const problem = (extra: Record<string, unknown>) => {
  const r = parse(extra);
  return r.success ? 'accepted' : describeIssues(r.error.issues);
};

describe('recipe fields for your own training', () => {
  it('accepts the full set and normalises the short forms', () => {
    const r = parse({
      image: 'ghcr.io/team/trainer:1.2',
      imageLogin: { user: 'REG_USER', token: 'REG_TOKEN' },
      minCudaVersion: 12.4,
      minDiskGb: 50,
      healthcheck: 'nvidia-smi -L',
      cleanup: { run: 'rm -rf cache', timeoutSec: 60 },
      inputs: ['hyperparams/', { from: 'models/{{symbol}}/', to: 'warm' }],
      sync: ['logs', { path: 'tb/runs', every: '30s' }],
      container: { image: 'trainer:1', gpus: 'all', mounts: ['/data:/data:ro'], args: ['--shm-size=8g'] },
    });
    expect(r.success, r.success ? '' : describeIssues(r.error.issues)).toBe(true);
    const d = r.data!;
    expect(d.healthcheck).toEqual({ run: 'nvidia-smi -L' });
    expect(d.inputs).toEqual([
      { from: 'hyperparams/', to: 'extra/hyperparams' },
      { from: 'models/{{symbol}}/', to: 'warm' },
    ]);
    expect(d.sync).toEqual([
      { path: 'logs', every: 60 },
      { path: 'tb/runs', every: 30 },
    ]);
    expect(d.container).toMatchObject({ gpus: 'all', mounts: ['/data:/data:ro'] });
    expect(d.container?.engine).toBeUndefined();
  });

  it('refuses what would be unsafe or meaningless, naming the field', () => {
    expect(problem({ imageLogin: { user: 'A', token: 'B' } })).toBe(
      'imageLogin: needs image (the private image it logs in for)',
    );
    expect(problem({ image: 'x:1', imageLogin: { user: 'lower', token: 'B' } })).toMatch(
      /^imageLogin\.user: must name a secret/,
    );
    expect(problem({ inputs: ['../etc/'] })).toMatch(/^inputs\[0\]\.from: must be a store prefix/);
    expect(problem({ inputs: ['hp'] })).toMatch(/^inputs\[0\]\.from: must be a store prefix ending in \//);
    expect(problem({ inputs: [{ from: 'a/', to: 'out/x' }] })).toMatch(
      /must not be under inputs\/, recipe\/ or out\//,
    );
    expect(problem({ sync: ['inputs'] })).toMatch(/^sync\[0\]\.path: must not be under/);
    expect(problem({ sync: ['a/../b'] })).toMatch(/^sync\[0\]\.path: must be a folder inside the work dir/);
    expect(problem({ sync: ['logs', 'logs/'] })).toBe('sync: "logs" is listed twice');
    expect(problem({ container: { image: 'x', mounts: ['/a:/b;rm'] } })).toMatch(
      /mounts\[0\]: must be \/host\/path/,
    );
    expect(problem({ container: { image: 'x', mounts: ['/a/../etc:/b'] } })).toMatch(/must not contain \.\./);
    expect(problem({ container: { image: 'x', args: ['--privileged --pid=host'] } })).toMatch(
      /one flag like/,
    );
    expect(problem({ container: { image: 'x', engine: 'lxc' } })).toMatch(/^container\.engine/);
    expect(problem({ healthcheck: 'test -e {{nope}}' })).toMatch(/unknown placeholder \{\{nope\}\}/);
    expect(problem({ cleanup: 'rm "{{workdir}}"' })).toMatch(/^cleanup\.run/);
    expect(problem({ minDiskGb: -1 })).toMatch(/^minDiskGb/);
  });

  it('splits name@version; a path with @ elsewhere is taken whole', () => {
    expect(splitVersion('xgboost-gpu@1')).toEqual({ ref: 'xgboost-gpu', version: 1 });
    expect(splitVersion('xgboost-gpu')).toEqual({ ref: 'xgboost-gpu' });
    expect(splitVersion('/srv/r@team/recipe')).toEqual({ ref: '/srv/r@team/recipe' });
    expect(splitVersion('/srv/recipe@12')).toEqual({ ref: '/srv/recipe', version: 12 });
  });
});

describe('the rental image', () => {
  const def = { image: 'ghcr.io/team/trainer:1', imageLogin: { user: 'REG_USER', token: 'REG_TOKEN' } };
  it('falls back to vast.image; builds image_login from the named secrets', () => {
    expect(rentalImage({ def: {} }, 'pytorch/pytorch:2')).toEqual({
      image: 'pytorch/pytorch:2',
      secrets: [],
    });
    const img = rentalImage({ def }, 'fallback', { REG_USER: 'bot', REG_TOKEN: 'tok123' });
    expect(img).toEqual({
      image: 'ghcr.io/team/trainer:1',
      login: '-u bot -p tok123 ghcr.io',
      secrets: ['bot', 'tok123'],
    });
    expect(maskLogin('echo: -u bot -p tok123', img)).toBe('echo: -u [REDACTED] -p [REDACTED]');
  });
  it('names an unset or unusable secret, never its value', () => {
    expect(() => rentalImage({ def, file: 'r.yaml' }, 'f', { REG_USER: 'bot' })).toThrow(
      'recipe r.yaml: imageLogin.token: secret "REG_TOKEN" is not set',
    );
    let msg = '';
    try {
      rentalImage({ def }, 'f', { REG_USER: 'bot', REG_TOKEN: 'has space-secretvalue' });
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('secret "REG_TOKEN" holds whitespace');
    expect(msg).not.toContain('secretvalue');
  });
  it('the registry secrets are masked in kept training logs like the recipe secrets', () => {
    expect(maskedSecretNames({ secrets: ['HF_TOKEN'], imageLogin: def.imageLogin })).toEqual([
      'HF_TOKEN',
      'REG_USER',
      'REG_TOKEN',
    ]);
    expect(maskedSecretNames({ secrets: [] })).toEqual([]);
  });
  it('knows the registry of an image reference', () => {
    expect(registryOf('ghcr.io/a/b:1')).toBe('ghcr.io');
    expect(registryOf('localhost:5000/a')).toBe('localhost:5000');
    expect(registryOf('team/trainer:1')).toBe('docker.io');
    expect(registryOf('python:3.11')).toBe('docker.io');
  });
  it('tells an image error in status_msg from a normal boot message', () => {
    expect(imageErrorIn('Loading image')).toBeUndefined();
    expect(imageErrorIn('success, running pytorch/pytorch/ssh')).toBeUndefined();
    expect(imageErrorIn(null)).toBeUndefined();
    expect(
      imageErrorIn(
        "Error response from daemon: pull access denied for x, repository does not exist or may require 'docker login'",
      ),
    ).toMatch(/^Error response from daemon: pull access denied/);
    expect(imageErrorIn('Error: OCI runtime create failed: runc create failed')).toBeDefined();
    expect(
      imageErrorIn('Error response from daemon: manifest for a:b not found: manifest unknown'),
    ).toBeDefined();
  });
});

describe('GPU detection parsing', () => {
  it('CUDA_VISIBLE_DEVICES', () => {
    expect(parseCudaVisibleDevices('0,1')).toEqual(['0', '1']);
    expect(parseCudaVisibleDevices('')).toEqual([]);
    expect(parseCudaVisibleDevices('-1')).toEqual([]);
    expect(parseCudaVisibleDevices('0,-1,1')).toEqual(['0']);
    expect(parseCudaVisibleDevices('GPU-6f1c2d3e-1111')).toEqual(['GPU-6f1c2d3e-1111']);
    expect(parseCudaVisibleDevices('NoDevFiles')).toEqual([]);
  });
  it('nvidia-smi -L and the run line', () => {
    const out =
      'GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-aaa)\nGPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-bbb)\n';
    expect(parseNvidiaSmiList(out)).toEqual(['NVIDIA A100-SXM4-80GB', 'NVIDIA A100-SXM4-80GB']);
    expect(
      parseNvidiaSmiList('NVIDIA-SMI has failed because it could not communicate with the driver'),
    ).toEqual([]);
    expect(describeGpus({ count: 2, source: 'nvidia-smi', names: parseNvidiaSmiList(out) })).toBe(
      '2 GPUs (nvidia-smi: NVIDIA A100-SXM4-80GB)',
    );
    expect(describeGpus({ count: 1, source: 'CUDA_VISIBLE_DEVICES', names: ['3'] })).toBe(
      '1 GPU (CUDA_VISIBLE_DEVICES=3)',
    );
    expect(describeGpus({ count: 0, source: 'none', names: [] })).toBe('no GPU');
  });
});

describe('container mode: the command run.sh builds', () => {
  const def = {
    env: { PYTHONUNBUFFERED: '1' },
    secrets: ['HF_TOKEN'],
    container: {
      image: 'trainer:1',
      gpus: 'all' as const,
      mounts: ['/data:/data:ro'],
      args: ['--shm-size=8g'],
    },
  };
  /** Runs the generated function in bash with a stand-in engine on PATH; prints the command array. */
  function commandFor(engine: 'docker' | 'podman', workdir: string): string[] {
    const script = [
      'set -u',
      `cd "$(mktemp -d)"`,
      `bin=$(mktemp -d); printf '#!/bin/sh\\n' > "$bin/${engine}"; chmod +x "$bin/${engine}"; PATH="$bin:/usr/bin:/bin"`,
      'RETRAIN_PID=4242',
      containerShell(def, workdir),
      'retrain_container_cmd 2 || exit 9',
      `printf '%s\\n' "\${RETRAIN_CT_CMD[@]}"`,
      'cat containers >/dev/null',
    ].join('\n');
    return execFileSync('bash', ['-c', script], { encoding: 'utf8' }).trimEnd().split('\n');
  }
  it('docker: the work dir at its own path, env by name only, --gpus all, mounts and args, the image last', () => {
    const wd = "/srv/work/BTC USDT/it's";
    expect(commandFor('docker', wd)).toEqual([
      'docker',
      'run',
      '--rm',
      '--name',
      'retrain-4242-2',
      '-v',
      `${wd}:${wd}`,
      '-w',
      wd,
      '-e',
      'CUDA_VISIBLE_DEVICES',
      '-e',
      'HF_TOKEN',
      '-e',
      'PYTHONUNBUFFERED',
      '-e',
      'RETRAIN_CHECKPOINT_DIR',
      '-e',
      'RETRAIN_HEARTBEAT_FILE',
      '-e',
      'RETRAIN_RESUME_FROM',
      '-v',
      '/data:/data:ro',
      '--shm-size=8g',
      '--gpus',
      'all',
      'trainer:1',
    ]);
  });
  it('podman (auto-detected when docker is missing) reaches GPUs through CDI', () => {
    const cmd = commandFor('podman', '/w');
    expect(cmd[0]).toBe('podman');
    expect(cmd.slice(-3)).toEqual(['--device', 'nvidia.com/gpu=all', 'trainer:1']);
  });
});
