import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PROMETHEUS_MAX_CONNECTIONS, PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE } from '../../src/telemetry/prometheus-listener.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * Adversarial review (2026-12-06): DNS rebinding against the separate Prometheus listener
 * (`telemetry.metrics.prometheus.port`). The admin listener, bound to loopback, answers only
 * loopback Host names (421 `misdirected_request` otherwise: src/server/http.ts adminRouteTable),
 * so a web page whose name an attacker re-points to 127.0.0.1 cannot read /metrics (per-tenant
 * cost, tokens, guardrail activity) from the operator's browser. The separate listener served
 * /metrics to any Host: `attacker.example:PORT` got the exposition (single process: the OTel
 * PrometheusExporter's own server; server.workers > 1: the primary's merged /metrics server).
 * It now applies the same rule with the same helper (isLoopbackHost) when bound to a loopback
 * address, and every answer carries `X-Content-Type-Options: nosniff`.
 */

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One GET to 127.0.0.1:port with exactly this Host header. */
function get(port: number, path: string, host: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The port the separate Prometheus listener is bound to (logged when it listens). */
function metricsPort(tp: TestProxy): number {
  const record = tp.logs.find((l) => l.msg === 'prometheus listening');
  expect(record, 'a "prometheus listening" log record with the bound port').toBeDefined();
  const port = record!['port'];
  expect(typeof port).toBe('number');
  expect(port).toBeGreaterThan(0);
  return port as number;
}

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function proxyWith(host: string, workers = 1): Promise<{ tp: TestProxy; port: number }> {
  const tp = await startTestProxy({ config: { server: { workers }, telemetry: { metrics: { prometheus: { port: 0, host } } } } });
  proxies.push(tp);
  return { tp, port: metricsPort(tp) };
}

/** A loopback-bound listener: metrics for loopback Host names only, 421 for any other; nosniff on every answer. */
async function expectLoopbackOnly(port: number): Promise<void> {
  const attacker = await get(port, '/metrics', `attacker.example:${port}`);
  // Before the fix: 200 and the whole exposition.
  expect(attacker.status).toBe(421);
  expect(attacker.headers['x-content-type-options']).toBe('nosniff');
  expect(attacker.headers['content-type']).toBe('application/json');
  expect(JSON.parse(attacker.body)).toEqual({
    error: { code: 'misdirected_request', message: expect.stringContaining('loopback Host names only') as unknown },
  });
  expect(attacker.body).not.toContain('rtproxy_');
  expect(attacker.body).not.toContain('# HELP');
  // Without a port, another path, a name that only starts like a loopback one: the same.
  for (const [path, host] of [
    ['/metrics', 'attacker.example'],
    ['/other', `attacker.example:${port}`],
    ['/metrics', `127.0.0.1.attacker.example:${port}`],
    ['/metrics', `localhost.attacker.example`],
  ] as const) {
    const a = await get(port, path, host);
    expect(a.status, `${host} ${path}`).toBe(421);
    expect(a.body).not.toContain('rtproxy_');
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`]) {
    const ok = await get(port, '/metrics', host);
    expect(ok.status, host).toBe(200);
    expect(ok.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(ok.headers['x-content-type-options']).toBe('nosniff');
    expect(ok.body).toContain('# HELP ');
  }
  const missing = await get(port, '/nothing', `127.0.0.1:${port}`);
  expect(missing.status).toBe(404);
  expect(missing.headers['x-content-type-options']).toBe('nosniff');
}

describe('adversary: DNS rebinding against the separate Prometheus listener', () => {
  it('one process, bound to 127.0.0.1: Host attacker.example:PORT gets 421 misdirected_request, not the metrics', async () => {
    const { port } = await proxyWith('127.0.0.1');
    await expectLoopbackOnly(port);
  });

  it('server.workers = 2, the primary serving the merged metrics on 127.0.0.1: the same rule', { timeout: 60_000 }, async () => {
    const { port } = await proxyWith('127.0.0.1', 2);
    await expectLoopbackOnly(port);
    // The merged exposition (the primary's own series beside the workers').
    expect((await get(port, '/metrics', `127.0.0.1:${port}`)).body).toContain('rtproxy_worker_up{worker="1"}');
  });

  it('bound to 0.0.0.0 (not loopback): any Host is answered (network controls decide), still with nosniff', async () => {
    const { port } = await proxyWith('0.0.0.0');
    const a = await get(port, '/metrics', `attacker.example:${port}`);
    expect(a.status).toBe(200);
    expect(a.headers['x-content-type-options']).toBe('nosniff');
    expect(a.body).toContain('# HELP ');
  });
});

describe('the separate Prometheus listener under a connection flood (2026-12-06)', () => {
  it(`holds at most ${PROMETHEUS_MAX_CONNECTIONS} connections: idle sockets past that are closed at once, and a scrape still gets through once they go`, async () => {
    const { port } = await proxyWith('127.0.0.1');
    const sockets: Socket[] = [];
    const closedEarly: number[] = [];
    for (let i = 0; i < PROMETHEUS_MAX_CONNECTIONS + 8; i++) {
      // From several sources, each within its share (PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE): the total is what is bounded here.
      const s = connect({ port, host: '127.0.0.1', localAddress: `127.0.0.${2 + Math.floor(i / PROMETHEUS_MAX_CONNECTIONS_PER_SOURCE)}` });
      s.on('error', () => undefined);
      s.on('close', () => closedEarly.push(i));
      sockets.push(s);
      await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    }
    for (let i = 0; i < 100 && closedEarly.length < 8; i++) await new Promise((r) => setTimeout(r, 10));
    // Node closes a connection over maxConnections as it is accepted: the last 8 opened.
    expect(closedEarly.sort((a, b) => a - b)).toEqual(Array.from({ length: 8 }, (_, k) => PROMETHEUS_MAX_CONNECTIONS + k));
    for (const s of sockets) s.destroy();
    let answer: Answer | null = null;
    for (let i = 0; i < 100 && answer?.status !== 200; i++) {
      answer = await get(port, '/metrics', `127.0.0.1:${port}`).catch(() => null);
      if (answer?.status !== 200) await new Promise((r) => setTimeout(r, 10));
    }
    expect(answer?.status).toBe(200);
  });
});
