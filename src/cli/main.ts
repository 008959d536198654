import { Command, CommanderError, Option } from 'commander';
import { RetrainError } from '../errors.js';
import type { RawRunOptions } from './runOptions.js';
import type { SchedulerFlags } from './scheduler.js';
import type { RollbackFlags } from './rollback.js';
import type { DashboardFlags } from './dashboard.js';
import type { VastSimFlags } from '../vast/sim/cli.js';

// Each command's module is loaded when that command runs, so `retrain status` does not pay for the
// dashboard's web server, the S3 SDK or the simulator (~1 s of CPU at every start otherwise).

/** `enqueue` and `run`: plan and enqueue (and for `run`, work and wait). */
async function runCommand(opts: RawRunOptions, inProcessWorkers: boolean): Promise<number> {
  const [{ executeRun }, { parseRunOptions }] = await Promise.all([
    import('./executeRun.js'),
    import('./runOptions.js'),
  ]);
  return executeRun(parseRunOptions(opts), { inProcessWorkers });
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function addRunOptions(cmd: Command): Command {
  return cmd
    .option('--config <file>', 'config file (default: $RETRAIN_CONFIG or ./retrain.config.yaml)')
    .option('--symbols <spec>', 'topN from the shipped universe, a CSV file, or a comma list (default top20)')
    .option('--date <YYYYMMDD>', 'trading date to train for (default: yesterday, UTC)')
    .addOption(new Option('--mode <mode>', 'sequential | parallel | hybrid (default hybrid)'))
    .option('--max-concurrent <n>', 'hybrid cap on symbols training at once, across all workers')
    .option('--timeout-minutes <n>', 'per-symbol attempt time limit (default 45; decimals allowed)')
    .option('--retries <n>', 'retries after a failed attempt (default 2)')
    .option('--force', 'retrain symbols that already succeeded for the date')
    .option('--dry-run', 'print the JobSpecs as JSON; enqueue and rent nothing')
    .option('--driver <driver>', 'local | ssh | vast (default local)')
    .option('--recipe <name|path>', 'shipped recipe name or a recipe file/dir (default reference)')
    .option('--var <name=value>', 'set a recipe variable (repeatable)', collect)
    .option('--promote <mode>', 'off | dry | auto (default from config: off)')
    .option('--canary [bool]', 'canary run: auto promotion is downgraded to dry')
    .option('--live', 'live run: like --canary, never publishes to production')
    .option(
      '--ensure-features',
      'build missing features (synthetic market data when none) instead of skipping',
    )
    .option('--featureset <name>', 'feature set (default v1)')
    .option(
      '--budget-usd <dollars>',
      'stop renting once the run has spent this much; later symbols fail (budget)',
    )
    .option(
      '--interruptible',
      'driver vast: rent interruptible (bid) instances at vast.bidPrice / bidMultiplier x min_bid; an outbid one is replaced (default: config vast.interruptible)',
    )
    .option(
      '--no-interruptible',
      'driver vast: rent on-demand instances even when the config says interruptible',
    );
}

/** `enqueue`, `run` and `worker`: planning runs and training them. */
function registerRunCommands(program: Command): void {
  addRunOptions(program.command('enqueue').description('plan a run and add one train job per symbol'))
    .option('--wait', 'block with progress until the run ends; exit 0 when nothing failed, 1 otherwise')
    .action(async (opts: RawRunOptions) => {
      process.exitCode = await runCommand(opts, false);
    });

  addRunOptions(
    program.command('run').description('enqueue, train in this process, and wait (for a crontab)'),
  ).action(async (opts: RawRunOptions) => {
    process.exitCode = await runCommand(opts, true);
  });

  program
    .command('worker')
    .description('run the train, promote and finalize-run workers until SIGINT/SIGTERM')
    .option('--config <file>', 'config file')
    .option('--driver <driver>', 'local | ssh | vast')
    .option('--health-port <n>', 'serve /healthz and /metrics on this port (health.port; 0 = a free one)')
    .action(async (opts: { config?: string; driver?: string; healthPort?: string }) => {
      process.exitCode = await (await import('./worker.js')).workerCommand(opts);
    });
}

/** `status`, `promote` and `rollback`: a date's ledger and a symbol's production model. */
function registerLedgerCommands(program: Command): void {
  program
    .command('status')
    .description('show the ledger of a date')
    .option('--config <file>', 'config file')
    .option('--date <YYYYMMDD>', 'date (default: the most recent in the ledger)')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; date?: string; json?: boolean }) => {
      process.exitCode = await (await import('./status.js')).statusCommand(opts);
    });

  program
    .command('promote')
    .description('run the promotion guard for one candidate')
    .option('--config <file>', 'config file')
    .requiredOption('--symbol <symbol>', 'symbol')
    .requiredOption('--date <YYYYMMDD>', 'date of the candidate')
    .requiredOption('--mode <mode>', 'dry | auto')
    .option('--canary [bool]', 'downgrade auto to dry')
    .action(
      async (opts: {
        config?: string;
        symbol: string;
        date: string;
        mode: string;
        canary?: string | boolean;
      }) => {
        process.exitCode = await (await import('./promote.js')).promoteCommand(opts);
      },
    );

  program
    .command('rollback')
    .description('restore the previous production model of a symbol from its history')
    .option('--config <file>', 'config file')
    .requiredOption('--symbol <symbol>', 'symbol')
    .option('--to <stamp>', 'history entry to restore (default: the most recent, e.g. 20260116T003000Z)')
    .option('--dry-run', 'check and tell what would be restored; write nothing')
    .option('--json', 'print the result as JSON')
    .action(async (opts: RollbackFlags) => {
      process.exitCode = await (await import('./rollback.js')).rollbackCommand(opts);
    });
}

/** `reap` and `scheduler`: what keeps a deployment tidy and on time. */
function registerOpsCommands(program: Command): void {
  program
    .command('reap')
    .description(
      "list and destroy this deployment's orphaned Vast instances (no active job, or past maxRuntimeMin)",
    )
    .option('--config <file>', 'config file')
    .option('--dry-run', 'list only')
    .action(async (opts: { config?: string; dryRun?: boolean }) => {
      process.exitCode = await (await import('./reap.js')).reapCommand(opts);
    });

  program
    .command('scheduler')
    .description(
      'register the daily run (cron schedule.cron, UTC) once and stay up keeping it in place; the workers run it',
    )
    .option('--config <file>', 'config file')
    .option('--once', 'register (or update) the schedule and exit')
    .option('--remove', 'remove the schedule and exit')
    .option('--list', 'show the schedule and its next slot, and exit')
    .option('--json', 'with --list: print JSON')
    .option('--health-port <n>', 'serve /healthz and /metrics on this port (health.port; 0 = a free one)')
    .action(async (opts: SchedulerFlags) => {
      process.exitCode = await (await import('./scheduler.js')).schedulerCommand(opts);
    });
}

/** `vast-sim`, `dashboard` and `demo`: the simulator, the web pages and the demo. */
function registerToolCommands(program: Command): void {
  program
    .command('vast-sim')
    .description('start a local Vast.ai API simulator whose instances are backed by an SSH endpoint')
    .option('--port <n>', 'port (0 = random)', '8765')
    .requiredOption('--ssh-host <host>', 'SSH host every instance is backed by')
    .requiredOption('--ssh-port <n>', 'SSH port every instance is backed by')
    .option('--offers-file <file>', 'offers fixture (JSON array); default: the shipped fixture')
    .option('--boot-delay-ms <n>', 'time an instance spends booting', '3000')
    .option('--rate429 <p>', 'share of requests answered 429')
    .option('--rate5xx <p>', 'share of requests answered 5xx')
    .option('--offer-gone <p>', 'share of creates answered "offer gone"')
    .option('--stuck <ids>', 'machine ids whose instances stay loading forever (comma list)')
    .option('--die-rate <p>', 'share of instances that die (exited) while running')
    .option('--die-after-ms <n>', 'how long a doomed instance runs before it dies', '5000')
    .option('--outbid-rate <p>', 'share of interruptible (bid) instances outbid while running')
    .option('--outbid-after-ms <n>', 'how long a doomed bid instance runs before it is outbid', '5000')
    .option('--seed <n>', 'seed of the fault injection')
    .option('--time-scale <x>', 'simulated seconds per real second (billing, rate-limit intervals)')
    .option(
      '--profile <p>',
      "kind (only the faults asked for) or vast-like (all of Vast's behaviour)",
      'kind',
    )
    .option('--rate-limits', "Vast's per-endpoint minimum intervals per key (429, no Retry-After)")
    .option('--competitor-rate <p>', 'share of creates that lose the race to another renter')
    .option('--offer-churn <p>', 'share of offers rented by others (hidden) in each period')
    .option('--bad-image-rate <p>', 'share of instances whose image never starts (error in status_msg)')
    .option('--bad-image-machine-ids <ids>', 'machine ids whose instances never start (comma list)')
    .option('--transient-status-rate <p>', 'share of running instances that go unknown/rebooting once')
    .option('--transient-status-ms <n>', 'how long a transient status lasts')
    .option('--slow-create-rate <p>', 'share of creates answered late (the instance exists at once)')
    .option('--slow-create-ms <n>', 'how late a slow create is answered')
    .option('--odd-rows', 'instance rows with loosely typed ports/extra_env')
    .option('--attach-key-loss-rate <p>', 'share of keys attached before the instance runs that are lost')
    .option(
      '--ssh-authorized-keys <file>',
      'public keys the SSH endpoint accepts: SSH works only to instances holding one',
    )
    .action(async (opts: VastSimFlags) => {
      // The key the simulator accepts comes from the environment, never from a flag.
      const { runVastSimFromFlags } = await import('../vast/sim/cli.js');
      const sim = await runVastSimFromFlags({ ...opts, apiKey: process.env.VAST_API_KEY });
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await sim.close();
    });

  program
    .command('dashboard')
    .description(
      'serve Bull Board, the runs pages, /healthz and /metrics (credentials from DASHBOARD_USER + DASHBOARD_PASSWORD or DASHBOARD_TOKEN)',
    )
    .option('--config <file>', 'config file')
    .option('--port <n>', 'port (default 3000; 0 = a free one)')
    .option('--host <address>', 'bind address (default 127.0.0.1)')
    .option('--read-only', 'refuse every write action (retry, clean, pause...) on the server side')
    .action(async (opts: DashboardFlags) => {
      process.exitCode = await (await import('./dashboard.js')).dashboardCommand(opts);
    });

  program
    .command('demo')
    .description(
      'the daily job for the top 20 symbols on the embedded defaults (starts a private Redis if needed)',
    )
    .option('--symbols <spec>', 'symbols (default top20)')
    .option('--date <YYYYMMDD>', 'date (default: yesterday, UTC)')
    .option('--force', 'retrain symbols that already succeeded for the date')
    .action(async (opts: { symbols?: string; date?: string; force?: boolean }) => {
      process.exitCode = await (await import('./demo.js')).demoCommand(opts);
    });
}

export function buildProgram(): Command {
  const program = new Command('retrain')
    .description('Retrain one model per trading symbol every day, with a promotion guard.')
    .version('0.1.0')
    .showHelpAfterError(false)
    .configureOutput({ writeErr: (s) => process.stderr.write(s.replace(/\n+$/, '') + '\n') })
    .exitOverride();

  registerRunCommands(program);
  registerLedgerCommands(program);
  registerOpsCommands(program);
  registerToolCommands(program);
  return program;
}

/** CLI entry: one line on stderr for any error we expect; exit 2 for bad input, 1 otherwise. */
export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    if (err instanceof RetrainError) {
      process.stderr.write(`retrain: ${err.message.split('\n')[0]}\n`);
      process.exitCode =
        err.code === 'bad_input' || err.code === 'bad_config' || err.code === 'bad_recipe' ? 2 : 1;
      return;
    }
    process.stderr.write(`retrain: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}\n`);
    process.exitCode = 1;
  } finally {
    // Messages still queued (e.g. `enqueue`'s start message) get a short, bounded chance to go.
    await (await import('../notify/index.js')).flushProcessNotifier();
  }
}
