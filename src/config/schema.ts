import { z } from 'zod';

/**
 * The one typed configuration. Loose input (file + env + flags) goes through `ConfigSchema` once at
 * the edge (src/config/load.ts); everything after that takes a `Config`.
 */
export const ModeSchema = z.enum(['sequential', 'parallel', 'hybrid']);
export const DriverSchema = z.enum(['local', 'ssh', 'vast']);
export const PromoteModeSchema = z.enum(['off', 'dry', 'auto']);

export const ConfigSchema = z
  .object({
    /** RETRAIN_HOME: every piece of local state lives below it. */
    home: z.string().min(1),
    redisUrl: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://'),
    /** BullMQ prefix and ledger key prefix; one per deployment (tests use one per test). */
    queuePrefix: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
    deployment: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/),
    store: z.object({ kind: z.literal('local'), root: z.string().min(1) }).strict(),
    symbols: z.string().min(1),
    featureset: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/),
    recipe: z.string().min(1),
    costsFile: z.string().optional(),
    train: z
      .object({
        driver: DriverSchema,
        mode: ModeSchema,
        /** Hybrid cap. Unset: 12 when the target has GPUs, 2 when CPU-only (DESIGN.md). */
        maxConcurrent: z.number().int().min(1).max(1000).optional(),
        /** Upper bound on hosts at once; parallel mode's cap. */
        maxInstances: z.number().int().min(1).max(1000),
        timeoutMinutes: z
          .number()
          .positive()
          .max(24 * 60),
        retries: z.number().int().min(0).max(20),
        /** First retry delay; later ones double, with ±25 % jitter. */
        backoffMs: z.number().int().min(0),
        /** Jobs one worker process can hold at once (the global cap still applies). */
        workerConcurrency: z.number().int().min(1).max(1000),
        pollMs: z.number().int().min(50).max(60_000),
      })
      .strict(),
    promotion: z
      .object({
        mode: PromoteModeSchema,
        canary: z.boolean(),
        maxDrawdownTolerance: z.number().min(1).max(10),
      })
      .strict(),
    worker: z
      .object({
        /** Lock on an active job; renewed every half. Short, so a dead worker is noticed fast. */
        lockDurationMs: z.number().int().min(1000),
        stalledIntervalMs: z.number().int().min(500),
        /** Every orchestrator restart during a long training is one stall: allow several. */
        maxStalledCount: z.number().int().min(1).max(100),
        /** How long a graceful shutdown waits for jobs to hand back before forcing. */
        shutdownGraceMs: z.number().int().min(0),
      })
      .strict(),
    retention: z
      .object({
        completedAgeSec: z.number().int().min(60),
        completedCount: z.number().int().min(10),
        failedAgeSec: z.number().int().min(60),
        keepLogs: z.number().int().min(10),
      })
      .strict(),
    log: z.object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) }).strict(),
  })
  .strict();

export type Config = Readonly<z.infer<typeof ConfigSchema>>;
export type Mode = z.infer<typeof ModeSchema>;
