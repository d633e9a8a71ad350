import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/client.js';
import { startTelemetryProxy, type TelemetryProxy } from './support/proxy.js';

/**
 * Adversarial review of the metric labels (2026-12-06), through the real proxy (loopback, the
 * simulator upstream, the admin /metrics listener): labels whose values a client with a valid key
 * chooses must be bounded per tenant, so that one tenant cannot fold every other tenant's series
 * into `other` (the tool-name label was fixed that way on 2026-12-05; see README, "Bounds on what
 * clients and the upstream name").
 */

let p: TelemetryProxy;
beforeAll(async () => {
  p = await startTelemetryProxy({ tenants: { acme: {}, victim: {} }, simulator: { timing: { firstAudioDelayMs: 1, deltaIntervalMs: 0 } } });
});
afterAll(async () => {
  await p?.stop();
});

async function metrics(): Promise<string> {
  return (await fetch(`${p.adminUrl}/metrics`)).text();
}

/** Distinct values of `label` on the series of `metric` for one tenant. */
function values(text: string, metric: string, label: string, tenant: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`) || !line.includes(`rtproxy_tenant_id="${tenant}"`)) continue;
    const m = new RegExp(`${label}="([^"]*)"`).exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

/** One session on `model`: one text turn answered, then closed; resolves once its session-end line is in. */
async function oneTurn(tenant: string, model: string): Promise<void> {
  const before = p.lines.filter((l) => l.includes('"session end"')).length;
  const c: TestClient = await p.client(tenant, `model=${encodeURIComponent(model)}`);
  const created = await c.next('session.created');
  expect((created['session'] as { model?: string }).model).toBe(model);
  c.say('say:hello');
  const done = await c.next('response.done');
  expect((done['response'] as { status?: string }).status).toBe('completed');
  c.close();
  await c.closed;
  for (let i = 0; i < 500 && p.lines.filter((l) => l.includes('"session end"')).length <= before; i++) await new Promise((r) => setTimeout(r, 10));
}

describe('the model label is bounded per tenant (a client picks the model in the URL)', () => {
  it('one tenant opening sessions on 50 dated snapshot names does not turn another tenant\'s gpt-realtime into other', async () => {
    // Every `<priced model>-NNNN-NN-NN` is priced (pricing.ts strips a dated suffix) and admitted:
    // a client with a valid key names as many distinct models as it opens sessions.
    for (let i = 0; i < 50; i++) await oneTurn('acme', `gpt-realtime-2025-01-${String(i).padStart(2, '0')}`);
    await oneTurn('victim', 'gpt-realtime');
    const text = await metrics();
    // The flood is the attacker's own business (its own series) ...
    expect(values(text, 'gen_ai_client_operation_duration_count', 'gen_ai_request_model', 'acme').size).toBeGreaterThan(1);
    // ... but the other tenant's latency, usage and cost must stay under its real model.
    expect(values(text, 'gen_ai_client_operation_duration_count', 'gen_ai_request_model', 'victim')).toEqual(new Set(['gpt-realtime']));
    expect(values(text, 'rtproxy_turns_total', 'gen_ai_request_model', 'victim')).toEqual(new Set(['gpt-realtime']));
    expect(values(text, 'rtproxy_usage_cost_total', 'gen_ai_request_model', 'victim')).toEqual(new Set(['gpt-realtime']));
  }, 60_000);
});

describe('a model no session ran is no label value', () => {
  it('with a fallback price, sessions the upstream refused (invalid_model) leave no series under the model the URL named', async () => {
    const q = await startTelemetryProxy({ tenants: { acme: {} }, config: { metering: { ledger: { path: ':memory:' }, fallbackPrice: 'gpt-realtime' } } });
    try {
      for (let i = 0; i < 3; i++) {
        // Any text the client likes (up to the label's 64 characters): the upstream refuses the model at connect.
        const c = await q.client('acme', `model=${encodeURIComponent(`attacker text ${i} <a href=x>`)}`);
        // Sent before the upstream answered: a user turn opens in the proxy, and closes with the session.
        c.say('say:hello');
        await c.closed;
        expect(c.ofType('error').map((e) => (e['error'] as { code?: string }).code)).toContain('invalid_model');
      }
      for (let i = 0; i < 500 && q.lines.filter((l) => l.includes('"session end"')).length < 3; i++) await new Promise((r) => setTimeout(r, 10));
      expect(q.lines.filter((l) => l.includes('"session end"')).length).toBe(3);
      const text = await (await fetch(`${q.adminUrl}/metrics`)).text();
      const series = text.split('\n').filter((l) => l.includes('attacker text'));
      expect(series).toEqual([]);
    } finally {
      await q.stop();
    }
  });
});

describe('verdict labels name the filter that decided', () => {
  it('a client frame that is not valid JSON is not counted as a verdict of the telemetry filter (a passive, fail-open observer)', async () => {
    const c = await p.client('acme');
    await c.next('session.created');
    // A known type (sniffed), a torn body: the chain answers invalid_json when the first filter reads it.
    c.send('{"type":"conversation.item.create","item":{');
    const err = await c.next('error');
    expect((err['error'] as { code?: string }).code).toBe('invalid_json');
    c.say('say:after');
    await c.next('response.done');
    c.close();
    await c.closed;
    const text = await metrics();
    const verdicts = text.split('\n').filter((l) => l.startsWith('rtproxy_verdicts_total{') && l.includes('rtproxy_verdict_code="invalid_json"'));
    // The rejection is counted ...
    expect(text.split('\n').some((l) => l.startsWith('rtproxy_errors_total{') && l.includes('error_type="invalid_json"') && l.includes('rtproxy_error_origin="proxy"'))).toBe(true);
    // ... but not as a decision of the telemetry filter, which never refuses anything.
    expect(verdicts.filter((l) => l.includes('rtproxy_verdict_filter="telemetry"'))).toEqual([]);
    const rejectEvents = p.spans
      .getFinishedSpans()
      .flatMap((s) => s.events)
      .filter((e) => e.name === 'rtproxy.verdict' && e.attributes?.['rtproxy.verdict.code'] === 'invalid_json');
    expect(rejectEvents.map((e) => e.attributes?.['rtproxy.verdict.filter']).filter((f) => f === 'telemetry')).toEqual([]);
  });
});
