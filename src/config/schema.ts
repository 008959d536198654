import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

/**
 * The one typed configuration. Loose input (file + env + flags) goes through `ConfigSchema` once at
 * the edge (src/config/load.ts); everything after that takes a `Config`.
 */
export const ModeSchema = z.enum(['sequential', 'parallel', 'hybrid']);
export const DriverSchema = z.enum(['local', 'ssh', 'vast']);
export const PromoteModeSchema = z.enum(['off', 'dry', 'auto']);

/**
 * Where artifacts live (DESIGN.md "Storage layout"): a local folder, or a bucket on S3, R2, MinIO.
 * S3 credentials are never part of the config (it is logged and copied into job data): the store
 * reads S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY, else the AWS credential chain, when it is built.
 */
export const StoreSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('local'), root: z.string().min(1) }).strict(),
  z
    .object({
      kind: z.literal('s3'),
      /** Unset for AWS S3; R2: https://<account>.r2.cloudflarestorage.com; MinIO: http://host:9000. */
      endpoint: z
        .string()
        .regex(/^https?:\/\/[^\s/@]+(:\d+)?(\/\S*)?$/, 'must be an http(s) URL without credentials')
        .optional(),
      bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name'),
      /** R2 takes 'auto'. */
      region: z.string().min(1).default('us-east-1'),
      /** Path-style URLs (<endpoint>/<bucket>/<key>): MinIO and most self-hosted servers need it. */
      forcePathStyle: z.boolean().default(false),
      /** Keys are stored below this prefix inside the bucket. */
      prefix: z
        .string()
        .regex(/^[A-Za-z0-9_.=+-]+(\/[A-Za-z0-9_.=+-]+)*\/?$/, 'must look like a/b or a/b/')
        .refine((p) => !p.split('/').some((seg) => seg === '.' || seg === '..'), "no '.' or '..' segments")
        .optional(),
    })
    .strict(),
]);

export const ConfigSchema = z
  .object({
    /** RETRAIN_HOME: every piece of local state lives below it. */
    home: z.string().min(1),
    redisUrl: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://'),
    /** BullMQ prefix and ledger key prefix; one per deployment (tests use one per test). */
    queuePrefix: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/),
    deployment: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/),
    store: StoreSchema,
    symbols: z.string().min(1),
    featureset: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/),
    recipe: z.string().min(1),
    costsFile: z.string().optional(),
    /** Recipe variables (the model's parameters): each must be one the recipe declares; `--var` overrides. */
    recipeVars: z.record(z.string(), z.string()),
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
        /**
         * A training with no new log line, no progress and no touch of RETRAIN_HEARTBEAT_FILE for
         * this long is taken for hung: killed, and the attempt retried.
         */
        heartbeatStaleMin: z.number().positive(),
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
    /**
     * The resume ledger in Redis (src/ledger). A date's keys expire `retentionDays` after the date was
     * last written; `runs/<date>Z/status.json` in the store stays the durable record.
     */
    ledger: z
      .object({
        /**
         * Days a run date's ledger stays in Redis after its last change (0: forever). Past it,
         * `retrain status --date` shows nothing for the date and re-planning it trains every symbol
         * again (its successes are no longer there to be skipped).
         */
        retentionDays: z.number().min(0).max(3650),
      })
      .strict(),
    /** Operational alerts (Telegram when configured, and a log event), checked by the workers. */
    alerts: z
      .object({
        /**
         * A train job in PROVISIONING longer than this is reported stuck (once per attempt). Unset:
         * derived from the driver: vast `bootDeadlineSec × maxProvisionTries` plus a minute, local and
         * ssh 5 min; capped by the symbol's own timeout either way (see src/train/stuck.ts).
         */
        provisioningStuckMin: z
          .number()
          .positive()
          .max(24 * 60)
          .optional(),
        /** How often the workers' repeatable check looks at the running train jobs (0 turns it off). */
        checkEverySec: z.number().int().min(0).max(3600),
      })
      .strict(),
    /** Renting on Vast.ai (driver `vast`). The API key comes from VAST_API_KEY, never from a file. */
    vast: z
      .object({
        apiUrl: z.string().url(),
        /** Retries of one API call on network errors, 429 and 5xx (jittered exponential backoff). */
        apiRetries: z.number().int().min(0).max(20),
        /** First retry delay; doubles up to 30 s. A 429's Retry-After is honoured. */
        apiRetryBaseMs: z.number().int().min(1),
        gpuNames: z.array(z.string().min(1)).min(1),
        /** $/h against the offer's full dph_total (storage included). */
        maxHourlyCost: z.number().positive(),
        minGpuMemoryGb: z.number().min(0),
        minReliability: z.number().min(0).max(1),
        verifiedOnly: z.boolean(),
        minDiskGb: z.number().min(0),
        minInetDownMbps: z.number().min(0),
        minCudaVersion: z.number().min(0).optional(),
        numGpus: z.number().int().min(1).max(16),
        /** Container image when the recipe names none. */
        image: z.string().min(1),
        diskGb: z.number().int().min(8),
        runtype: z.enum(['ssh_direct', 'ssh_proxy']),
        /** Running + SSH must answer within this, or the instance is destroyed and the next offer tried. */
        bootDeadlineSec: z.number().int().min(5),
        maxProvisionTries: z.number().int().min(1).max(50),
        /** A rental never lives longer: enforced by the processor, the reaper and an on-instance watchdog. */
        maxRuntimeMin: z.number().positive(),
        /** How often a running training's instance is checked for being alive. */
        healthCheckSec: z.number().min(1),
        /**
         * Rent interruptible (bid) instances: cheaper, but a higher bid stops them. A run can say
         * otherwise with `--interruptible` / `--no-interruptible`.
         */
        interruptible: z.boolean(),
        /**
         * The bid of an interruptible rental in $/h per machine, GPU part (storage is billed on top),
         * like `vastai create instance --bid_price`. Offers whose min_bid is above it are skipped.
         * Unset: bidMultiplier × the offer's min_bid. Either way capped so bid + storage stays within
         * maxHourlyCost, and never below min_bid (such a bid never starts).
         */
        bidPrice: z.number().min(0.001).max(128).optional(),
        /** Unset bidPrice: bid this many times the offer's min_bid (headroom against being outbid). */
        bidMultiplier: z.number().min(1).max(10),
        /** How often the workers' repeatable reaper pass runs (0 turns it off). */
        reapEveryMin: z.number().min(0),
        /** Work dirs on the instance. */
        workRoot: z.string().regex(/^\/[A-Za-z0-9_./-]+$/),
        sshUser: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/),
        /**
         * The instance pool: an instance whose symbol is done is handed to the next symbol of the
         * run instead of being destroyed (src/compute/pool.ts).
         */
        pool: z
          .object({
            enabled: z.boolean(),
            /** An instance nobody holds is destroyed after this long (and all of a run's at its end). */
            idleGraceSec: z.number().min(0),
            /** Symbols training at once on one instance (each in its own work dir). */
            slotsPerHost: z.number().int().min(1).max(16),
          })
          .strict(),
      })
      .strict(),
    /** An existing machine (driver `ssh`). */
    ssh: z
      .object({
        host: z.string().min(1).optional(),
        port: z.number().int().min(1).max(65535),
        user: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/),
        keyPath: z.string().min(1).optional(),
        workRoot: z.string().regex(/^\/[A-Za-z0-9_./-]+$/),
      })
      .strict(),
    /**
     * The daily run (`retrain scheduler`): one BullMQ job scheduler whose job, taken by a worker,
     * plans the run for the day before its scheduled slot (UTC) and enqueues it once per slot.
     */
    schedule: z
      .object({
        /** false: `retrain scheduler` removes the schedule instead of registering it. */
        enabled: z.boolean(),
        /** Cron pattern, 5 fields (or 6 with seconds first), read in `tz`. */
        cron: z.string().refine(isCronPattern, 'must be a valid cron pattern, e.g. "15 0 * * *"'),
        /** Run dates are UTC days: the slot's UTC day minus one. */
        tz: z.literal('UTC'),
        /** Unset: the top-level `symbols`. */
        symbols: z.string().min(1).optional(),
        /** Unset: `train.mode`. */
        mode: ModeSchema.optional(),
        /** Unset: `promotion.mode`. */
        promote: PromoteModeSchema.optional(),
        /** Build missing features (synthetic market data when none) instead of skipping the symbol. */
        ensureFeatures: z.boolean(),
        /** The run's rental budget (`--budget-usd`); unset: none. */
        budgetUsd: z.number().min(0).optional(),
        /** How often a running `retrain scheduler` checks that the schedule is still in place. */
        recheckSec: z.number().int().min(1).max(86_400),
      })
      .strict(),
    /**
     * Notifications (src/notify). Telegram sends when TELEGRAM_TOKEN is in the environment (never
     * config: it is a secret) and a chat id is set; sends never delay or fail a run.
     */
    notify: z
      .object({
        telegram: z
          .object({
            /** TELEGRAM_CHAT_ID: a numeric chat id (groups are negative) or @channelname. */
            chatId: z
              .union([z.string(), z.number().int()])
              .transform(String)
              .pipe(
                z
                  .string()
                  .regex(
                    /^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$/,
                    'must be a numeric chat id or @channelname',
                  ),
              )
              .optional(),
            /** TELEGRAM_API_URL: the Bot API base (a local stand-in in tests). */
            apiUrl: z
              .string()
              .regex(/^https?:\/\/[^\s/@]+(:\d+)?(\/\S*)?$/, 'must be an http(s) URL without credentials'),
            /** Failures of a run this close together go out as one message (0: same tick only). */
            groupWindowMs: z.number().int().min(0).max(600_000),
            /** Per request. */
            timeoutMs: z.number().int().min(100).max(60_000),
            /** Tries per message (5xx, network errors, 429), then it is dropped with a warning. */
            maxAttempts: z.number().int().min(1).max(10),
            /** A 429's retry_after is honoured up to this. */
            maxRetryAfterSec: z.number().min(0).max(3600),
            /** How long closing the workers (or the CLI exiting) waits for pending messages. */
            flushTimeoutMs: z.number().int().min(0).max(60_000),
          })
          .strict(),
      })
      .strict(),
    log: z.object({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) }).strict(),
    /**
     * `retrain dashboard`. Credentials are not config (it is logged): DASHBOARD_USER +
     * DASHBOARD_PASSWORD and/or DASHBOARD_TOKEN are read from the environment when it starts.
     */
    dashboard: z
      .object({
        /** Bind address; loopback unless deliberately exposed (behind TLS). */
        host: z.string().min(1),
        /** 0 picks a free port. */
        port: z.number().int().min(0).max(65535),
        /** Every write action refused on the server side. */
        readOnly: z.boolean(),
      })
      .strict(),
    /**
     * `/healthz` and `/metrics` of `retrain worker` and `retrain scheduler`, for docker compose,
     * systemd or Kubernetes probes (docs/deploy-health.md). No credentials: they expose no data.
     */
    health: z
      .object({
        /** Unset: no health server. 0 picks a free port. */
        port: z.number().int().min(0).max(65535).optional(),
        /** Bind address: loopback by default; 0.0.0.0 for a Kubernetes probe on the pod's IP. */
        host: z.string().min(1),
      })
      .strict(),
  })
  .strict();

function isCronPattern(pattern: string): boolean {
  try {
    CronExpressionParser.parse(pattern, { tz: 'UTC' });
    return pattern.trim().split(/\s+/).length >= 5;
  } catch {
    return false;
  }
}

export type Config = Readonly<z.infer<typeof ConfigSchema>>;
export type Mode = z.infer<typeof ModeSchema>;
