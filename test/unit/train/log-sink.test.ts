/**
 * The training log's sink: a chunk's lines go to the job log together (one Redis round trip's wait,
 * not one per line) and arrive in order; the local copy gets the bytes.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job, Queue } from 'bullmq';
import { afterAll, describe, expect, it } from 'vitest';
import type { AttemptContext } from '../../../src/train/attempt/context.js';
import { LogSink } from '../../../src/train/attempt/steps/execute/logSink.js';
import type { JobHandle, TrainFacts } from '../../../src/train/types.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** The parts of an attempt the sink uses, over `log`. */
async function sinkFor(log: (line: string) => Promise<void>): Promise<{ sink: LogSink; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'retrain-logsink-'));
  dirs.push(dir);
  const file = join(dir, 'logs', 'training.log');
  let facts: TrainFacts = {};
  const ctx = {
    trainingLog: file,
    get facts() {
      return facts;
    },
    async save(patch: Partial<TrainFacts>) {
      facts = { ...facts, ...patch };
    },
    recipeSecrets: () => [],
    job: { log } as unknown as JobHandle,
  } as unknown as AttemptContext;
  return { sink: await LogSink.open(ctx), file };
}

describe('LogSink.write', () => {
  it("sends a chunk's lines without waiting for each answer, in order, and appends the bytes here", async () => {
    const sent: string[] = [];
    const answers: (() => void)[] = [];
    const { sink, file } = await sinkFor(
      (line) =>
        new Promise<void>((resolve) => {
          sent.push(line);
          answers.push(resolve);
        }),
    );
    const text = 'epoch 1\n\nepoch 2\n   \nepoch 3\n';
    const written = sink.write(text, text.length, Buffer.from(text));
    // All three lines are out before any answer came back (blank lines are not sent).
    await new Promise((r) => setTimeout(r, 50));
    expect(sent).toEqual(['epoch 1', 'epoch 2', 'epoch 3']);
    let done = false;
    void written.then(() => (done = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(done).toBe(false);
    for (const answer of answers) answer();
    await written;
    expect(sink.offset).toBe(text.length);
    expect(await readFile(file, 'utf8')).toBe(text);
  });

  it('keeps the order of 50 lines in a real BullMQ job log', async () => {
    const queue = new Queue(`logsink-${randomBytes(4).toString('hex')}`, { connection: { url: REDIS_URL } });
    try {
      const added = await queue.add('t', {});
      const job = (await Job.fromId(queue, added.id!))!;
      const { sink } = await sinkFor(async (line) => {
        await job.log(line);
      });
      const lines = Array.from({ length: 50 }, (_, i) => `line ${i}`);
      const text = lines.join('\n') + '\n';
      await sink.write(text, text.length, Buffer.from(text));
      const { logs } = await queue.getJobLogs(added.id!);
      expect(logs).toEqual(lines);
    } finally {
      await queue.obliterate({ force: true });
      await queue.close();
    }
  });
});
