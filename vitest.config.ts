import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/globalSetup.ts'],
    // Integration tests start real processes (workers, redis-server, python); running files one at
    // a time keeps timings honest on a 2-core machine. Each test isolates itself (own Redis prefix,
    // own RETRAIN_HOME).
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
