import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/**
 * Adversarial review (policy loading, `check-config` and `run`): careless custom guardrail modules,
 * through the real CLI as test/relay/cli.test.ts drives it.
 */
const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
const KEY = 'rpk_adversary_cli_key_0123456789';

/** A config directory: one tenant on policy `strict`, whose only guardrail is the module `custom/<name>`. */
function project(moduleName: string, moduleText: string): string {
  return projectWith(`guardrails:\n  custom:\n    - { id: careless, module: ./custom/${moduleName}, mode: sync }\n`, { [moduleName]: moduleText });
}

/** A config directory: one tenant on policy `strict` (this text), with these files under policies/custom/. */
function projectWith(strictPolicy: string, customFiles: Record<string, string> = {}): string {
  const dir = tempDir('rp-adv-cli-');
  mkdirSync(join(dir, 'policies', 'custom'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'default.yaml'), 'description: permissive\n');
  writeFileSync(join(dir, 'policies', 'strict.yaml'), strictPolicy);
  for (const [name, text] of Object.entries(customFiles)) writeFileSync(join(dir, 'policies', 'custom', name), text);
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `server: { host: 127.0.0.1, port: 0, workers: 1, shutdownDrainSec: 0 }\nadmin: { port: 0 }\nupstream: { provider: simulator }\ntenants:\n  t1:\n    policy: strict\n    keys: [{ key: ${KEY} }]\n`,
  );
  return join(dir, 'proxy.yaml');
}

function cli(args: string[]) {
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 60_000, killSignal: 'SIGKILL' });
}

/** A module whose top-level await never settles (it waits for something that never comes). */
const NEVER_LOADS = 'await new Promise(() => {});\nexport default { name: "never", wants: ["input"], evaluate() { return { action: "block" }; } };\n';

describe('adversary: check-config and run on careless custom modules', () => {
  it('check-config does not exit 0 (without its "ok" line) when a custom module never finishes loading', () => {
    const r = cli(['check-config', '--config', project('never.mjs', NEVER_LOADS)]);
    // Today: exit 0, nothing printed: the pending import leaves Node with an empty event loop.
    expect({ status: r.status, stdout: r.stdout }).not.toEqual({ status: 0, stdout: '' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('guardrails.custom.0.module');
  }, 70_000);

  it('run does not exit 0 without listening when a custom module never finishes loading', () => {
    const r = cli(['--config', project('never.mjs', NEVER_LOADS)]);
    // A supervisor reads exit 0 as a clean stop (no restart, no alert): the proxy must fail loudly.
    expect(r.stderr + r.stdout).not.toBe('');
    expect(r.status).toBe(1);
  }, 70_000);

  it('check-config refuses a guardrail whose `wants` names no known source (a typo: it would never run)', () => {
    const typo = 'export default { name: "typo", wants: ["outputs"], evaluate() { return { action: "block" }; } };\n';
    const r = cli(['check-config', '--config', project('typo.mjs', typo)]);
    // Today: "ok": the guardrail is compiled for the source "outputs", which no text ever has.
    expect(r.stdout).not.toContain(': ok (');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('outputs');
  }, 70_000);

  it('check-config refuses two PII detectors of the same name (the second silently replaced the first)', () => {
    const r = cli([
      'check-config',
      '--config',
      projectWith(`guardrails:
  piiDetectors:
    - { name: member_id, pattern: "(?:\\\\b|_)MC\\\\d{12}(?:\\\\b|_)", maxLength: 16 }
    - { name: member_id, pattern: "(?:\\\\b|_)MX\\\\d{2}(?:\\\\b|_)", maxLength: 4 }
  rules:
    - { id: members, sources: [input, output], match: { pii: [member_id] }, action: redact }
`),
    ]);
    // Today: "ok"; at run time rule "members" matches MX12 only and MC123456789012 passes.
    expect(r.stdout).not.toContain(': ok (');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('member_id');
  }, 70_000);

  it('check-config refuses a PII detector named like a built-in one (a custom `card` replaced the Luhn-checked detector)', () => {
    const r = cli([
      'check-config',
      '--config',
      projectWith(`guardrails:
  piiDetectors:
    - { name: card, pattern: "(?:\\\\b|_)GIFT-\\\\d{4}(?:\\\\b|_)", maxLength: 9 }
  rules:
    - { id: no-cards, sources: [input, output], match: { pii: [card] }, action: redact }
`),
    ]);
    // Today: "ok"; every rule naming `card` then redacts GIFT-1234 and lets 4111 1111 1111 1111 through.
    expect(r.stdout).not.toContain(': ok (');
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('card');
  }, 70_000);
});
