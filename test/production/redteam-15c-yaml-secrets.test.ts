import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/**
 * A config file with a YAML syntax error on a line that carries a credential (an upstream key with a
 * stray colon, an admin key whose quote is not closed). The boot error goes to stderr, i.e. to the
 * container logs, which many more people (and log pipelines) read than the Secret the key came from:
 * the error's excerpt printed that line whole, key included. The guarantee broken: secrets (upstream
 * key, tenant keys, admin key) never appear in logs or errors.
 */

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
const UPSTREAM_KEY = 'sk-proj-redteam15cUPSTREAMsecret0123';
const ADMIN_KEY = 'admin-redteam15c-SECRET-0123456789';
const TENANT_KEY = 'rpk_redteam15c_TENANTsecret_0123456789';

function check(yaml: string) {
  const dir = tempDir('rp-yaml-secrets-');
  writeFileSync(join(dir, 'proxy.yaml'), yaml);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  return spawnSync(process.execPath, [bin, 'check-config', '--config', join(dir, 'proxy.yaml')], { encoding: 'utf8', env, timeout: 30_000 });
}

describe('a YAML syntax error on a credential line', () => {
  const cases = [
    { name: 'upstream.apiKey with a stray colon', yaml: `upstream:\n  apiKey: ${UPSTREAM_KEY}: x\n`, secret: UPSTREAM_KEY },
    { name: 'an admin key whose quote is not closed (flow style)', yaml: `admin: { key: "${ADMIN_KEY} }\nserver: { port: 0 }\n`, secret: ADMIN_KEY },
    { name: 'a tenant key with a stray colon (block list)', yaml: `tenants:\n  a:\n    keys:\n      - key: ${TENANT_KEY}: x\n`, secret: TENANT_KEY },
  ];
  for (const c of cases) {
    it(`is reported with its line, never the credential: ${c.name}`, () => {
      const r = check(c.yaml);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain('  - (yaml): ');
      expect(r.stderr).toMatch(/line \d+/);
      expect(r.stderr).not.toContain(c.secret);
    }, 60_000);
  }
});
