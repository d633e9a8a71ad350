import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { killedAfterEach, whenListening } from '../support/spawned-proxy.js';
import { tempDir } from '../support/temp-dir.js';

/*
 * An operator follows "Run it": `npm start` on a cloud VM, then, as the README says, sets
 * OPENAI_API_KEY so "the same command relays to OpenAI". config/example.yaml's demo tenant key,
 * `rpk_demo_local_only_change_me`, is printed in the README, and until 2026-12-07 the config
 * listened on 0.0.0.0: anyone who could reach port 8080 and had read the README spent the
 * operator's OpenAI key (up to the demo plan's $5 a day, $50 a month), with no warning at start.
 *
 * Now `npm start`'s config listens on loopback unless HOST says otherwise, and check-config (so
 * run) refuses the published key on a listener other machines reach when it relays to a real
 * upstream.
 */

const root = new URL('../..', import.meta.url).pathname;
const bin = join(root, 'bin/realtime-proxy.mjs');
const DEMO_KEY = 'rpk_demo_local_only_change_me';
const running = killedAfterEach();

/** config/example.yaml in a scratch copy of its directory layout (its ledger goes there, not into the checkout). */
function exampleConfig(): string {
  const dir = tempDir('rp-ops-demo-key-');
  mkdirSync(join(dir, 'config'));
  copyFileSync(join(root, 'config/example.yaml'), join(dir, 'config/example.yaml'));
  symlinkSync(join(root, 'policies'), join(dir, 'policies'));
  return join(dir, 'config/example.yaml');
}

/** The environment `npm start` would see, plus `extra`; no stray HOST, keys or config from the test's own. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', PORT: '0', REALTIME_PROXY_ADMIN_PORT: '0', ...extra };
}

/** Local addresses of the TCP sockets listening on `port` (from /proc/net/tcp and tcp6; state 0A). */
function listeningAddresses(port: number): string[] {
  const out: string[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '0A') continue;
      const [addr, hexPort] = cols[1]!.split(':');
      if (parseInt(hexPort!, 16) === port) out.push(addr!);
    }
  }
  return out;
}

const IPV4_LOOPBACK = '0100007F';
const IPV6_LOOPBACK = '00000000000000000000000001000000';

describe("npm start's published demo key and a real OpenAI key", () => {
  it('with OPENAI_API_KEY set, `npm start` listens on loopback only', { timeout: 60_000 }, async () => {
    const child = spawn(process.execPath, [bin, '--config', exampleConfig()], {
      env: env({ OPENAI_API_KEY: 'sk-ops-test-not-a-real-key', REALTIME_UPSTREAM_URL: 'ws://127.0.0.1:9/v1/realtime' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.push(child);
    const listening = await whenListening(child);
    const addresses = listeningAddresses(listening.port);
    expect(addresses.length).toBeGreaterThan(0);
    for (const a of addresses) expect([IPV4_LOOPBACK, IPV6_LOOPBACK], `client port bound to ${a}`).toContain(a);
  });

  it('check-config refuses the published key on a listener other machines reach with a real upstream', () => {
    const config = exampleConfig();
    const r = spawnSync(process.execPath, [bin, 'check-config', '--config', config], { encoding: 'utf8', env: env({ HOST: '0.0.0.0', OPENAI_API_KEY: 'sk-ops-test-not-a-real-key' }) });
    expect(r.status, r.stdout).toBe(1);
    expect(r.stderr).toContain('tenants.demo.keys');
    expect(r.stderr).toContain('DEMO_TENANT_KEY');
    expect(r.stderr).not.toContain(DEMO_KEY);
  });

  it('allows it on loopback, with the simulator, or once DEMO_TENANT_KEY replaces it', () => {
    const config = exampleConfig();
    const cases: Record<string, string>[] = [
      { OPENAI_API_KEY: 'sk-ops-test-not-a-real-key' },
      { HOST: '0.0.0.0' },
      { HOST: '0.0.0.0', OPENAI_API_KEY: 'sk-ops-test-not-a-real-key', DEMO_TENANT_KEY: 'rpk_ops_own_key_0123456789abcdef' },
    ];
    for (const extra of cases) {
      const r = spawnSync(process.execPath, [bin, 'check-config', '--config', config], { encoding: 'utf8', env: env(extra) });
      expect(r.status, `${JSON.stringify(extra)}: ${r.stderr}`).toBe(0);
    }
  });
});
