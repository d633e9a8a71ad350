/**
 * Runs before every test file (vitest.config.ts `setupFiles`). A test that makes no assertion cannot
 * fail for the reason its name gives: every test must assert at least once.
 */
import { beforeEach, expect } from 'vitest';

beforeEach(() => {
  expect.hasAssertions();
});
