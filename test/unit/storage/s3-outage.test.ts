import { describe, expect, it } from 'vitest';
import { reportingStore } from '../../../src/storage/reporting.js';
import { S3Store } from '../../../src/storage/s3.js';
import { OutageReporter } from '../../../src/telemetry/outage.js';
import { s3ErrorXml, startStubS3, type StubResponse } from '../../helpers/s3server.js';

describe('S3 store outage (the real SDK against a loopback S3 stand-in)', () => {
  it('503s and refused connections over many calls: one line; a 404 is an answer; back: one line', async () => {
    let answer: StubResponse = { status: 503, body: s3ErrorXml('ServiceUnavailable', 'busy') };
    const stub = await startStubS3(() => answer);
    const lines: unknown[] = [];
    const log = {
      warn: (f: Record<string, unknown>) => lines.push(f.event),
      info: (f: Record<string, unknown>) => lines.push(f.event),
    };
    const outage = new OutageReporter({ name: 'S3 store', target: 's3://artifacts', log });
    const opts = {
      bucket: 'artifacts',
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIAEXAMPLE', secretAccessKey: 'stub-secret-key-0123456789' },
      maxAttempts: 1,
    };
    const store = reportingStore(new S3Store({ ...opts, endpoint: stub.endpoint }), outage);
    try {
      for (let i = 0; i < 5; i++) await expect(store.getBytes('a/b.json')).rejects.toThrow(/503/);
      expect(outage.up).toBe(false);
      answer = { status: 404, body: s3ErrorXml('NoSuchKey', 'no such key') };
      await expect(store.getBytes('a/b.json')).rejects.toThrow(/not found/);
      expect(outage.up).toBe(false); // an error answer does not prove the writes would go through
      answer = { status: 200, body: '{"ok":true}', headers: { 'content-type': 'application/json' } };
      await expect(store.getJson('a/b.json')).resolves.toEqual({ ok: true });
      expect(outage.up).toBe(true);
    } finally {
      await stub.stop();
    }
    // Nothing listening any more: connection refused is an outage too.
    for (let i = 0; i < 5; i++) await expect(store.getBytes('a/b.json')).rejects.toThrow();
    expect(outage.up).toBe(false);
    expect(lines).toEqual(['outage_started', 'outage_ended', 'outage_started']);
  });
});
