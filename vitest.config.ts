import { defineConfig } from 'vitest/config';

/**
 * Tests that compare timings (wall or billed time of two runs, a pace of writes, how soon a poll
 * comes) run alone, after the rest; every other file runs three at a time. Each test isolates
 * itself (own Redis prefix, own RETRAIN_HOME, own sshd and simulator on free ports), and most of an
 * integration test's time is spent waiting on its child processes and simulated clocks, so three
 * at once on a 2-core machine still pays: 612 s against 891-940 s two at a time (2026-12-04).
 */
const TIMED = [
  'test/integration/telegram.test.ts',
  'test/integration/checkpoints.test.ts',
  'test/unit/ledger/mirror.test.ts',
  'test/unit/remote/quick-paths.test.ts',
];

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: {
          name: 'suite',
          include: ['test/**/*.test.ts'],
          exclude: TIMED,
          maxWorkers: 3,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'timed',
          include: TIMED,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
