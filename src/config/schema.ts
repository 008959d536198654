import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { CompareRuleSchema, FloorSchema } from '../promotion/custom.js';
import { GpuNamesSchema, gpuCapProblem } from '../vast/gpuPreferences.js';
import { VAST_SPEC_INTERVALS_SEC } from '../vast/limits.js';

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

/**
 * A group of settings: absent from the input, it is every setting's default (each setting declares
 * its default, and its environment variable in `meta({ env })`, beside its validation).
 */
function section<T extends z.ZodObject>(schema: T) {
  return schema.default(() => schema.parse({}) as z.util.NoUndefined<z.output<T>>);
}

export const ConfigSchema = z
  .object({
    /** RETRAIN_HOME: every piece of local state lives below it. */
    home: z.string().min(1),
    redisUrl: z
      .string()
      .regex(/^rediss?:\/\//, 'must start with redis:// or rediss://')
      .default('redis://127.0.0.1:6379')
      .meta({ env: 'REDIS_URL' }),
    /** BullMQ prefix and ledger key prefix; one per deployment (tests use one per test). */
    queuePrefix: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/)
      .default('retrain')
      .meta({ env: 'RETRAIN_QUEUE_PREFIX' }),
    deployment: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,31}$/)
      .default('default')
      .meta({ env: 'RETRAIN_DEPLOYMENT' }),
    store: StoreSchema,
    symbols: z.string().min(1).default('top20'),
    featureset: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/)
      .default('v1'),
    recipe: z.string().min(1).default('reference').meta({ env: 'RETRAIN_RECIPE' }),
    costsFile: z.string().optional().meta({ env: 'RETRAIN_COSTS_FILE' }),
    /** Recipe variables (the model's parameters): each must be one the recipe declares; `--var` overrides. */
    recipeVars: z.record(z.string(), z.string()).default({}),
    train: section(
      z
        .object({
          driver: DriverSchema.default('local').meta({ env: 'RETRAIN_DRIVER' }),
          mode: ModeSchema.default('hybrid'),
          /** Hybrid cap. Unset: 12 when the target has GPUs, 2 when CPU-only (DESIGN.md). */
          maxConcurrent: z.number().int().min(1).max(1000).optional(),
          /** Upper bound on hosts at once; parallel mode's cap. */
          maxInstances: z.number().int().min(1).max(1000).default(32),
          timeoutMinutes: z
            .number()
            .positive()
            .max(24 * 60)
            .default(45),
          retries: z.number().int().min(0).max(20).default(2),
          /** First retry delay; later ones double, with ±25 % jitter. */
          backoffMs: z.number().int().min(0).default(30_000).meta({ env: 'RETRAIN_BACKOFF_MS' }),
          /** Jobs one worker process can hold at once (the global cap still applies). */
          workerConcurrency: z
            .number()
            .int()
            .min(1)
            .max(1000)
            .default(32)
            .meta({ env: 'RETRAIN_WORKER_CONCURRENCY' }),
          /**
           * A training with no new log line, no progress and no touch of RETRAIN_HEARTBEAT_FILE for
           * this long is taken for hung: killed, and the attempt retried.
           */
          heartbeatStaleMin: z.number().positive().default(5).meta({ env: 'RETRAIN_HEARTBEAT_STALE_MIN' }),
          pollMs: z.number().int().min(50).max(60_000).default(1000).meta({ env: 'RETRAIN_POLL_MS' }),
        })
        .strict(),
    ),
    promotion: section(
      z
        .object({
          mode: PromoteModeSchema.default('off').meta({ env: 'RETRAIN_PROMOTE' }),
          canary: z.boolean().default(false),
          maxDrawdownTolerance: z.number().min(1).max(10).default(1.1),
          /** Absolute floors every candidate must pass, in order (docs/promotion-rules.md). */
          floors: z.array(FloorSchema).optional(),
          /** The comparison with production, in order (metric, direction, tolerance); unset: rules v1. */
          rules: z.array(CompareRuleSchema).min(1).optional(),
        })
        .strict(),
    ),
    worker: section(
      z
        .object({
          /** Lock on an active job; renewed every half. Short, so a dead worker is noticed fast. */
          lockDurationMs: z
            .number()
            .int()
            .min(1000)
            .default(30_000)
            .meta({ env: 'RETRAIN_LOCK_DURATION_MS' }),
          stalledIntervalMs: z
            .number()
            .int()
            .min(500)
            .default(30_000)
            .meta({ env: 'RETRAIN_STALLED_INTERVAL_MS' }),
          /** Every orchestrator restart during a long training is one stall: allow several. */
          maxStalledCount: z.number().int().min(1).max(100).default(5),
          /** How long a graceful shutdown waits for jobs to hand back before forcing. */
          shutdownGraceMs: z.number().int().min(0).default(20_000).meta({ env: 'RETRAIN_SHUTDOWN_GRACE_MS' }),
        })
        .strict(),
    ),
    retention: section(
      z
        .object({
          completedAgeSec: z
            .number()
            .int()
            .min(60)
            .default(7 * 86400),
          completedCount: z.number().int().min(10).default(5000),
          failedAgeSec: z
            .number()
            .int()
            .min(60)
            .default(30 * 86400),
          keepLogs: z.number().int().min(10).default(500),
        })
        .strict(),
    ),
    /**
     * The resume ledger in Redis (src/ledger). A date's keys expire `retentionDays` after the date was
     * last written; `runs/<date>Z/status.json` in the store stays the durable record.
     */
    ledger: section(
      z
        .object({
          /**
           * Days a run date's ledger stays in Redis after its last change (0: forever). Past it,
           * `retrain status --date` shows nothing for the date and re-planning it trains every symbol
           * again (its successes are no longer there to be skipped).
           */
          retentionDays: z
            .number()
            .min(0)
            .max(3650)
            .default(30)
            .meta({ env: 'RETRAIN_LEDGER_RETENTION_DAYS' }),
        })
        .strict(),
    ),
    /** Operational alerts (Telegram when configured, and a log event), checked by the workers. */
    alerts: section(
      z
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
            .optional()
            .meta({ env: 'RETRAIN_PROVISIONING_STUCK_MIN' }),
          /**
           * A run whose symbols wait for capacity and that gets not one GPU for this long: one alert,
           * naming the constraints no offer met.
           */
          noCapacityMin: z
            .number()
            .positive()
            .max(24 * 60)
            .default(10)
            .meta({ env: 'RETRAIN_NO_CAPACITY_MIN' }),
          /** How often the workers' repeatable check looks at the running train jobs (0 turns it off). */
          checkEverySec: z
            .number()
            .int()
            .min(0)
            .max(3600)
            .default(60)
            .meta({ env: 'RETRAIN_ALERT_CHECK_SEC' }),
        })
        .strict(),
    ),
    /** Renting on Vast.ai (driver `vast`). The API key comes from VAST_API_KEY, never from a file. */
    vast: section(
      z
        .object({
          apiUrl: z.string().url().default('https://console.vast.ai').meta({ env: 'VAST_API_URL' }),
          /** Retries of one API call on network errors, 429 and 5xx (jittered exponential backoff). */
          apiRetries: z.number().int().min(0).max(20).default(6),
          /** First retry delay; doubles up to 30 s. A 429's Retry-After is honoured. */
          apiRetryBaseMs: z.number().int().min(1).default(500).meta({ env: 'RETRAIN_VAST_RETRY_MS' }),
          /**
           * The API budget shared by every worker through Redis (src/vast/budget.ts): the seconds
           * between two calls of one endpoint with one key. Unset endpoints take Vast's spec values
           * (search 6, create 4.5, show 2, list 1, destroy 3, manage 1, ssh 1, user 1, other 1).
           */
          apiBudget: section(
            z
              .object({
                enabled: z.boolean().default(true).meta({ env: 'RETRAIN_VAST_API_BUDGET' }),
                /** Added to every interval: requests granted on time can still arrive closer together. */
                marginMs: z.number().int().min(0).max(10_000).default(150),
                /**
                 * Every interval is divided by this: 1 against Vast; a simulator running time N times
                 * faster (tests, benches) enforces intervals N times shorter.
                 */
                timeScale: z
                  .number()
                  .min(1)
                  .max(1000)
                  .default(1)
                  .meta({ env: 'RETRAIN_VAST_API_TIME_SCALE' }),
                intervalsSec: section(
                  z
                    .object({
                      search: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.search),
                      create: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.create),
                      show: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.show),
                      list: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.list),
                      destroy: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.destroy),
                      manage: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.manage),
                      ssh: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.ssh),
                      user: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.user),
                      other: z.number().min(0).default(VAST_SPEC_INTERVALS_SEC.other),
                    })
                    .strict(),
                ),
              })
              .strict(),
          ),
          /** Timeout of one create (Vast can be slow to answer it); the official CLI's is 120 s. */
          createTimeoutSec: z
            .number()
            .min(1)
            .max(600)
            .default(120)
            .meta({ env: 'RETRAIN_VAST_CREATE_TIMEOUT_SEC' }),
          /**
           * How often the deployment's one poller lists its instances (shared through Redis): boot
           * waits, health checks and destroy confirmations read that instead of asking Vast each.
           */
          pollSec: z.number().min(0.2).max(300).default(10).meta({ env: 'RETRAIN_VAST_POLL_SEC' }),
          /**
           * How long an instance may show `unknown`/`rebooting` (a missed heartbeat, a restart) before
           * it counts as lost.
           */
          transientGraceSec: z
            .number()
            .min(0)
            .max(3600)
            .default(120)
            .meta({ env: 'RETRAIN_VAST_TRANSIENT_GRACE_SEC' }),
          /** Offer search and choice, shared by the deployment's workers (src/vast/market.ts). */
          offers: section(
            z
              .object({
                /** How long one search serves every worker. */
                cacheSec: z.number().min(0).max(600).default(30),
                /** Offers up to this fraction dearer than the cheapest free one are picked among at random. */
                priceTolerance: z.number().min(0).max(1).default(0.05),
                /** `limit` of the search: how much of the market the server scans. */
                scanLimit: z.number().int().min(10).max(5000).default(512),
              })
              .strict(),
          ),
          /**
           * Acceptable GPUs: a plain list (any of them, cheapest first), or an ordered list of classes
           * with a price cap each (`{name, maxHourlyCost}`): a later class only when the earlier ones
           * have no capacity (src/vast/gpuPreferences.ts).
           */
          gpuNames: GpuNamesSchema.default(['RTX_3090', 'RTX_4090', 'A100']),
          /** $/h against the offer's full dph_total (storage included). */
          maxHourlyCost: z.number().positive().default(1),
          minGpuMemoryGb: z.number().min(0).default(16),
          minReliability: z.number().min(0).max(1).default(0.95),
          verifiedOnly: z.boolean().default(true),
          minDiskGb: z.number().min(0).default(30),
          minInetDownMbps: z.number().min(0).default(100),
          /** The default image is built for CUDA 12.1: a host whose driver tops out below cannot run it. */
          minCudaVersion: z.number().min(0).default(12.1),
          numGpus: z.number().int().min(1).max(16).default(1),
          /** Container image when the recipe names none. */
          image: z.string().min(1).default('pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime'),
          diskGb: z.number().int().min(8).default(30),
          runtype: z.enum(['ssh_direct', 'ssh_proxy']).default('ssh_direct'),
          /** Running + SSH must answer within this, or the instance is destroyed and the next offer tried. */
          bootDeadlineSec: z.number().int().min(5).default(600).meta({ env: 'RETRAIN_BOOT_DEADLINE_SEC' }),
          maxProvisionTries: z.number().int().min(1).max(50).default(5),
          /**
           * How long a symbol that finds no offer (and no pooled instance) waits for capacity, searching
           * again now and then (0: fails at once with no_capacity). Unset: its time limit less a margin
           * for the training (src/compute/capacityWait.ts).
           */
          capacityWaitMin: z.number().min(0).optional().meta({ env: 'RETRAIN_CAPACITY_WAIT_MIN' }),
          /** A waiting symbol's first pause between searches; later ones grow ×1.5 to 4×, jittered. */
          capacityPollSec: z
            .number()
            .min(0.1)
            .max(3600)
            .default(30)
            .meta({ env: 'RETRAIN_CAPACITY_POLL_SEC' }),
          /** A rental never lives longer: enforced by the processor, the reaper and an on-instance watchdog. */
          maxRuntimeMin: z.number().positive().default(60),
          /** How often a running training's instance is checked for being alive. */
          healthCheckSec: z.number().min(1).default(30).meta({ env: 'RETRAIN_HOST_CHECK_SEC' }),
          /**
           * Rent interruptible (bid) instances: cheaper, but a higher bid stops them. A run can say
           * otherwise with `--interruptible` / `--no-interruptible`.
           */
          interruptible: z.boolean().default(false).meta({ env: 'RETRAIN_INTERRUPTIBLE' }),
          /**
           * The bid of an interruptible rental in $/h per machine, GPU part (storage is billed on top),
           * like `vastai create instance --bid_price`. Offers whose min_bid is above it are skipped.
           * Unset: bidMultiplier × the offer's min_bid. Either way capped so bid + storage stays within
           * maxHourlyCost, and never below min_bid (such a bid never starts).
           */
          bidPrice: z.number().min(0.001).max(128).optional().meta({ env: 'RETRAIN_BID_PRICE' }),
          /** Unset bidPrice: bid this many times the offer's min_bid (headroom against being outbid). */
          bidMultiplier: z.number().min(1).max(10).default(1.2),
          /** How often the workers' repeatable reaper pass runs (0 turns it off). */
          reapEveryMin: z.number().min(0).default(10).meta({ env: 'RETRAIN_REAP_EVERY_MIN' }),
          /** Work dirs on the instance. */
          workRoot: z
            .string()
            .regex(/^\/[A-Za-z0-9_./-]+$/)
            .default('/root/retrain')
            .meta({ env: 'RETRAIN_REMOTE_ROOT' }),
          sshUser: z
            .string()
            .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
            .default('root')
            .meta({ env: 'RETRAIN_SSH_USER' }),
          /**
           * The instance pool: an instance whose symbol is done is handed to the next symbol of the
           * run instead of being destroyed (src/compute/pool.ts).
           */
          pool: section(
            z
              .object({
                enabled: z.boolean().default(true).meta({ env: 'RETRAIN_VAST_POOL' }),
                /** An instance nobody holds is destroyed after this long (and all of a run's at its end). */
                idleGraceSec: z.number().min(0).default(60).meta({ env: 'RETRAIN_POOL_IDLE_SEC' }),
                /** Symbols training at once on one instance (each in its own work dir). */
                slotsPerHost: z.number().int().min(1).max(16).default(1).meta({ env: 'RETRAIN_POOL_SLOTS' }),
              })
              .strict(),
          ),
        })
        .strict()
        .superRefine((v, ctx) => {
          const problem = gpuCapProblem(v.gpuNames, v.maxHourlyCost);
          if (problem) ctx.addIssue({ code: 'custom', path: ['gpuNames'], message: problem });
        }),
    ),
    /** An existing machine (driver `ssh`). */
    ssh: section(
      z
        .object({
          host: z.string().min(1).optional().meta({ env: 'RETRAIN_SSH_HOST' }),
          port: z.number().int().min(1).max(65535).default(22).meta({ env: 'RETRAIN_SSH_PORT' }),
          user: z
            .string()
            .regex(/^[a-z_][a-z0-9_-]{0,31}$/)
            .default('root')
            .meta({ env: 'RETRAIN_SSH_USER' }),
          keyPath: z.string().min(1).optional().meta({ env: 'RETRAIN_SSH_KEY' }),
          workRoot: z
            .string()
            .regex(/^\/[A-Za-z0-9_./-]+$/)
            .default('/root/retrain')
            .meta({ env: 'RETRAIN_REMOTE_ROOT' }),
          /**
           * Every SSH connection (driver ssh and Vast instances) runs its commands through one
           * command agent (python3, shipped over the connection): one login shell per connection
           * instead of one per command. false: a session per command, as without python3 there.
           */
          commandAgent: z.boolean().default(true).meta({ env: 'RETRAIN_SSH_COMMAND_AGENT' }),
        })
        .strict(),
    ),
    /**
     * The daily run (`retrain scheduler`): one BullMQ job scheduler whose job, taken by a worker,
     * plans the run for the day before its scheduled slot (UTC) and enqueues it once per slot.
     */
    schedule: section(
      z
        .object({
          /** false: `retrain scheduler` removes the schedule instead of registering it. */
          enabled: z.boolean().default(true).meta({ env: 'RETRAIN_SCHEDULE_ENABLED' }),
          /** Cron pattern, 5 fields (or 6 with seconds first), read in `tz`. */
          cron: z
            .string()
            .refine(isCronPattern, 'must be a valid cron pattern, e.g. "15 0 * * *"')
            .default('15 0 * * *')
            .meta({ env: 'RETRAIN_SCHEDULE_CRON' }),
          /** Run dates are UTC days: the slot's UTC day minus one. */
          tz: z.literal('UTC').default('UTC'),
          /** Unset: the top-level `symbols`. */
          symbols: z.string().min(1).optional().meta({ env: 'RETRAIN_SCHEDULE_SYMBOLS' }),
          /** Unset: `train.mode`. */
          mode: ModeSchema.optional(),
          /** Unset: `promotion.mode`. */
          promote: PromoteModeSchema.optional(),
          /** Build missing features from the stored market data instead of skipping the symbol. */
          ensureFeatures: z.boolean().default(false),
          /** Generate synthetic market data where none is stored (`--synthetic`; never published). Unset: false. */
          synthetic: z.boolean().optional(),
          /** The run's rental budget (`--budget-usd`); unset: none. */
          budgetUsd: z.number().min(0).optional(),
          /** How often a running `retrain scheduler` checks that the schedule is still in place. */
          recheckSec: z.number().int().min(1).max(86_400).default(60),
        })
        .strict(),
    ),
    /**
     * Notifications (src/notify). Telegram sends when TELEGRAM_TOKEN is in the environment (never
     * config: it is a secret) and a chat id is set; sends never delay or fail a run.
     */
    notify: section(
      z
        .object({
          telegram: section(
            z
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
                  .optional()
                  .meta({ env: 'TELEGRAM_CHAT_ID' }),
                /** TELEGRAM_API_URL: the Bot API base (a local stand-in in tests). */
                apiUrl: z
                  .string()
                  .regex(/^https?:\/\/[^\s/@]+(:\d+)?(\/\S*)?$/, 'must be an http(s) URL without credentials')
                  .default('https://api.telegram.org')
                  .meta({ env: 'TELEGRAM_API_URL' }),
                /** Failures of a run this close together go out as one message (0: same tick only). */
                groupWindowMs: z
                  .number()
                  .int()
                  .min(0)
                  .max(600_000)
                  .default(3000)
                  .meta({ env: 'RETRAIN_TELEGRAM_GROUP_MS' }),
                /** Per request. */
                timeoutMs: z.number().int().min(100).max(60_000).default(5000),
                /** Tries per message (5xx, network errors, 429), then it is dropped with a warning. */
                maxAttempts: z.number().int().min(1).max(10).default(4),
                /** A 429's retry_after is honoured up to this. */
                maxRetryAfterSec: z.number().min(0).max(3600).default(60),
                /** How long closing the workers (or the CLI exiting) waits for pending messages. */
                flushTimeoutMs: z.number().int().min(0).max(60_000).default(1000),
              })
              .strict(),
          ),
        })
        .strict(),
    ),
    log: section(
      z
        .object({
          level: z
            .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'])
            .default('info')
            .meta({ env: 'LOG_LEVEL' }),
        })
        .strict(),
    ),
    /**
     * `retrain dashboard`. Credentials are not config (it is logged): DASHBOARD_USER +
     * DASHBOARD_PASSWORD and/or DASHBOARD_TOKEN are read from the environment when it starts.
     */
    dashboard: section(
      z
        .object({
          /** Bind address; loopback unless deliberately exposed (behind TLS). */
          host: z.string().min(1).default('127.0.0.1').meta({ env: 'DASHBOARD_HOST' }),
          /** 0 picks a free port. */
          port: z.number().int().min(0).max(65535).default(3000).meta({ env: 'DASHBOARD_PORT' }),
          /** Every write action refused on the server side. */
          readOnly: z.boolean().default(false).meta({ env: 'DASHBOARD_READ_ONLY' }),
        })
        .strict(),
    ),
    /**
     * `/healthz` and `/metrics` of `retrain worker` and `retrain scheduler`, for docker compose,
     * systemd or Kubernetes probes (docs/deploy-health.md). No credentials: they expose no data.
     */
    health: section(
      z
        .object({
          /** Unset: no health server. 0 picks a free port. */
          port: z.number().int().min(0).max(65535).optional().meta({ env: 'RETRAIN_HEALTH_PORT' }),
          /** Bind address: loopback by default; 0.0.0.0 for a Kubernetes probe on the pod's IP. */
          host: z.string().min(1).default('127.0.0.1').meta({ env: 'RETRAIN_HEALTH_HOST' }),
        })
        .strict(),
    ),
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
