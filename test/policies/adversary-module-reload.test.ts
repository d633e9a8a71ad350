import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { spawnProxy, whenListening, type Listening } from '../support/spawned-proxy.js';
import { tempDir } from '../support/temp-dir.js';

/**
 * Adversarial review (hot reload of custom guardrail code): a `.mjs` guardrail that imports a helper
 * of its own (`./lib.mjs`), run by the real CLI so that modules are imported as in production (not
 * through the test runner's module loader). policies/README "Hot reload": "a change to a custom
 * module reloads every policy that uses it".
 */
const KEY = 'rpk_adversary_module_reload_0123456789';
const helper = (verdict: string) => `export const verdict = ${JSON.stringify(verdict)};\n`;
const policy = (version: number) => `version: ${version}\nguardrails:\n  custom:\n    - { id: helper, module: ./custom/main.mjs, mode: sync, sources: [input] }\n`;

let dir: string;
let child: ChildProcess;
let exited: Promise<NodeJS.Signals | null>;
let proxy: Listening;
beforeAll(async () => {
  dir = tempDir('rp-adv-mod-');
  mkdirSync(join(dir, 'policies', 'custom'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'default.yaml'), 'description: permissive\n');
  writeFileSync(join(dir, 'policies', 'guarded.yaml'), policy(1));
  writeFileSync(
    join(dir, 'policies', 'custom', 'main.mjs'),
    'import { verdict } from "./lib.mjs";\nexport default { name: "helper", wants: ["input"], evaluate() { return { action: verdict }; } };\n',
  );
  writeFileSync(join(dir, 'policies', 'custom', 'lib.mjs'), helper('allow'));
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `server: { host: 127.0.0.1, port: 0, workers: 1, shutdownDrainSec: 0 }\nadmin: { port: 0 }\nupstream: { provider: simulator }\npolicies: { watch: true, watchDebounceMs: 20 }\ntenants:\n  t1:\n    policy: guarded\n    keys: [{ key: ${KEY} }]\n`,
  );
  ({ child, exited } = spawnProxy(join(dir, 'proxy.yaml')));
  proxy = await whenListening(child);
}, 30_000);
afterAll(async () => {
  child?.kill('SIGKILL');
  await exited;
});

/** Sends one user text in a new session: `added` when relayed, else the error code it was refused with. */
async function fate(text: string): Promise<string> {
  const c = new TestClient(`ws://127.0.0.1:${proxy.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
  await c.next('session.created');
  c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });
  const e = await c.waitFor((ev) => ev.type === 'conversation.item.added' || ev.type === 'error');
  c.close();
  return e.type === 'error' ? String((e['error'] as { code: string }).code) : 'added';
}

const reloads = () => proxy.output().split('\n').filter((l) => l.includes('"policy reloaded"') && l.includes('"policy":"guarded"')).length;

// Was a known limit until 2026-12-06 (two `it.fails`): Node keeps an imported file for the life of
// the process, so a reloaded .mjs guardrail (a new ?v= URL) still ran the first version of its own
// helpers, and a change to a helper did not reload the policy (only the files a policy names were
// watched). Now a resolve hook versions the module's own imports with it (load-module.ts) and they
// are watched (module-imports.ts).
describe('adversary: a custom guardrail module and its own imports on hot reload', () => {
  it('a policy edit after a change to the module\'s helper runs the new helper', async () => {
    expect(await fate('hello there')).toBe('added');
    writeFileSync(join(dir, 'policies', 'custom', 'lib.mjs'), helper('block'));
    const before = reloads();
    writeFileSync(join(dir, 'policies', 'guarded.yaml'), policy(2));
    await expect.poll(reloads, { timeout: 10_000 }).toBeGreaterThan(before);
    expect(proxy.output()).toMatch(/"policy reloaded"[^\n]*"version":"2"|"version":"2"[^\n]*"policy reloaded"/);
    expect(await fate('hello again')).toBe('guardrail_blocked');
  }, 30_000);

  it('a change to a helper the module imports reloads the policy, with the new helper', async () => {
    expect(await fate('hello there')).toBe('guardrail_blocked');
    const before = reloads();
    writeFileSync(join(dir, 'policies', 'custom', 'lib.mjs'), helper('allow'));
    await expect.poll(reloads, { timeout: 5_000 }).toBeGreaterThan(before);
    expect(await fate('hello again')).toBe('added');
  }, 30_000);

  it('a helper\'s own helper, imported only since the last reload, is watched and reloads too', async () => {
    writeFileSync(join(dir, 'policies', 'custom', 'deep.mjs'), helper('block'));
    let before = reloads();
    writeFileSync(join(dir, 'policies', 'custom', 'lib.mjs'), 'export { verdict } from "./deep.mjs";\n');
    await expect.poll(reloads, { timeout: 5_000 }).toBeGreaterThan(before);
    expect(await fate('hello there')).toBe('guardrail_blocked');
    before = reloads();
    writeFileSync(join(dir, 'policies', 'custom', 'deep.mjs'), helper('allow'));
    await expect.poll(reloads, { timeout: 5_000 }).toBeGreaterThan(before);
    expect(await fate('hello again')).toBe('added');
  }, 30_000);
});
