import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/*
 * An operator turns the admin API off the way the config table says, `admin.port: null` ("no admin
 * listener"), and keeps the metrics defaults. /metrics is a route of the admin listener unless
 * `telemetry.metrics.prometheus.port` gives it a listener of its own, so it is now served nowhere:
 * Prometheus gets connection refused and every dashboard is empty. Until 2026-12-07 nothing said so;
 * the start-up line even read `"prometheus":"admin listener /metrics"`. Now `run` warns, naming the
 * setting that serves it.
 */

const proxies: TestProxy[] = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

const NOWHERE = /metrics/;

describe('/metrics with admin.port: null', () => {
  it('run warns that /metrics is served nowhere, naming telemetry.metrics.prometheus.port', async () => {
    const tp = await startTestProxy({ config: { admin: { port: null }, policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } });
    proxies.push(tp);
    expect(tp.proxy.adminPort).toBeNull();
    const warned = tp.logs.filter((l) => l.level === 40 && typeof l.msg === 'string' && NOWHERE.test(l.msg));
    expect(warned.map((l) => l.msg)).toEqual([expect.stringContaining('telemetry.metrics.prometheus.port')]);
    // And the start-up line does not claim the admin listener serves it.
    const ready = tp.logs.find((l) => l.msg === 'telemetry ready');
    expect(ready?.['prometheus']).not.toBe('admin listener /metrics');
  });

  it('says nothing when a listener of its own serves it, or when the admin listener does', async () => {
    const own = await startTestProxy({ config: { admin: { port: null }, telemetry: { metrics: { prometheus: { port: 0, host: '127.0.0.1' } } }, policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } });
    proxies.push(own);
    const admin = await startTestProxy({ config: { policies: { watch: false }, metering: { ledger: { path: ':memory:' } } } });
    proxies.push(admin);
    for (const tp of [own, admin]) expect(tp.logs.filter((l) => l.level === 40 && typeof l.msg === 'string' && /served nowhere/.test(l.msg))).toEqual([]);
  });
});
