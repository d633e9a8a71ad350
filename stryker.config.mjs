// Mutation testing (Stryker). Run through `npm run test:mutation` (test/mutation/run.mjs), which
// mutates one module at a time and runs only that module's tests: STRYKER_MUTATE names the module,
// STRYKER_TESTS its test files (read by vitest.mutation.config.ts).
const mutate = process.env.STRYKER_MUTATE;
if (!mutate) throw new Error('STRYKER_MUTATE is not set: run `npm run test:mutation`');
const specs = mutate.split(',');
// Several ranges: named after the first (a name of every range can pass the file system's limit).
const name = `${specs[0].replace(/^src\//, '').replace(/\.ts$/, '').replaceAll('/', '-')}${specs.length > 1 ? `+${specs.length - 1}` : ''}`;

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  // One module, or line ranges of it (`src/x.ts:10-40`), several separated by commas.
  mutate: specs,
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  // perTest runs only the tests that covered a mutant; code run from socket callbacks can be
  // attributed to the wrong test, so end-to-end modules are better run with STRYKER_COVERAGE=all.
  coverageAnalysis: process.env.STRYKER_COVERAGE === 'all' ? 'all' : 'perTest',
  checkers: [],
  // The machine is shared: one test process at a time (STRYKER_CONCURRENCY=N on a quiet machine).
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
  // A mutant that loops forever is killed after this (plus a factor of the normal run time).
  timeoutMS: 3_000,
  reporters: ['json', 'clear-text', 'progress'],
  jsonReporter: { fileName: `reports/mutation/${name}.json` },
  htmlReporter: { fileName: `reports/mutation/${name}.html` },
  // Helpers running side by side each take their own (STRYKER_TMP=.stryker-tmp-<name>).
  tempDirName: process.env.STRYKER_TMP ?? '.stryker-tmp',
  // Other runs' sandboxes (STRYKER_TMP) must not be copied into this one.
  ignorePatterns: ['bench', 'grafana', 'reports', 'dist', '.data', 'coverage', '/.stryker-tmp*'],
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 80, break: null },
};
