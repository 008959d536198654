/**
 * The operator's console (logs, cancel, offers, cost, doctor), registered on the program in one
 * place so that main.ts only calls this. Each command's module is loaded when it runs.
 */
import type { Command } from 'commander';
import type { CancelFlags } from './cancel.js';
import type { CostFlags } from './cost.js';
import type { LogsFlags } from './logs.js';
import type { OffersFlags } from './offers.js';

export function addConsoleCommands(program: Command): void {
  program
    .command('logs')
    .description("a symbol's training log as retrain kept it (masked); --follow a training under way")
    .argument('<symbol>', 'symbol, e.g. BTCUSDT')
    .option('--config <file>', 'config file')
    .option('--date <YYYYMMDD>', 'run date (default: the most recent with that symbol)')
    .option('--attempt <n>', 'attempt number (default: the last)')
    .option('--follow', 'keep printing new lines until the symbol ends')
    .option('--json', "the symbol's events from this machine's engine.log, one JSON object a line")
    .action(async (symbol: string, opts: LogsFlags) => {
      process.exitCode = await (await import('./logs.js')).logsCommand(symbol, opts);
    });

  program
    .command('cancel')
    .description('cancel a run (or one symbol of it) from any machine: trainings stopped, hosts released')
    .option('--config <file>', 'config file')
    .option('--run <id>', 'run id, e.g. 20260115-2')
    .option('--date <YYYYMMDD>', 'every run of that date still under way')
    .option('--symbol <symbol>', 'only this symbol')
    .option('--wait <seconds>', 'how long to wait for the workers to stop what was cancelled (default 60)')
    .option('--json', 'print JSON')
    .action(async (opts: CancelFlags) => {
      process.exitCode = await (await import('./cancel.js')).cancelCommand(opts);
    });

  program
    .command('offers')
    .description(
      'live Vast offers meeting the config, cheapest all-in first; with --symbols and --minutes an estimate',
    )
    .option('--config <file>', 'config file')
    .option('--interruptible', 'price interruptible (bid) rentals')
    .option('--no-interruptible', 'price on-demand rentals even when the config says interruptible')
    .option('--symbols <spec>', 'symbols of the run to estimate (topN, CSV file or comma list)')
    .option('--minutes <m>', 'training minutes per symbol')
    .option(
      '--overhead-minutes <m>',
      'billed minutes per rental beyond training: boot, staging, fetch (default 2)',
    )
    .option('--mode <mode>', 'sequential | parallel | hybrid (default from config)')
    .option('--max-concurrent <n>', 'hybrid cap (default from config)')
    .option('--json', 'print JSON')
    .action(async (opts: OffersFlags) => {
      process.exitCode = await (await import('./offers.js')).offersCommand(opts);
    });

  program
    .command('cost')
    .description('what runs cost: booked by retrain and, for vast, reconciled with what Vast billed')
    .option('--config <file>', 'config file')
    .option('--driver <driver>', 'vast reconciles with Vast charges (default from config)')
    .option('--date <YYYYMMDD>', 'one run date (default: the most recent)')
    .option('--from <YYYYMMDD>', 'first run date')
    .option('--to <YYYYMMDD>', 'last run date')
    .option('--by <group>', 'symbol | run | day (default symbol)')
    .option('--tolerance-usd <usd>', 'a difference up to this is not flagged (default 0.01)')
    .option('--tolerance-pct <pct>', 'nor one up to this % of what was booked (default 10)')
    .option('--json', 'print JSON')
    .action(async (opts: CostFlags) => {
      process.exitCode = await (await import('./cost.js')).costCommand(opts);
    });

  program
    .command('doctor')
    .description('check Redis, the store, Vast or SSH, the recipe and the clock; exit 0 only if all pass')
    .option('--config <file>', 'config file')
    .option('--driver <driver>', 'local | ssh | vast (default from config)')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; driver?: string; json?: boolean }) => {
      process.exitCode = await (await import('./doctor.js')).doctorCommand(opts);
    });
}
