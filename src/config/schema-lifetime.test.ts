import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { configSchema } from './schema.js';
import { policyFileSchema } from '../policies/schema.js';

/**
 * Issue 13 (RSS at start): zod schemas are thousands of objects and closures (~6 MB of heap for the
 * config and policy schemas), so none is built when a module loads: they are built when a config or
 * policy is parsed and dropped after.
 */

const SRC = join(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : [];
  });
}

afterEach(() => {
  vi.useRealTimers();
});

describe('zod schemas live only while parsing', () => {
  it('no module builds a schema when it loads (a top-level binding initialised from z)', () => {
    const offenders: string[] = [];
    for (const file of sources(SRC)) {
      const text = readFileSync(file, 'utf8');
      if (!/from 'zod'/.test(text)) continue;
      const lines = text.split('\n');
      lines.forEach((line, i) => {
        // A top-level declaration whose initialiser starts with z (on its line or the next).
        const decl = /^(export )?(const|let|var) [\w$]+(: [^=]+)? = (.*)$/.exec(line);
        if (!decl) return;
        const init = decl[4]!.trim() || (lines[i + 1] ?? '').trim();
        if (/^z\b/.test(init) || /^\{?\s*[\w$]+: z\./.test(init)) offenders.push(`${relative(SRC, file)}:${i + 1}`);
      });
    }
    expect(offenders).toEqual([]);
  });

  it('the config schema is built per parse and not kept', () => {
    expect(configSchema()).not.toBe(configSchema());
  });

  it('the policy schema is kept while compiles follow each other, and released 10 s after the last', () => {
    vi.useFakeTimers();
    const first = policyFileSchema();
    vi.advanceTimersByTime(9_000);
    expect(policyFileSchema()).toBe(first);
    vi.advanceTimersByTime(9_000);
    expect(policyFileSchema()).toBe(first);
    vi.advanceTimersByTime(10_001);
    expect(policyFileSchema()).not.toBe(first);
  });
});
