import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../support/temp-dir.js';

/**
 * An operator turns calls on with a SIP route naming a tenant that is not defined (a typo, or a
 * tenant removed from the file), or beside an Azure upstream, or with metering off and the ledger
 * path (where the calls store lives) a directory. check-config said ok
 * and the deploy went ahead; run then refused to start ("calls.sip.routes: no tenant named …",
 * "calls: the Azure upstream is not supported yet"), as one bare line without file, path or fix,
 * and under workers > 1 as "relay worker 0: …". The guarantee broken: check-config refuses what run
 * refuses, each problem as file, path and fix (both now come from compileConfig).
 */

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

function cli(args: string[]) {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' };
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 30_000 });
}

function project(yaml: string, metering = 'metering: { ledger: { path: ledger.db } }', prepare: (dir: string) => void = () => undefined): string {
  const dir = tempDir('rp-calls-check-');
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies/default.yaml'), 'description: permissive\n');
  writeFileSync(
    join(dir, 'proxy.yaml'),
    `server: { host: 127.0.0.1, port: 0, workers: 1 }\nadmin: { port: null }\n${metering}\ntenants:\n  acme:\n    keys: [{ key: "rpk_test_acme_0123456789abcdef" }]\n${yaml}`,
  );
  prepare(dir);
  return join(dir, 'proxy.yaml');
}

const CASES: { name: string; yaml: string; line: string; metering?: string; prepare?: (dir: string) => void }[] = [
  {
    // The calls store opens the ledger's file whether metering is on or not; check-config checked it only with metering on.
    name: 'a calls store path that is a directory (metering off)',
    yaml: 'upstream: { provider: simulator }\ncalls: { enabled: true }\n',
    metering: 'metering: { enabled: false, ledger: { path: data/ledger.db } }',
    prepare: (dir) => mkdirSync(join(dir, 'data/ledger.db'), { recursive: true }),
    line: 'data/ledger.db is a directory, not an SQLite database file',
  },
  {
    name: 'a SIP route naming no tenant',
    yaml: 'upstream: { provider: simulator }\ncalls:\n  enabled: true\n  sip:\n    routes:\n      - { tenant: acme, to: "+15550001" }\n      - { tenant: nobody }\n',
    line: '  - calls.sip.routes.1.tenant: no tenant named "nobody"',
  },
  {
    // A route's announcement URL (calls.sip.routes[].notify, 2026-12-07): plain http off loopback needs allowHttp.
    name: 'a SIP route announcing calls over http to a host that is not loopback',
    yaml: 'upstream: { provider: simulator }\ncalls:\n  enabled: true\n  sip:\n    routes:\n      - tenant: acme\n        notify: { url: "http://app.internal/hooks", secret: "whsec_dGVuYW50LWFwcC1ub3RpZnktc2VjcmV0LTAxMjM=" }\n',
    line: '  - calls.sip.routes.0.notify.url: the URL is http: to a host that is not loopback',
  },
  {
    // A route's transfer targets (calls.sip.routes[].transfer, 2026-12-07): a pattern the language cannot read.
    name: 'a SIP route whose transfer allow list holds a host wildcard',
    yaml: 'upstream: { provider: simulator }\ncalls:\n  enabled: true\n  sip:\n    routes:\n      - tenant: acme\n        transfer: { allow: ["tel:+1415555*", "sip:agent@*.example.com"] }\n',
    line: '  - calls.sip.routes.0.transfer.allow.1: "sip:agent@*.example.com" a sip: pattern has its * at the end of the user part, right before @',
  },
  {
    // A rule whose conditions equal an earlier rule's never matches (the first match wins): until 2026-12-07
    // it was taken and its tenant, session, notify and transfer silently never applied. Header names compare case-insensitively.
    name: 'a SIP route whose conditions equal an earlier route\'s',
    yaml: 'upstream: { provider: simulator }\ncalls:\n  enabled: true\n  sip:\n    routes:\n      - { tenant: acme, to: "+15550001" }\n      - { tenant: acme, to: "+15550002", header: { name: X-Line, equals: sales } }\n      - { tenant: acme, to: "+15550002", header: { name: x-line, equals: sales }, transfer: { allow: ["tel:+44*"] } }\n',
    line: '  - calls.sip.routes.2: this rule\'s conditions (to, header) equal those of calls.sip.routes.1, which matches first: rule 2 (its tenant, session, notify and transfer) never applies to a call',
  },
  {
    name: 'calls beside an Azure upstream',
    yaml: 'upstream:\n  provider: azure\n  apiKey: azure-key-0123456789abcdef\n  azure: { endpoint: "https://127.0.0.1:47614", deployment: gpt-realtime }\ncalls: { enabled: true }\n',
    line: '  - calls.enabled: calls are not supported on the Azure upstream yet',
  },
];

describe('check-config and run agree on the calls section', () => {
  for (const c of CASES) {
    it(`both refuse ${c.name}, with the same file, path and fix`, () => {
      const config = project(c.yaml, c.metering, c.prepare);
      const check = cli(['check-config', '--config', config]);
      expect(check.stdout).not.toMatch(/: ok \(/);
      expect(check.status).toBe(1);
      expect(check.stderr).toContain(c.line);
      const run = cli(['--config', config]);
      expect(run.status).toBe(1);
      expect(run.stderr).toBe(check.stderr);
    }, 60_000);
  }

  it('accepts routes that all name tenants (and transfer lists it can read)', () => {
    const config = project('upstream: { provider: simulator }\ncalls:\n  enabled: true\n  sip:\n    routes:\n      - { tenant: acme }\n      - { tenant: acme, to: "+15550002", transfer: { allow: ["tel:+1 415 555-0100", "tel:+44*", "sip:*@support.example.com", "sip:desk@pbx.example.com;transport=tcp"] } }\n      - { tenant: acme, to: "+15550002", header: { name: X-Line, equals: sales } }\n      - { tenant: acme, to: "+15550002", header: { name: X-Line, equals: support } }\n');
    const check = cli(['check-config', '--config', config]);
    // Nothing refused: at most run's start-up warnings (this project serves /metrics nowhere).
    expect(check.stderr.split('\n').filter((l) => l !== '' && !l.includes('proxy.yaml: warning: '))).toEqual([]);
    expect(check.status).toBe(0);
  }, 60_000);
});

/**
 * An operator pastes the Azure URL whole, `api-key=` included, as `upstream.url` (https://, not
 * wss://). check-config and run refuse it, and until 2026-12-07 printed the URL as it was to stderr:
 * the Azure key in CI logs and container logs. It is now shown with credential values redacted.
 */
describe('a refused upstream.url keeps its credentials out of the error', () => {
  it('prints the URL with api-key redacted', () => {
    const config = project('upstream:\n  url: "https://res.openai.azure.com/openai/realtime?deployment=x&api-key=azsecret0123456789"\n  apiKey: sk-test-0123456789\n');
    const check = cli(['check-config', '--config', config]);
    expect(check.status).toBe(1);
    expect(check.stderr).toContain('  - upstream.url: "https://res.openai.azure.com/openai/realtime?deployment=x&api-key=redacted" is not a ws:// or wss:// URL');
    expect(check.stderr).not.toContain('azsecret0123456789');
  }, 60_000);
});
