/**
 * Where the training's log goes while it is followed: the local training.log (this attempt's part
 * begins at `facts.localLogBase`) and the job log, masked of the recipe's secrets. The offset read
 * so far is saved every few seconds and at the end; a resume reads again from the saved one.
 */
import { truncate } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LogMask } from '../../../../remote/logMask.js';
import { ensureDir, statInPlace, writeAndClose } from '../../../../util/inPlaceFs.js';
import type { TrainFacts } from '../../../types.js';
import type { AttemptContext } from '../../context.js';
import { together } from '../../record.js';

/** How often the read offset is saved while the log grows. */
const SAVE_EVERY_MS = 5000;

/** Asked in place (src/util/inPlaceFs.ts). */
function fileSize(path: string): number {
  return statInPlace(path)?.size ?? 0;
}

export class LogSink {
  /**
   * Bytes of the remote log kept so far: where a follow after a drop reads on from. Bytes that may
   * begin a secret wait in the mask for the next chunk and are not counted yet.
   */
  offset: number;
  private readonly mask: LogMask;
  private lastSave = Date.now();

  private constructor(private readonly ctx: AttemptContext) {
    this.offset = ctx.facts.logOffset ?? 0;
    this.mask = new LogMask(ctx.recipeSecrets());
  }

  /**
   * `localLogBase` when the attempt has none yet (the local log's size now, before anything of this
   * attempt is appended): entering EXECUTING writes it with the state.
   */
  static baseFacts(ctx: AttemptContext): Partial<TrainFacts> {
    return ctx.facts.localLogBase === undefined ? { localLogBase: fileSize(ctx.trainingLog) } : {};
  }

  /**
   * Opens the sink. A worker that died after appending but before saving the offset left bytes in
   * the local training.log that will be read again: they are cut.
   */
  static async open(ctx: AttemptContext): Promise<LogSink> {
    await ensureDir(dirname(ctx.trainingLog));
    const localSize = fileSize(ctx.trainingLog);
    if (ctx.facts.localLogBase === undefined) await ctx.save({ localLogBase: localSize });
    const expected = ctx.facts.localLogBase! + (ctx.facts.logOffset ?? 0);
    if (localSize > expected) await truncate(ctx.trainingLog, expected);
    return new LogSink(ctx);
  }

  /** Before a follow reads again from `offset`: what the mask held is read again too. */
  reset(): void {
    this.mask.reset();
  }

  /** A chunk of the remote log, read up to `readTo`. */
  async write(text: string, readTo: number, raw: Buffer): Promise<void> {
    const kept = this.mask.empty ? raw : this.mask.push(raw);
    const offset = readTo - this.mask.heldBytes;
    const lines = (kept === raw ? text : kept.toString('utf8'))
      .split('\n')
      .slice(0, 50)
      .filter((line) => line.trim());
    // The job's lines are sent together, in one write where the handle can (one connection keeps
    // their order): a chunk waits for one Redis round trip, not one per line. The local copy is
    // appended meanwhile.
    const { ctx } = this;
    await Promise.all([
      writeAndClose(ctx.trainingLog, kept, 'a'),
      together(ctx.job, () => Promise.all(lines.map((line) => ctx.job.log(line.slice(0, 2000))))),
    ]);
    this.offset = offset;
    if (Date.now() - this.lastSave > SAVE_EVERY_MS) {
      this.lastSave = Date.now();
      await this.ctx.save({ logOffset: offset });
    }
  }

  /**
   * The training ended with the log read to `logOffset`: what the mask held is kept. The offset is
   * written with the next state change: a resume before it reads the log's end again from the offset
   * saved last, after cutting what was appended since (`open`).
   */
  async close(logOffset: number): Promise<void> {
    const rest = this.mask.flush();
    if (rest.length) {
      await writeAndClose(this.ctx.trainingLog, rest, 'a');
      const line = rest.toString('utf8');
      if (line.trim()) await this.ctx.job.log(line.slice(0, 2000));
    }
    this.ctx.note({ logOffset });
  }
}
