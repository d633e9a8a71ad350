import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config/errors.js';
import { parseConfig } from '../../src/config/load.js';
import { startProxy } from '../../src/main.js';
import { PolicyRegistry, type RegistryEvent } from '../../src/policies/registry.js';
import { startSimulator } from '../../src/simulator/index.js';
import { startTestProxy, TestClient } from '../support/harness.js';
import { tempDir } from '../support/temp-dir.js';

/** Honest readiness: the proxy says what it relays to, refuses fake answers in production, and drains visibly. */

const silent = pino({ level: 'silent' });
const TENANTS = { t: { keys: [{ key: 'rpk_ready_test_0123456789' }] } };

async function readyz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe('the upstream the proxy relays to', () => {
  it('refuses to start with NODE_ENV=production and no API key, instead of serving simulated answers', async () => {
    const config = parseConfig({ server: { host: '127.0.0.1', port: 0, workers: 1 }, metering: { ledger: { path: ':memory:' } }, tenants: TENANTS }, 'prod.yaml', {});
    const started = startProxy(config, { logger: silent, configFile: 'prod.yaml', env: { NODE_ENV: 'production' } });
    await expect(started).rejects.toBeInstanceOf(ConfigError);
    await expect(started).rejects.toThrow(/upstream\.apiKey: no OpenAI API key[\s\S]*fix: set OPENAI_API_KEY/);
  });

  it('falls back to the simulator outside production and says so on /readyz', async () => {
    const config = parseConfig({ server: { host: '127.0.0.1', port: 0, workers: 1 }, admin: { port: 0 }, metering: { ledger: { path: ':memory:' } }, tenants: TENANTS }, 'dev.yaml', {});
    const proxy = await startProxy(config, { logger: silent, env: { NODE_ENV: 'development' } });
    try {
      expect(proxy.upstream).toEqual({ kind: 'simulator', reason: 'no_api_key' });
      expect(await readyz(proxy.port)).toEqual({ status: 200, body: { status: 'ready', upstream: 'simulator', simulator: 'no_api_key', sessions: 0 } });
    } finally {
      await proxy.shutdown(0);
    }
  });

  it('reports a chosen simulator in production, and a real upstream as openai', async () => {
    const chosen = await startProxy(
      // admin.port 0: two proxies of one test on the default 8081 shared it through SO_REUSEPORT until
      // 2026-12-07; a second listener there is refused now (test/ops/redteam-20-port-shared.test.ts).
      parseConfig({ server: { host: '127.0.0.1', port: 0, workers: 1 }, admin: { port: 0 }, upstream: { provider: 'simulator' }, metering: { ledger: { path: ':memory:' } }, tenants: TENANTS }, 'x', {}),
      { logger: silent, env: { NODE_ENV: 'production' } },
    );
    const upstream = await startSimulator({ apiKey: 'sk-upstream-test' });
    const real = await startProxy(
      parseConfig({ server: { host: '127.0.0.1', port: 0, workers: 1 }, admin: { port: 0 }, upstream: { url: upstream.url, apiKey: 'sk-upstream-test' }, metering: { ledger: { path: ':memory:' } }, tenants: TENANTS }, 'x', {}),
      { logger: silent, env: { NODE_ENV: 'production' } },
    );
    try {
      expect((await readyz(chosen.port)).body).toMatchObject({ status: 'ready', upstream: 'simulator', simulator: 'chosen' });
      expect((await readyz(real.port)).body).toEqual({ status: 'ready', upstream: 'openai', sessions: 0 });
      expect(real.simulator).toBeNull();
    } finally {
      await chosen.shutdown(0);
      await real.shutdown(0);
      await upstream.close();
    }
  });
});

describe('draining on shutdown', () => {
  it('keeps the listener open: /readyz answers 503 and upgrades get 503 until the last session ends, then it closes', async () => {
    const tp = await startTestProxy();
    const c = await tp.client();
    await c.next('session.created');
    const stopping = tp.proxy.shutdown(30_000);
    let stopped = false;
    void stopping.then(() => (stopped = true));

    const during = await readyz(tp.port);
    expect(during.status).toBe(503);
    expect(during.body).toMatchObject({ status: 'not_ready', reason: 'draining', upstream: 'simulator', sessions: 1 });

    const late = await new Promise<{ status: number; retryAfter: string | undefined; body: string }>((resolve, reject) => {
      const req = request(`${tp.httpUrl}/v1/realtime?model=gpt-realtime`, {
        headers: { authorization: `Bearer ${tp.key()}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body }));
      });
      req.on('upgrade', () => reject(new Error('upgraded while draining')));
      req.on('error', reject);
      req.end();
    });
    expect(late.status).toBe(503);
    // Retry at once, elsewhere (until 2026-12-07 the refusal carried no Retry-After).
    expect(late.retryAfter).toBe('1');
    expect(JSON.parse(late.body)).toMatchObject({ error: { code: 'server_shutting_down' } });
    const lateWs = new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key()}` } });
    expect(await lateWs.refused).toBe(503);

    // The draining session still completes a turn.
    c.say('say: still here');
    const done = await c.next('response.done', 10_000);
    expect((done['response'] as { status: string }).status).toBe('completed');
    expect(stopped).toBe(false);

    c.close();
    await stopping;
    // Once drained, the listener is closed (a new connection, not a kept-alive one, is refused).
    const after = await new Promise<string>((resolve) => {
      const req = request(`${tp.httpUrl}/readyz`, { agent: false });
      req.on('response', (res) => resolve(`http ${res.statusCode}`));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.end();
    });
    expect(after).toBe('ECONNREFUSED');
  }, 30_000);
});

describe('policy hot reload in a Kubernetes ConfigMap volume', () => {
  it('follows the ..data symlink swap', async () => {
    // The kubelet's layout: ..<timestamp>/ holds the files, ..data links to it, and the visible
    // names link through ..data; an update writes a new timestamp dir and renames ..data_tmp over ..data.
    const dir = tempDir('rp-configmap-');
    mkdirSync(join(dir, '..2026_01_01_v1'));
    writeFileSync(join(dir, '..2026_01_01_v1', 'default.yaml'), 'version: v1\n');
    symlinkSync('..2026_01_01_v1', join(dir, '..data'));
    symlinkSync('..data/default.yaml', join(dir, 'default.yaml'));
    const registry = await PolicyRegistry.load({ dir, dirRequired: true, defaultName: 'default', watch: true, debounceMs: 20, log: silent });
    try {
      expect(registry.resolve(null).current.version).toBe('v1');
      const reloaded = new Promise<RegistryEvent>((resolve) => registry.onChange((e) => e.kind === 'reloaded' && e.version === 'v2' && resolve(e)));
      mkdirSync(join(dir, '..2026_01_02_v2'));
      writeFileSync(join(dir, '..2026_01_02_v2', 'default.yaml'), 'version: v2\n');
      symlinkSync('..2026_01_02_v2', join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      rmSync(join(dir, '..2026_01_01_v1'), { recursive: true });
      const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no reload within 5 s')), 5000).unref());
      await Promise.race([reloaded, timeout]);
      expect(registry.resolve(null).current.version).toBe('v2');
    } finally {
      registry.close();
    }
  });
});
