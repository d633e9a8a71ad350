import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

/*
 * Temporary directories for tests, removed after the test file (CI machines gathered thousands of
 * `rp-*` directories while every test left its own behind). Registered when this module is first
 * imported, which is while vitest collects a test file: the hook belongs to that file (each file
 * runs with its own module graph). A directory that must outlive its file is made with mkdtempSync
 * and removed by its test itself.
 */
const made: string[] = [];

const removeAll = (): void => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
};

try {
  afterAll(removeAll);
} catch {
  // Imported outside a vitest run (bench/held-turns.ts uses test/policies/support.ts): at exit instead.
  process.on('exit', removeAll);
}

/** A fresh directory under the OS temp directory (`<prefix>XXXXXX`), removed after this test file. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
