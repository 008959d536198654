/**
 * The deployment's SSH key: one ed25519 pair per deployment, generated once and reused. The
 * private key file is 0600 in a 0700 dir and is never logged; only the public line is shown.
 */
import { chmod, link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ConfigError } from '../../errors.js';

const DEPLOYMENT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface DeploymentKey {
  privateKeyPath: string;
  /** `ssh-ed25519 AAAA... retrain-<deployment>` */
  publicKey: string;
  privateKey: Buffer;
}

/**
 * Returns the deployment's key pair, generating `<dir>/<deployment>_ed25519` (0600) and `.pub`
 * the first time. `dir` is created 0700. Safe against concurrent first calls (the first file
 * linked into place wins). ConfigError for a bad deployment name or an unreadable existing key.
 */
export async function ensureDeploymentKey(dir: string, deployment: string): Promise<DeploymentKey> {
  if (!DEPLOYMENT_RE.test(deployment) || deployment.includes('..')) {
    throw new ConfigError(`deployment name ${JSON.stringify(deployment)} cannot name a key file`);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const privateKeyPath = join(dir, `${deployment}_ed25519`);
  const comment = `retrain-${deployment}`;

  let privateKey = await readIfExists(privateKeyPath);
  if (!privateKey) {
    const pair = generateParsablePair(comment);
    const tmp = `${privateKeyPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    await writeFile(tmp, pair.private, { mode: 0o600 });
    try {
      await link(tmp, privateKeyPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
    privateKey = await readFile(privateKeyPath);
  }
  await chmod(privateKeyPath, 0o600);

  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error || !parsed.isPrivateKey()) {
    // The parser's message never quotes the key, but say nothing of it anyway.
    throw new ConfigError(`${privateKeyPath} is not a usable private key`);
  }
  const publicKey = `${parsed.type} ${parsed.getPublicSSH().toString('base64')} ${comment}`;
  const pubPath = `${privateKeyPath}.pub`;
  const existingPub = (await readIfExists(pubPath))?.toString('utf8').trim();
  if (existingPub !== publicKey) await writeFile(pubPath, publicKey + '\n', { mode: 0o644 });
  return { privateKeyPath, publicKey, privateKey };
}

/**
 * ssh2's generator drops a leading zero byte of the ed25519 public key (about 1 key in 300), which
 * gives a file its own parser — and OpenSSH — reject. Draw again until the pair parses.
 */
function generateParsablePair(comment: string): { private: string; public: string } {
  for (let i = 0; i < 20; i++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
    const parsed = ssh2.utils.parseKey(pair.private);
    if (!(parsed instanceof Error) && parsed.isPrivateKey()) return pair;
  }
  throw new ConfigError('could not generate a usable ed25519 key pair');
}

async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
