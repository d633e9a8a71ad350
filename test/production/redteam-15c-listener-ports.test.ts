import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/**
 * An operator gives the admin listener the client port (`admin.port: 8080` beside `server.port: 8080`,
 * a copy-paste, or PORT=8081 in the environment beside the default admin port). uWS listens with
 * SO_REUSEPORT, so both listeners bound the port and the kernel handed each connection to either one:
 * measured by hand, /metrics answered 404 four times in six and client upgrades 404 every other time,
 * while check-config said ok and run started. The guarantee broken: check-config refuses a config run
 * cannot serve.
 */

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

function cli(args: string[], extraEnv: Record<string, string> = {}) {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...extraEnv };
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 30_000 });
}

function project(yaml: string): string {
  const dir = tempDir('rp-ports-');
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies/default.yaml'), 'description: permissive\n');
  writeFileSync(join(dir, 'proxy.yaml'), `upstream: { provider: simulator }\nmetering: { ledger: { path: ":memory:" } }\n${yaml}`);
  return join(dir, 'proxy.yaml');
}

describe('two listeners on one port', () => {
  const cases: { name: string; yaml: string; env: Record<string, string>; path: string }[] = [
    { name: 'admin.port equal to server.port', yaml: 'server: { host: 127.0.0.1, port: 18099, workers: 1 }\nadmin: { host: 127.0.0.1, port: 18099 }\n', env: {}, path: 'admin.port' },
    { name: 'PORT in the environment equal to the default admin port (server.host 0.0.0.0)', yaml: 'server: { workers: 1 }\n', env: { PORT: '8081' }, path: 'admin.port' },
  ];
  for (const c of cases) {
    it(`is refused by check-config and run alike: ${c.name}`, () => {
      const config = project(c.yaml);
      const check = cli(['check-config', '--config', config], c.env);
      expect(check.stdout).not.toMatch(/: ok \(/);
      expect(check.status).toBe(1);
      expect(check.stderr).toContain(`  - ${c.path}: port `);
      const run = cli(['--config', config], c.env);
      expect(run.status).toBe(1);
      expect(run.stderr).toBe(check.stderr);
    }, 60_000);
  }

  it('accepts distinct ports, and port 0 (a free port for each listener) twice', () => {
    const config = project('server: { host: 127.0.0.1, port: 0, workers: 1 }\nadmin: { host: 127.0.0.1, port: 0 }\n');
    const check = cli(['check-config', '--config', config]);
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
  }, 60_000);
});
