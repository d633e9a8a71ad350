import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { isDefinedGuardrail, type DefinedGuardrail, type GuardrailContext, type GuardrailEvent } from '../../src/policies/api.js';
import { loadGuardrailModule } from '../../src/policies/load-module.js';
import { childProcesses } from '../support/procs.js';
import { tempDir } from '../support/temp-dir.js';

/** Custom guardrail modules load from any directory, as .ts or .mjs, importing the public entry. */

function outside(files: Record<string, string>): string {
  const dir = tempDir('rp-guardrails-');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

const event = (text: string): GuardrailEvent => ({ source: 'input', eventType: 'conversation.item.create', text, delta: null, final: true, responseId: null, itemId: null, functionName: null });
const ctx = {} as GuardrailContext;

async function guardrailOf(path: string, key = '0'): Promise<DefinedGuardrail> {
  const mod = (await loadGuardrailModule(path, key)) as { default: unknown };
  expect(isDefinedGuardrail(mod.default)).toBe(true);
  return mod.default as DefinedGuardrail;
}

const TS = (word: string) => `import { defineGuardrail, type Decision } from 'realtime-governance-proxy/policies';
import { contains } from './lib/words.ts';
const verdict: Decision = { action: 'block', reason: '${word}' };
export default defineGuardrail({ name: 'ts', wants: ['input'], evaluate: (e) => (contains(e.text, '${word}') ? verdict : { action: 'allow' }) });
`;

/** This process's child processes running the esbuild binary (its compile service). */
const esbuildChildren = (): number[] => childProcesses()
  .filter((p) => p.cmdline.split('\0')[0]!.endsWith('/esbuild'))
  .map((p) => p.pid);

describe('custom guardrail modules', () => {
  it('stops the esbuild compile service once compiling is over, and starts it again for a reload', async () => {
    const dir = outside({ 'g.ts': TS('alpha'), 'lib/words.ts': 'export const contains = (t: string, w: string): boolean => t.includes(w);\n' });
    await guardrailOf(join(dir, 'g.ts'), 'svc-1');
    // The service stays for a reload burst, then goes (its ~12 MB were held for the process's life).
    await vi.waitFor(() => expect(esbuildChildren()).toEqual([]), { timeout: 10_000, interval: 50 });
    writeFileSync(join(dir, 'g.ts'), TS('delta'));
    const g = await guardrailOf(join(dir, 'g.ts'), 'svc-2');
    expect(g.evaluate(event('delta'), ctx)).toEqual({ action: 'block', reason: 'delta' });
    await vi.waitFor(() => expect(esbuildChildren()).toEqual([]), { timeout: 10_000, interval: 50 });
  });

  it('compiles a .ts module outside the app, with its relative imports and type-only syntax', async () => {
    const dir = outside({ 'g.ts': TS('alpha'), 'lib/words.ts': 'export const contains = (t: string, w: string): boolean => t.includes(w);\n' });
    const g = await guardrailOf(join(dir, 'g.ts'));
    expect(g.evaluate(event('say alpha'), ctx)).toEqual({ action: 'block', reason: 'alpha' });
    expect(g.evaluate(event('say beta'), ctx)).toEqual({ action: 'allow' });
  });

  it('loads a fresh version for each reload key (hot reload of a .ts module)', async () => {
    const dir = outside({ 'g.ts': TS('alpha'), 'lib/words.ts': 'export const contains = (t: string, w: string): boolean => t.includes(w);\n' });
    await guardrailOf(join(dir, 'g.ts'), '1');
    writeFileSync(join(dir, 'g.ts'), TS('gamma'));
    const g2 = await guardrailOf(join(dir, 'g.ts'), '2');
    expect(g2.evaluate(event('gamma'), ctx)).toEqual({ action: 'block', reason: 'gamma' });
  });

  it('gives a .mjs module outside any install of the package the running proxy API', async () => {
    const dir = outside({
      'g.mjs': "import { defineGuardrail } from 'realtime-governance-proxy/policies';\nexport default defineGuardrail({ name: 'm', wants: ['input'], evaluate: () => ({ action: 'log' }) });\n",
    });
    expect((await guardrailOf(join(dir, 'g.mjs'))).evaluate(event('x'), ctx)).toEqual({ action: 'log' });
  });

  it('imports a plain .mjs module as it is', async () => {
    const dir = outside({ 'plain.mjs': "export default { name: 'p', wants: ['output'], evaluate: () => ({ action: 'allow' }) };\n" });
    const mod = (await loadGuardrailModule(join(dir, 'plain.mjs'), '0')) as { default: { name: string } };
    expect(mod.default.name).toBe('p');
  });

  it('names the file, line and column of a TypeScript syntax error', async () => {
    const dir = outside({ 'broken.ts': "import { defineGuardrail } from 'realtime-governance-proxy/policies';\nexport default defineGuardrail({ name: 'b', wants: ['input'], evaluate: () => ({ action: 'allow' } });\n" });
    await expect(loadGuardrailModule(join(dir, 'broken.ts'), '0')).rejects.toThrow(/broken\.ts:2:\d+: Expected/);
  });
});
