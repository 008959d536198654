/** The production contract (history, rollback, no mixed reads) on S3Store against a real moto_server. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { S3Store } from '../../../src/storage/s3.js';
import { startS3Server, type S3ServerHandle } from '../../helpers/s3server.js';
import { runProductionContract } from './production-contract.js';

let server: S3ServerHandle | undefined;
let bucket = '';

beforeAll(async () => {
  server = await startS3Server();
  bucket = await server.createBucket();
}, 60_000);

afterAll(async () => {
  await server?.stop();
});

runProductionContract(
  'S3Store',
  async () => {
    if (!server) throw new Error('the S3 test server did not start');
    const s = server;
    const prefix = `t-${randomBytes(5).toString('hex')}`;
    const store = new S3Store({
      bucket,
      prefix,
      endpoint: s.endpoint,
      region: s.region,
      forcePathStyle: true,
      credentials: s.credentials,
      maxAttempts: 2,
    });
    return {
      store,
      cleanup: async () => {
        await s.emptyPrefix(bucket, `${prefix}/`);
        store.destroy();
      },
    };
  },
  { publishes: 12 },
);
