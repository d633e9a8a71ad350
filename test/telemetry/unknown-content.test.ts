import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Event types the guardrails' content-path table does not know (2026-12-06), through the real proxy
 * (loopback, the simulator upstream, the admin /metrics listener, pino lines captured): every one
 * is counted by tenant, direction and policy action; each session logs its first 16 types, then one
 * line saying the rest are only counted.
 */

let p: TelemetryProxy;
beforeAll(async () => {
  p = await startTelemetryProxy({ tenants: { acme: {}, victim: {} }, simulator: { timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } } });
});
afterAll(async () => {
  await p?.stop();
});

const parsed = () => p.lines.map((l) => JSON.parse(l) as Record<string, unknown>);

describe('unknown content events: counted, and logged per session within a bound', () => {
  it('20 made-up types (each twice) from one tenant: 40 counted, 16 lines and one limit line for its session; another tenant counted apart', async () => {
    const a = await p.client('acme');
    await a.next('session.created');
    for (let round = 0; round < 2; round++) for (let i = 0; i < 20; i++) a.send({ type: `x.counted_${i}` });
    a.say('say:marker');
    await a.next('response.done');
    const v = await p.client('victim');
    await v.next('session.created');
    v.send({ type: 'x.counted_0' });
    v.say('say:marker');
    await v.next('response.done');
    const text = await (await fetch(`${p.adminUrl}/metrics`)).text();
    const series = text.split('\n').filter((l) => l.startsWith('rtproxy_guardrail_unknown_content_total{'));
    const value = (tenant: string) => series.filter((l) => l.includes(`rtproxy_tenant_id="${tenant}"`) && l.includes('direction="client"') && l.includes('rtproxy_guardrail_action="pass"')).map((l) => Number(l.split(' ').pop()));
    expect(value('acme')).toEqual([40]);
    expect(value('victim')).toEqual([1]);
    const acmeSession = parsed().filter((l) => l['msg'] === 'session start' && l['tenant'] === 'acme').pop()!['session'];
    const lines = parsed().filter((l) => l['session'] === acmeSession && typeof l['msg'] === 'string' && (l['msg'] as string).includes('content-path table'));
    expect(lines.map((l) => l['eventType'] ?? `limit ${String(l['limit'])}`)).toEqual([...Array.from({ length: 16 }, (_, i) => `x.counted_${i}`), 'limit 16']);
    expect(parsed().filter((l) => l['tenant'] === 'victim' && l['eventType'] === 'x.counted_0')).toHaveLength(1);
    a.close();
    v.close();
    await Promise.all([a.closed, v.closed]);
  });
});
