import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/*
 * An operator stores the OpenAI key in a Kubernetes Secret made from a file
 * (`kubectl create secret generic --from-file=OPENAI_API_KEY=key.txt`; the file ends in a newline),
 * or a tenant's key in an env file written with `echo`. The value then ends in "\n". Until
 * 2026-12-07 check-config said ok and /readyz said ready, and every session failed: the upstream
 * key cannot go into a header (ERR_INVALID_CHAR, logged with a stack; the client got
 * `upstream_unavailable`, 1013), and a tenant key with a newline no client can send (401 for all).
 * check-config (and so run) now names the setting, never the value.
 */

const root = new URL('../..', import.meta.url).pathname;
const bin = join(root, 'bin/realtime-proxy.mjs');
const UPSTREAM_KEY = 'sk-ops-newline-0123456789';
const TENANT_KEY = 'rpk_ops_newline_0123456789abcdef';

function checkConfig(env: Record<string, string>): { status: number | null; stdout: string; stderr: string } {
  const dir = tempDir('rp-ops-newline-');
  const file = join(dir, 'proxy.yaml');
  writeFileSync(
    file,
    [
      'server: { host: 127.0.0.1, port: 0, workers: 1 }',
      'upstream: { provider: openai, apiKey: "${OPENAI_API_KEY}", organization: "${OPENAI_ORG:-}" }',
      'admin: { port: 0, key: "${ADMIN_KEY:-}" }',
      'metering: { ledger: { kind: sqlite, path: ":memory:" } }',
      `policies: { dir: ${join(root, 'policies')}, watch: false }`,
      'tenants: { acme: { keys: [{ key: "${TENANT_KEY}" }] } }',
      '',
    ].join('\n'),
  );
  const r = spawnSync(process.execPath, [bin, 'check-config', '--config', file], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('a key read with its trailing newline', () => {
  it('the upstream API key: refused by check-config, the key not printed', () => {
    const r = checkConfig({ OPENAI_API_KEY: `${UPSTREAM_KEY}\n`, TENANT_KEY });
    expect(r.status, r.stdout).toBe(1);
    expect(r.stderr).toContain('upstream.apiKey');
    expect(r.stderr).not.toContain(UPSTREAM_KEY);
  });

  it('the organization header too', () => {
    const r = checkConfig({ OPENAI_API_KEY: UPSTREAM_KEY, OPENAI_ORG: 'org-abc\r\n', TENANT_KEY });
    expect(r.status, r.stdout).toBe(1);
    expect(r.stderr).toContain('upstream.organization');
  });

  it('a tenant key: refused by check-config (no client can send it), the key not printed', () => {
    const r = checkConfig({ OPENAI_API_KEY: UPSTREAM_KEY, TENANT_KEY: `${TENANT_KEY}\n` });
    expect(r.status, r.stdout).toBe(1);
    expect(r.stderr).toContain('tenants.acme.keys.0.key');
    expect(r.stderr).not.toContain(TENANT_KEY);
  });

  it('the admin key: refused (every admin call would be 401), the key not printed', () => {
    const r = checkConfig({ OPENAI_API_KEY: UPSTREAM_KEY, TENANT_KEY, ADMIN_KEY: 'admin-key-ops-0123456789\n' });
    expect(r.status, r.stdout).toBe(1);
    expect(r.stderr).toContain('admin.key');
    expect(r.stderr).not.toContain('admin-key-ops-0123456789');
  });

  it('the same keys without the newline pass', () => {
    const r = checkConfig({ OPENAI_API_KEY: UPSTREAM_KEY, TENANT_KEY, ADMIN_KEY: 'admin-key-ops-0123456789' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
