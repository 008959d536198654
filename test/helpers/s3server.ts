/**
 * A real S3-compatible server for the S3 store tests: `moto_server` (or `python3 -m moto.server`)
 * started on a free loopback port and stopped at teardown, or an external server (e.g. MinIO) named
 * by S3_TEST_ENDPOINT (+ S3_TEST_ACCESS_KEY_ID / S3_TEST_SECRET_ACCESS_KEY / S3_TEST_REGION).
 *
 * Also `startStubS3`: a tiny HTTP server answering with canned S3 responses, for what a real server
 * will not do on demand (403, 503, a corrupted object).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { delimiter, join } from 'node:path';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { freePort } from '../../src/util/net.js';

export interface S3ServerHandle {
  /** `http://127.0.0.1:<port>` (or S3_TEST_ENDPOINT). */
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** What is serving: 'moto' started here, or 'external'. */
  kind: 'moto' | 'external';
  /** A client for test set-up and inspection (path-style). */
  client: S3Client;
  /** Creates a fresh bucket (random name unless given) and returns its name. */
  createBucket(name?: string): Promise<string>;
  /** Deletes every object under `prefix` ('' = all) in a bucket. */
  emptyPrefix(bucket: string, prefix?: string): Promise<void>;
  /** Empties and deletes a bucket. */
  deleteBucket(bucket: string): Promise<void>;
  /** Environment for the `aws` CLI: credentials and region of this server. */
  awsEnv(): Record<string, string>;
  stop(): Promise<void>;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The command that starts moto, or undefined when this machine has none. */
export function motoCommand(): string[] | undefined {
  const bin = onPath('moto_server');
  if (bin && spawnSync(bin, ['--help'], { stdio: 'ignore', timeout: 30_000 }).status === 0) return [bin];
  const py = spawnSync('python3', ['-c', 'import moto.server'], { stdio: 'ignore', timeout: 30_000 });
  if (py.status === 0) return ['python3', '-m', 'moto.server'];
  return undefined;
}

export const NO_S3_SERVER_MESSAGE =
  'no S3-compatible server for the S3 store tests: install moto (`pip install "moto[server]"`, which ' +
  'provides moto_server; Debian has no package for it) or point S3_TEST_ENDPOINT at a running MinIO ' +
  '(with S3_TEST_ACCESS_KEY_ID / S3_TEST_SECRET_ACCESS_KEY, default minioadmin/minioadmin)';

async function answers(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(endpoint + '/', { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/** Starts moto (or uses S3_TEST_ENDPOINT) and resolves once it answers HTTP. */
export async function startS3Server(): Promise<S3ServerHandle> {
  const external = process.env.S3_TEST_ENDPOINT;
  let child: ChildProcess | undefined;
  let endpoint: string;
  let credentials: { accessKeyId: string; secretAccessKey: string };
  const region = process.env.S3_TEST_REGION || 'us-east-1';

  if (external) {
    endpoint = external.replace(/\/$/, '');
    credentials = {
      accessKeyId: process.env.S3_TEST_ACCESS_KEY_ID || 'minioadmin',
      secretAccessKey: process.env.S3_TEST_SECRET_ACCESS_KEY || 'minioadmin',
    };
    if (!(await answers(endpoint))) throw new Error(`S3_TEST_ENDPOINT=${endpoint} does not answer HTTP`);
  } else {
    const cmd = motoCommand();
    if (!cmd) throw new Error(NO_S3_SERVER_MESSAGE);
    const port = await freePort();
    endpoint = `http://127.0.0.1:${port}`;
    credentials = { accessKeyId: 'retrain-test-key', secretAccessKey: 'retrain-test-secret-not-for-logs' };
    let stderr = '';
    const proc = spawn(cmd[0]!, [...cmd.slice(1), '-H', '127.0.0.1', '-p', String(port)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
    });
    child = proc;
    // moto logs every request: keep only the tail, for error messages.
    proc.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString('utf8')).slice(-4000);
    });
    let exited: number | null | undefined;
    proc.once('exit', (code) => {
      exited = code;
    });
    const deadline = Date.now() + 30_000;
    while (!(await answers(endpoint))) {
      if (exited !== undefined) throw new Error(`${cmd.join(' ')} exited with ${exited}: ${stderr.trim()}`);
      if (Date.now() > deadline) {
        killGroup(proc, 'SIGKILL');
        throw new Error(`${cmd.join(' ')} did not answer on ${endpoint} within 30 s: ${stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const client = new S3Client({
    endpoint,
    region,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const created = new Set<string>();

  const emptyPrefix = async (bucket: string, prefix = '') => {
    let token: string | undefined;
    do {
      const res = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      const objects = (res.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (objects.length > 0) {
        await client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects } }));
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  };

  const handle: S3ServerHandle = {
    endpoint,
    region,
    credentials,
    kind: external ? 'external' : 'moto',
    client,
    async createBucket(name) {
      const bucket = name ?? `retrain-test-${randomBytes(5).toString('hex')}`;
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      created.add(bucket);
      return bucket;
    },
    emptyPrefix,
    async deleteBucket(bucket) {
      await emptyPrefix(bucket);
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      created.delete(bucket);
    },
    awsEnv() {
      return {
        AWS_ACCESS_KEY_ID: credentials.accessKeyId,
        AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
        AWS_DEFAULT_REGION: region,
        AWS_REGION: region,
        AWS_EC2_METADATA_DISABLED: 'true',
        AWS_CONFIG_FILE: '/dev/null',
        AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      };
    },
    async stop() {
      if (external) {
        for (const b of [...created]) await handle.deleteBucket(b).catch(() => undefined);
      }
      client.destroy();
      if (child && child.exitCode === null && child.signalCode === null) {
        const gone = new Promise<void>((r) => child!.once('exit', () => r()));
        killGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child!, 'SIGKILL'), 5000);
        await gone;
        clearTimeout(timer);
      }
    },
  };
  return handle;
}

/** Signals the process group of a child started with `detached: true` (moto and its workers). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

export interface StubRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export interface StubResponse {
  status: number;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export interface StubS3 {
  endpoint: string;
  requests: StubRequest[];
  stop(): Promise<void>;
}

/** An S3 error document, as S3 sends it. */
export function s3ErrorXml(code: string, message: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>` +
    `<RequestId>stub</RequestId><HostId>stub</HostId></Error>`
  );
}

/** A loopback HTTP server answering every request with `handler`'s canned response. */
export async function startStubS3(handler: (req: StubRequest) => StubResponse): Promise<StubS3> {
  const requests: StubRequest[] = [];
  const server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: StubRequest = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks),
      };
      requests.push(r);
      const out = handler(r);
      const body = out.body === undefined ? Buffer.alloc(0) : Buffer.from(out.body);
      res.writeHead(out.status, {
        'content-type': 'application/xml',
        'content-length': String(
          r.method === 'HEAD' ? Number(out.headers?.['content-length'] ?? 0) : body.length,
        ),
        ...out.headers,
      });
      res.end(r.method === 'HEAD' ? undefined : body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
