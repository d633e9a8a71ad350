import { execSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { whenListening } from '../support/spawned-proxy.js';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { TestClient } from '../support/client.js';
import { tempDir } from '../support/temp-dir.js';

/**
 * One validation phase: `check-config` and `run` run the same compile steps, so every mistake an
 * operator can make fails both, with the same message naming the file, the path and the fix.
 */

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

/** A clean environment: no keys leak in from the machine running the tests. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...extra };
}

function project(files: Record<string, string>): string {
  const dir = tempDir('rp-check-');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

function cli(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env, timeout: 30_000 });
}

const BASE = 'server: { host: 127.0.0.1, port: 0 }\nmetering: { ledger: { path: ":memory:" } }\n';
const TENANT = 'tenants:\n  a:\n    keys: [{ key: rpk_tenant_a_0123456789 }]\n';
const DEFAULT_POLICY = { 'policies/default.yaml': 'description: permissive\n' };

interface Mistake {
  readonly name: string;
  readonly files: Record<string, string>;
  readonly env?: Record<string, string>;
  /** The file the problem must be reported in (relative to the project). */
  readonly file: string;
  readonly path: string;
  readonly text: RegExp;
}

const MISTAKES: Mistake[] = [
  {
    name: 'an unknown policy',
    files: { 'proxy.yaml': BASE + TENANT + '    policy: nosuch\n', ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'tenants.a.policy',
    text: /no policy named "nosuch"/,
  },
  {
    name: 'an unknown plan',
    files: { 'proxy.yaml': BASE + TENANT + '    plan: gold\n', ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'tenants.a',
    text: /plan "gold" is not defined/,
  },
  {
    name: 'missing TLS files',
    files: { 'proxy.yaml': 'server: { host: 127.0.0.1, port: 0, tls: { port: 0, certFile: nope.crt, keyFile: nope.key } }\n' + TENANT, ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'server.tls.certFile',
    text: /cannot read .*nope\.crt: ENOENT/,
  },
  {
    name: 'two tenants sharing a key',
    files: { 'proxy.yaml': BASE + TENANT + '  b:\n    keys: [{ key: rpk_tenant_a_0123456789 }]\n', ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'tenants.b.keys',
    text: /tenants "a" and "b" share a key/,
  },
  {
    name: 'broken policy YAML',
    files: { 'proxy.yaml': BASE + TENANT, 'policies/default.yaml': 'guardrails: [unclosed\n' },
    file: 'policies/default.yaml',
    path: '(yaml)',
    text: /flow sequence|Missing|unclosed|end/i,
  },
  {
    name: 'a missing custom module',
    files: { 'proxy.yaml': BASE + TENANT, 'policies/default.yaml': 'guardrails:\n  custom: [{ id: gone, module: ./custom/gone.mjs }]\n' },
    file: 'policies/default.yaml',
    path: 'guardrails.custom.0.module',
    text: /cannot load \.\/custom\/gone\.mjs/,
  },
  {
    name: 'a bad price table',
    files: { 'proxy.yaml': BASE.replace('metering: {', 'metering: { prices: { my-model: { extends: gpt-realtime, textIn: "0.0001" } },') + TENANT, ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'metering.prices.my-model.textIn',
    text: /not a non-negative multiple of 0\.001/,
  },
  {
    name: 'an admin key in a bad format',
    files: { 'proxy.yaml': BASE + 'admin: { key: "sha256:abc" }\n' + TENANT, ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'admin.key',
    text: /must be followed by exactly 64 hex digits/,
  },
  {
    name: 'no upstream key with NODE_ENV=production',
    files: { 'proxy.yaml': BASE + TENANT, ...DEFAULT_POLICY },
    env: { NODE_ENV: 'production' },
    file: 'proxy.yaml',
    path: 'upstream.apiKey',
    text: /no OpenAI API key .* NODE_ENV is production/,
  },
  {
    name: 'provider azure without AZURE_OPENAI_API_KEY (OPENAI_API_KEY does not count)',
    files: {
      'proxy.yaml': BASE + 'upstream: { provider: azure, azure: { endpoint: "https://r.openai.azure.com", deployment: rt } }\n' + TENANT,
      ...DEFAULT_POLICY,
    },
    env: { OPENAI_API_KEY: 'sk-openai-not-for-azure' },
    file: 'proxy.yaml',
    path: 'upstream.apiKey',
    text: /provider azure has no API key/,
  },
  {
    name: 'a number field given a non-number from the environment',
    files: { 'proxy.yaml': 'server:\n  host: 127.0.0.1\n  port: ${PROXY_PORT}\n' + TENANT, ...DEFAULT_POLICY },
    env: { PROXY_PORT: 'eighty' },
    file: 'proxy.yaml',
    path: 'server.port',
    text: /expected number/,
  },
  {
    name: 'server.workers that is neither a count nor auto',
    files: { 'proxy.yaml': BASE.replace('port: 0 }', 'port: 0, workers: 0 }') + TENANT, ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'server.workers',
    text: /server\.workers/,
  },
  {
    name: 'several workers with calls on an in-memory store (one store per worker process)',
    files: { 'proxy.yaml': BASE.replace('port: 0 }', 'port: 0, workers: 2 }') + 'calls: { enabled: true }\n' + TENANT, ...DEFAULT_POLICY },
    file: 'proxy.yaml',
    path: 'server.workers',
    text: /2 workers cannot share calls' in-memory store/,
  },
];

describe('check-config and run share one validation phase', () => {
  for (const m of MISTAKES) {
    it(`refuses ${m.name}, naming the file, the path and the fix (check-config and run alike)`, () => {
      const dir = project(m.files);
      const config = join(dir, 'proxy.yaml');
      const env = cleanEnv(m.env);
      const check = cli(['check-config', '--config', config], env);
      expect(check.status, check.stdout + check.stderr).toBe(1);
      expect(check.stdout).toBe('');
      const err = check.stderr;
      expect(err).toContain(`invalid config ${join(dir, m.file)}:`);
      const line = err.split('\n').find((l) => l.startsWith(`  - ${m.path}: `));
      expect(line, err).toBeDefined();
      expect(err).toMatch(m.text);
      // Every problem comes with its fix.
      const items = err.trimEnd().split(/\n(?=  - )/).slice(1);
      expect(items.length).toBeGreaterThan(0);
      for (const item of items) expect(item, err).toMatch(/\n {4}fix: \S/);
      expect(err).not.toMatch(/\n\s+at |fatal:/);

      const run = cli(['--config', config], env);
      expect(run.status).toBe(1);
      expect(run.stderr).toBe(err);
    }, 60_000);
  }

  it('reports every mistake of a config in one run (schema-level ones together, then every compile step)', () => {
    const dir = project({
      'proxy.yaml': BASE.replace('port: 0 }', 'port: 0, tls: { port: 0, certFile: gone.crt, keyFile: gone.key } }') + TENANT + '    plan: gold\n  b:\n    keys: [{ key: rpk_tenant_a_0123456789 }]\n    policy: nosuch\n',
      'policies/default.yaml': 'guardrails:\n  custom: [{ id: gone, module: ./custom/gone.mjs }]\n',
    });
    const r = cli(['check-config', '--config', join(dir, 'proxy.yaml')], cleanEnv());
    expect(r.status).toBe(1);
    for (const path of ['server.tls.certFile', 'server.tls.keyFile', 'tenants.b.keys', 'tenants.a', 'guardrails.custom.0.module']) expect(r.stderr).toContain(`  - ${path}: `);
    const schema = project({ 'proxy.yaml': 'admin: { key: short }\nserver: { port: -1, bogus: 1 }\nupstream: { apiKey: "${MISSING}" }\n', ...DEFAULT_POLICY });
    const s = cli(['check-config', '--config', join(schema, 'proxy.yaml')], cleanEnv());
    expect(s.status).toBe(1);
    for (const path of ['upstream.apiKey', 'server.port', 'server']) expect(s.stderr).toContain(`  - ${path}: `);
  }, 60_000);

  it('accepts a good config and says which upstream it would use', () => {
    const dir = project({ 'proxy.yaml': BASE + 'upstream: { provider: simulator }\n' + TENANT, ...DEFAULT_POLICY });
    const r = cli(['check-config', '--config', join(dir, 'proxy.yaml')], cleanEnv({ NODE_ENV: 'production' }));
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('ok (1 tenants, upstream simulator (chosen), workers ');
  });
});

describe('typed environment interpolation and provider keys', () => {
  it('types a whole-scalar ${VAR} by the field: numbers and booleans where the schema wants them, text otherwise', () => {
    const doc = {
      server: { port: '${PROXY_PORT}', tls: { port: '${TLS_PORT:-8443}', certFile: 'c', keyFile: 'k' } },
      policies: { watch: '${WATCH}' },
      upstream: { apiKey: '${NUMERIC_KEY}' },
      tenants: { a: { name: '${NUMERIC_NAME}', keys: [{ key: 'rpk_${NUMERIC_KEY}_0123456789' }] } },
    };
    const c = parseConfig(doc, 'x.yaml', { PROXY_PORT: '9090', WATCH: 'false', NUMERIC_KEY: '12345', NUMERIC_NAME: '42' });
    expect(c.server.port).toBe(9090);
    expect(c.server.tls?.port).toBe(8443);
    expect(c.policies.watch).toBe(false);
    expect(c.upstream.apiKey).toBe('12345');
    expect(c.tenants['a']?.name).toBe('42');
    expect(c.tenants['a']?.keys[0]).toEqual({ key: 'rpk_12345_0123456789' });
  });

  it('takes the upstream key from the chosen provider: AZURE_OPENAI_API_KEY for azure, OPENAI_API_KEY for openai', () => {
    const azure = { upstream: { provider: 'azure', azure: { endpoint: 'https://r.openai.azure.com', deployment: 'rt' } } };
    expect(parseConfig(azure, 'x', { OPENAI_API_KEY: 'sk-openai', AZURE_OPENAI_API_KEY: 'az-key' }).upstream.apiKey).toBe('az-key');
    expect(parseConfig(azure, 'x', { OPENAI_API_KEY: 'sk-openai' }).upstream.apiKey).toBe('');
    expect(parseConfig({}, 'x', { OPENAI_API_KEY: 'sk-openai', AZURE_OPENAI_API_KEY: 'az-key' }).upstream.apiKey).toBe('sk-openai');
  });

  it('names a bad PORT override with its fix', () => {
    let err: unknown;
    try {
      parseConfig({}, 'x.yaml', { PORT: 'http' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([expect.objectContaining({ file: 'x.yaml', path: 'server.port', fix: expect.stringContaining('PORT') })]);
  });
});

describe('the README quickstart', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const quick = readme.slice(readme.indexOf('## Quickstart'), readme.indexOf('## How it works'));

  it('works verbatim: its certificate command, its proxy.yaml, check-config, then a turn over wss://', async () => {
    const openssl = /```sh\n(openssl req[\s\S]*?)\n(?=\S+ bin\/realtime-proxy\.mjs keygen)/.exec(quick)?.[1];
    const yaml = /`proxy\.yaml`[^\n]*\n\n```yaml\n([\s\S]*?)```/.exec(quick)?.[1];
    expect(openssl).toBeDefined();
    expect(yaml).toBeDefined();
    const dir = tempDir('rp-quickstart-');
    execSync(openssl!, { cwd: dir, stdio: 'pipe', shell: '/bin/sh' });
    writeFileSync(join(dir, 'proxy.yaml'), yaml!);
    const key = 'rpk_quickstart_0123456789abcdef';
    // Free ports instead of 8080/8443; no OPENAI_API_KEY: the embedded simulator, as the comment says.
    const env = cleanEnv({ TENANT_KEY: key, PORT: '0', TLS_PORT: '0', HOST: '127.0.0.1' });
    const check = cli(['check-config', '--config', join(dir, 'proxy.yaml')], env);
    // check-config says what run would warn about: the quickstart has no policies directory (the
    // permissive default governs); nothing else.
    expect(check.stderr.trim().split('\n')).toEqual([expect.stringMatching(/proxy\.yaml: warning: policies directory not found: using the built-in permissive default policy/)]);
    expect(check.status).toBe(0);

    const child = spawn(process.execPath, [bin, '--config', 'proxy.yaml'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const listening = await whenListening(child);
      const tlsPort = listening.tlsPort;
      expect(tlsPort).not.toBeNull();
      const c = new TestClient(`wss://localhost:${tlsPort}/v1/realtime?model=gpt-realtime`, {
        headers: { authorization: `Bearer ${key}` },
        ca: readFileSync(join(dir, 'rp.crt'), 'utf8'),
      });
      await c.next('session.created', 10_000);
      c.say('say: quickstart works');
      const done = await c.next('response.done', 15_000);
      expect((done['response'] as { status: string }).status).toBe('completed');
      c.close();
    } finally {
      child.kill('SIGKILL');
    }
  }, 40_000);
});
