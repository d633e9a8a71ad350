import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Real sockets on loopback: run files in parallel processes, tests inside a file in order.
    pool: 'forks',
    reporters: ['default'],
    // Every test asserts at least once (expect.hasAssertions()); every event the simulator sends is
    // validated against the openai SDK's types (test/contract/).
    setupFiles: ['test/support/setup.ts'],
    globalSetup: ['test/contract/global-setup.ts'],
  },
});
