import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/**
 * An operator (or a CI step) writes `realtime-proxy check-config proxy.yaml`, the file given as a
 * positional argument rather than with --config. `run` refuses that extra argument (exit 2), but
 * check-config ignored it and checked the built-in defaults instead: "(defaults): ok", exit 0, for a
 * file that `run` would reject. The guarantee broken: check-config accepts exactly what run accepts.
 */

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

function cleanEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
}

describe('check-config with the config file as a positional argument', () => {
  it('is refused as run refuses it (exit 2), never "ok" for the defaults', () => {
    const dir = tempDir('rp-check-args-');
    // Broken on purpose: a tenant naming a policy that does not exist.
    writeFileSync(join(dir, 'proxy.yaml'), 'tenants:\n  a:\n    keys: [{ key: rpk_tenant_a_0123456789 }]\n    policy: nosuch\n');
    const result = spawnSync(process.execPath, [bin, 'check-config', 'proxy.yaml'], { cwd: dir, encoding: 'utf8', env: cleanEnv(), timeout: 30_000 });
    expect(result.stdout).not.toMatch(/: ok \(/);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/unexpected argument "proxy\.yaml"/);
  });
});
