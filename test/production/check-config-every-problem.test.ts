import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/**
 * Found 2026-12-06 following README "Configuration": its check-config example lists, in one run, a
 * tenant naming a policy that does not exist ("suport") and a policy file whose custom guardrail does
 * not load. The proxy lists only the policy file's problem: when any policy file fails,
 * compilePolicies (src/config/compile.ts) returns before it checks the tenants' policy names, so the
 * operator fixes the module, runs again and only then learns of the typo.
 */
const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

describe('check-config lists every problem in one run', () => {
  it('reports a tenant naming an unknown policy even when another policy file does not load', () => {
    const dir = tempDir('rp-check-every-');
    mkdirSync(join(dir, 'policies'));
    writeFileSync(
      join(dir, 'proxy.yaml'),
      'server: { host: 127.0.0.1, port: 0 }\nmetering: { ledger: { path: ":memory:" } }\ntenants:\n  acme:\n    policy: suport\n    keys: [{ key: rpk_tenant_a_0123456789 }]\n',
    );
    writeFileSync(join(dir, 'policies', 'default.yaml'), 'description: permissive\n');
    writeFileSync(join(dir, 'policies', 'support.yaml'), 'name: support\nguardrails:\n  custom: [{ id: gone, module: ./custom/gone.mjs }]\n');
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
    const r = spawnSync(process.execPath, [bin, 'check-config', '--config', join(dir, 'proxy.yaml')], { encoding: 'utf8', env, timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('  - guardrails.custom.0.module: cannot load ./custom/gone.mjs');
    expect(r.stderr).toContain('  - tenants.acme.policy: no policy named "suport"');
  }, 60_000);
});
