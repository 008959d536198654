import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { ensureDeploymentKey } from '../../src/remote/ssh/keys.js';
import { runCli, sandbox, type Sandbox } from '../helpers/harness.js';
import { startSshd } from '../helpers/sshd.js';

type Sshd = Awaited<ReturnType<typeof startSshd>>;
const DATE = '20260110';

describe('driver ssh: an existing host (a real sshd on loopback), renting nothing', () => {
  let sb: Sandbox;
  let sshd: Sshd;
  beforeEach(async () => {
    sb = await sandbox(inject('redisUrl'));
    const key = await ensureDeploymentKey(join(sb.home, 'keys'), 'host');
    sshd = await startSshd({ authorizedKeys: [key.publicKey] });
    Object.assign(sb.env, {
      RETRAIN_SSH_HOST: sshd.host,
      RETRAIN_SSH_PORT: String(sshd.port),
      RETRAIN_SSH_USER: sshd.user,
      RETRAIN_SSH_KEY: key.privateKeyPath,
      RETRAIN_REMOTE_ROOT: join(sb.home, 'remote'),
    });
  });
  afterEach(async () => {
    await sshd.stop();
    await sb.cleanup();
  });

  it('trains the reference recipe over SSH with the same workflow and verified artifacts', async () => {
    const r = await runCli(
      [
        'run',
        '--driver',
        'ssh',
        '--symbols',
        'BTCUSDT,ETHUSDT',
        '--date',
        DATE,
        '--ensure-features',
        '--synthetic',
        '--promote',
        'dry',
      ],
      sb.env,
    );
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const status = JSON.parse(
      readFileSync(join(sb.home, 'store/runs', `${DATE}Z`, 'status.json'), 'utf8'),
    ).symbols;
    expect(status.BTCUSDT).toMatchObject({ status: 'success', decision: 'promote' });
    expect(status.ETHUSDT).toMatchObject({ status: 'success' });
    const runtime = JSON.parse(
      readFileSync(join(sb.home, 'store/ml-artifacts', `train__BTCUSDT__${DATE}`, 'runtime.json'), 'utf8'),
    );
    expect(runtime).toMatchObject({ driver: 'ssh', host: sshd.host });
    expect(runtime.workdir.startsWith(join(sb.home, 'remote', 'BTCUSDT'))).toBe(true);
  });
});
