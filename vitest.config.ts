import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Real sockets on loopback: run files in parallel processes, tests inside a file in order.
    pool: 'forks',
    // At least two files at once: most tests wait on sockets and timers, not the CPU (vitest's default,
    // one fewer than the cores, ran this suite one file at a time on a 2-core machine: 624 s vs 350 s).
    maxWorkers: Math.max(2, availableParallelism()),
    reporters: ['default'],
    // Every test asserts at least once (expect.hasAssertions()); every event the simulator sends is
    // validated against the openai SDK's types (test/contract/).
    setupFiles: ['test/support/setup.ts'],
    globalSetup: ['test/contract/global-setup.ts'],
  },
});
