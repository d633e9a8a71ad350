import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { RELAY_NODE_FLAGS } from '../../src/server/node-flags.js';

/**
 * The image's contract, checked without building it (scripts/test-image.sh builds and runs it):
 * the config it ships validates, keeps all state under /data, and refuses a missing secret.
 */

const root = new URL('../..', import.meta.url).pathname;
const bin = `${root}bin/realtime-proxy.mjs`;
const dockerfile = readFileSync(`${root}Dockerfile`, 'utf8');
const SHA = 'a'.repeat(64);

function check(env: Record<string, string>) {
  return spawnSync(process.execPath, [bin, 'check-config', '--config', `${root}config/production.yaml`], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', POLICIES_DIR: `${root}policies`, ...env },
  });
}

describe('the image', () => {
  it('runs compiled JS as a non-root user with the production config, and declares /data as its one volume', () => {
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(runtime).toMatch(/\nUSER node\n/);
    expect(runtime).toContain(`ENTRYPOINT ["node", ${RELAY_NODE_FLAGS.map((f) => `"${f}"`).join(', ')}, "dist/cli.js"]`);
    // The config comes from REALTIME_PROXY_CONFIG, for `run` (CMD) and `check-config` alike (next test).
    expect(runtime).toContain('CMD ["run"]');
    expect(runtime).toContain('VOLUME ["/data"]');
    expect(runtime).toMatch(/mkdir -p \/data && chown node:node \/data/);
    expect(runtime).not.toMatch(/COPY src|tsx/);
    const config = parseYaml(readFileSync(`${root}config/production.yaml`, 'utf8')) as { metering: { ledger: { path: string } } };
    expect(config.metering.ledger.path).toBe('/data/metering.sqlite');
    const ignore = readFileSync(`${root}.dockerignore`, 'utf8').split('\n');
    for (const entry of ['**/node_modules', 'dist', '**/.data', '**/*.sqlite', '.git', 'test']) expect(ignore).toContain(entry);
  });

  it('names its config in REALTIME_PROXY_CONFIG, so `check-config` without --config checks the file `run` runs', () => {
    // Until 2026-12-07 only CMD named the file: `docker run IMAGE check-config` checked the built-in defaults and said ok (0 tenants).
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const env = /\nENV REALTIME_PROXY_CONFIG=(\S+)\n/.exec(runtime);
    expect(env?.[1]).toBe('/app/config/production.yaml');
    expect(runtime).toMatch(/\nWORKDIR \/app\n/);
    expect(runtime).toMatch(/\nCOPY config\/production\.yaml [^\n]*\.\/config\/\n/);
    expect(runtime).not.toMatch(/\nCMD [^\n]*--config/);
    // The CLI reads the variable: without --config, the image's file (here at its place in the checkout) is checked.
    const bare = spawnSync(process.execPath, [bin, 'check-config'], {
      encoding: 'utf8',
      cwd: root,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', POLICIES_DIR: `${root}policies`, NODE_ENV: 'production', OPENAI_API_KEY: 'sk-test', REALTIME_PROXY_CONFIG: `${root}config/production.yaml` },
    });
    expect(bare.stderr).toContain('tenants.default.keys.0.sha256: environment variable TENANT_KEY_SHA256 is not set');
    expect(bare.status).toBe(1);
  }, 60_000);

  it('npm start passes the relay its V8 flags too (src/server/node-flags.ts)', () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> };
    // `exec`: the shell npm runs the script in becomes the proxy, so npm's SIGTERM reaches it (test/production/npm-start.test.ts).
    expect(pkg.scripts['start']).toBe(`exec node ${RELAY_NODE_FLAGS.join(' ')} bin/realtime-proxy.mjs --config config/example.yaml`);
  });

  it('ships a config that validates with the simulator chosen, and refuses production without an API key', () => {
    const ok = check({ NODE_ENV: 'production', UPSTREAM_PROVIDER: 'simulator', TENANT_KEY_SHA256: SHA });
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toContain('upstream simulator (chosen)');
    const noKey = check({ NODE_ENV: 'production', TENANT_KEY_SHA256: SHA });
    expect(noKey.status).toBe(1);
    expect(noKey.stderr).toContain('upstream.apiKey: no OpenAI API key');
    const noTenant = check({ NODE_ENV: 'production', OPENAI_API_KEY: 'sk-test' });
    expect(noTenant.status).toBe(1);
    expect(noTenant.stderr).toContain('tenants.default.keys.0.sha256: environment variable TENANT_KEY_SHA256 is not set');
  }, 60_000);
});
