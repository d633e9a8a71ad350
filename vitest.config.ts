import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Real sockets on loopback: run files in parallel processes, tests inside a file in order.
    pool: 'forks',
    reporters: ['default'],
    // Every test asserts at least once (expect.hasAssertions()).
    setupFiles: ['test/support/setup.ts'],
  },
});
