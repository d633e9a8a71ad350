import { defineConfig } from 'vitest/config';

// Used by Stryker (stryker.config.mjs): only the test files that exercise the mutated module.
const tests = (process.env['STRYKER_TESTS'] ?? '').split(',').filter((t) => t.length > 0);
if (tests.length === 0) throw new Error('STRYKER_TESTS is not set: run `npm run test:mutation`');

export default defineConfig({
  test: {
    include: tests,
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    setupFiles: ['test/mutation/setup.ts'],
  },
});
