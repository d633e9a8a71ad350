import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import { TenantResolver } from '../tenants/resolver.js';
import { createPoliciesModule } from './index.js';
import { PolicyRegistry, type RegistryEvent } from './registry.js';
import { tempDir } from '../../test/support/temp-dir.js';

const log = pino({ level: 'silent' });
const open: PolicyRegistry[] = [];
afterEach(() => {
  for (const r of open.splice(0)) r.close();
});

function dirWith(files: Record<string, string>): string {
  const dir = tempDir('rp-policies-');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

async function load(dir: string, watch = true): Promise<PolicyRegistry> {
  const r = await PolicyRegistry.load({ dir, dirRequired: true, defaultName: 'default', watch, debounceMs: 10, log });
  open.push(r);
  return r;
}

function nextEvent(r: PolicyRegistry, pred: (e: RegistryEvent) => boolean = () => true): Promise<RegistryEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no registry event')), 5000);
    r.onChange((e) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      resolve(e);
    });
  });
}

const STRICT_V1 = 'version: 1\nguardrails:\n  rules: [{ id: a, sources: [output], match: { phrases: [apple] }, action: cancel_response }]\n';
const STRICT_V2 = 'version: 2\nguardrails:\n  rules: [{ id: b, sources: [output], match: { phrases: [banana] }, action: cancel_response }]\n';

describe('policy registry', () => {
  it('loads every file and resolves tenants to their policy or the default', async () => {
    const r = await load(dirWith({ 'default.yaml': 'description: d\n', 'strict.yaml': STRICT_V1 }), false);
    expect(r.entries().map((e) => e.name).sort()).toEqual(['default', 'strict']);
    expect(r.resolve('strict').current.rules[0]!.id).toBe('a');
    expect(r.resolve(null).name).toBe('default');
    expect(r.resolve('gone').name).toBe('default');
  });

  it('refuses to start with an invalid file, naming the file and the path', async () => {
    const dir = dirWith({ 'default.yaml': 'description: d\n', 'bad.yaml': 'locks:\n  voice: { allow: [] }\n' });
    await expect(load(dir, false)).rejects.toThrow(/bad\.yaml[\s\S]*locks\.voice\.allow/);
  });

  it('requires the default policy when the directory has policies', async () => {
    await expect(load(dirWith({ 'strict.yaml': STRICT_V1 }), false)).rejects.toThrow(/no policy file named "default"/);
  });

  it('falls back to a built-in permissive default when the default directory does not exist', async () => {
    const r = await PolicyRegistry.load({ dir: join(tmpdir(), 'rp-does-not-exist-' + Date.now()), dirRequired: false, defaultName: 'default', watch: true, debounceMs: 10, log });
    open.push(r);
    expect(r.resolve(null).current.rules).toEqual([]);
  });

  it('hot reload: a valid edit is swapped in; an invalid edit keeps the last good version', async () => {
    const dir = dirWith({ 'default.yaml': 'description: d\n', 'strict.yaml': STRICT_V1 });
    const r = await load(dir);
    const entry = r.get('strict')!;
    const reloaded = nextEvent(r, (e) => e.kind === 'reloaded');
    writeFileSync(join(dir, 'strict.yaml'), STRICT_V2);
    expect(await reloaded).toEqual({ kind: 'reloaded', name: 'strict', version: '2' });
    expect(entry.current.rules[0]!.id).toBe('b');

    const rejected = nextEvent(r, (e) => e.kind === 'rejected');
    writeFileSync(join(dir, 'strict.yaml'), 'version: 3\nguardrails:\n  rules: [{ id: c, sources: [output], match: { regex: ["(x+)+y"] }, action: block }]\n');
    const e = await rejected;
    expect(e.kind === 'rejected' && e.problems.join()).toMatch(/guardrails\.rules\.0\.match\.regex\.0: nested quantifier/);
    expect(entry.current.version).toBe('2');
    expect(entry.lastError).toMatch(/nested quantifier/);

    const added = nextEvent(r, (ev) => ev.kind === 'added');
    writeFileSync(join(dir, 'new.yaml'), 'description: n\n');
    expect(await added).toMatchObject({ kind: 'added', name: 'new' });
  });

  it('refuses an empty or all-comment policy file, at boot and on reload (it read as the permissive policy)', async () => {
    await expect(load(dirWith({ 'default.yaml': 'description: d\n', 'strict.yaml': '# nothing yet\n' }), false)).rejects.toThrow(/strict\.yaml:\n {2}- \(root\): the file is empty/);
    const dir = dirWith({ 'default.yaml': 'description: d\n', 'strict.yaml': STRICT_V1 });
    const r = await load(dir);
    const rejected = nextEvent(r, (e) => e.kind === 'rejected' || e.kind === 'reloaded');
    // What a truncating write leaves at its first change event.
    writeFileSync(join(dir, 'strict.yaml'), '');
    expect(await rejected).toMatchObject({ kind: 'rejected', name: 'strict' });
    expect(r.get('strict')!.current.version).toBe('1');
  });

  it('refuses a second file for a policy on reload, as boot does, and keeps the version in force', async () => {
    await expect(load(dirWith({ 'default.yaml': 'description: d\n', 'twin.yaml': STRICT_V1, 'twin.yml': STRICT_V2 }), false)).rejects.toThrow(/another file already defines policy "twin"/);
    const dir = dirWith({ 'default.yaml': 'description: d\n', 'twin.yaml': STRICT_V1 });
    const r = await load(dir);
    const first = nextEvent(r, (e) => e.name === 'twin');
    writeFileSync(join(dir, 'twin.yml'), STRICT_V2);
    const e = await first;
    expect(e).toMatchObject({ kind: 'rejected', name: 'twin' });
    expect(e.kind === 'rejected' && e.problems.join()).toMatch(/more than one file \(twin\.yaml, twin\.yml\)/);
    expect(r.get('twin')!.current.version).toBe('1');
    expect(r.get('twin')!.file).toBe(join(dir, 'twin.yaml'));
  });

  it('hot reload: changing a custom module reloads the policies that use it', async () => {
    const mod = (verdict: string) => `export default { name: 'm', wants: ['input'], evaluate: () => ({ action: '${verdict}' }) };\n`;
    const dir = dirWith({
      'default.yaml': 'guardrails:\n  custom: [{ id: m, module: ./custom/m.mjs }]\n',
      'custom/m.mjs': mod('allow'),
    });
    const r = await load(dir);
    const evaluate = () => r.resolve(null).current.custom[0]!.guardrail.evaluate({ source: 'input', eventType: 'x', text: '', delta: null, final: true, responseId: null, itemId: null, functionName: null }, {} as never);
    expect(evaluate()).toEqual({ action: 'allow' });
    const reloaded = nextEvent(r, (e) => e.kind === 'reloaded');
    writeFileSync(join(dir, 'custom/m.mjs'), mod('block'));
    await reloaded;
    expect(evaluate()).toEqual({ action: 'block' });
  });

  it('hot reload: changing a file a TypeScript module imports reloads the policies that use it (its bundle holds the file)', async () => {
    const dir = dirWith({
      'default.yaml': 'guardrails:\n  custom: [{ id: m, module: ./custom/main.ts }]\n',
      'custom/main.ts': "import { verdict } from './lib.js';\nexport default { name: 'm', wants: ['input'], evaluate: () => ({ action: verdict }) };\n",
      'custom/lib.ts': "export const verdict: string = 'allow';\n",
    });
    const r = await load(dir);
    const evaluate = () => r.resolve(null).current.custom[0]!.guardrail.evaluate({ source: 'input', eventType: 'x', text: '', delta: null, final: true, responseId: null, itemId: null, functionName: null }, {} as never);
    expect(evaluate()).toEqual({ action: 'allow' });
    const reloaded = nextEvent(r, (e) => e.kind === 'reloaded');
    writeFileSync(join(dir, 'custom/lib.ts'), "export const verdict: string = 'block';\n");
    await reloaded;
    expect(evaluate()).toEqual({ action: 'block' });
  });
});

describe('policies module', () => {
  it('refuses tenants that name an unknown policy', async () => {
    const config = parseConfig({ tenants: { t1: { keys: [{ key: 'rpk_0123456789abcdef' }], policy: 'nope' } }, policies: { watch: false } }, 'x', {});
    await expect(createPoliciesModule({ config, log, tenants: new TenantResolver(config), clock: { now: () => 0, wall: () => 0 }, baseDir: join(import.meta.dirname, '../..') })).rejects.toThrow(
      /tenants\.t1\.policy: no policy named "nope"/,
    );
  });

  it('builds locks, guardrails and truncation filters from the shipped policies', async () => {
    const config = parseConfig({ tenants: { t1: { keys: [{ key: 'rpk_0123456789abcdef' }], policy: 'customer-support' } }, policies: { watch: false } }, 'x', {});
    const m = await createPoliciesModule({ config, log, tenants: new TenantResolver(config), clock: { now: () => 0, wall: () => 0 }, baseDir: join(import.meta.dirname, '../..') });
    expect(m.filters.map((f) => f.name)).toEqual(['policies.locks', 'policies.guardrails', 'policies.truncation']);
    expect(m.registry.resolve('customer-support').current.version).toBe('1');
    await m.close?.();
  });
});
