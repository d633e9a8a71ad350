/**
 * Setup for mutation runs (vitest.mutation.config.ts): the suite's rule that every test asserts,
 * without test/support/setup.ts's simulator contract hook (its imports cost seconds per run under
 * load, and Stryker re-runs the setup for every mutant; the unit tests it runs use no simulator).
 */
import { beforeEach, expect } from 'vitest';

beforeEach(() => {
  expect.hasAssertions();
});
