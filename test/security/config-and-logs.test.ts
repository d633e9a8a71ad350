import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { redactUrl } from '../../src/logging.js';
import { resolveLimits } from '../../src/metering/limits.js';
import { scriptedUpstream, sessionCreated } from '../resilience/support/faulty-upstream.js';
import { startTestProxy } from '../support/harness.js';
import { rawRequest, sleep, upgradeRequest } from './support.js';

/** Config maps that cannot address Object.prototype, and logs that carry no credentials and cannot be flooded. */

const key = { keys: [{ key: 'rpk_config_test_key_0123456789' }] };

describe('prototype-safe config', () => {
  it('a tenant id __proto__ (YAML) is refused instead of vanishing', () => {
    const doc = parseYaml('tenants:\n  __proto__:\n    keys: [{ key: rpk_proto_test_key_0123456789 }]\n');
    expect(() => parseConfig(doc, '(yaml)', {})).toThrow(/tenants\.__proto__.*reserved/);
    const json = JSON.parse('{"tenants":{"constructor":{"keys":[{"key":"rpk_proto_test_key_0123456789"}]}}}') as unknown;
    expect(() => parseConfig(json, '(json)', {})).toThrow(/tenants\.constructor.*reserved/);
  });

  it('plan: constructor is refused at boot and never resolves to a plan with no limits', () => {
    expect(() => parseConfig({ tenants: { acme: { ...key, plan: 'constructor' } } }, '(test)', {})).toThrow(/tenants\.acme\.plan.*reserved/);
    expect(() => resolveLimits({ id: 'acme', plan: 'constructor', limits: null }, { plans: {}, defaultPlan: null })).toThrow(/not defined/);
    expect(() => resolveLimits({ id: 'acme', plan: 'toString', limits: null }, { plans: {}, defaultPlan: null })).toThrow(/not defined/);
  });

  it('reserved names as price, alias or plan keys are refused', () => {
    const doc = parseYaml('metering:\n  plans:\n    __proto__: { dailyUsd: "1" }\n  prices:\n    constructor: { extends: gpt-realtime }\n');
    expect(() => parseConfig(doc, '(yaml)', {})).toThrow(/metering\.plans\.__proto__[\s\S]*metering\.prices\.constructor/);
  });
});

describe('logs', () => {
  it('credentials in the upstream URL never reach the log', async () => {
    expect(redactUrl('wss://user:pa55@example.com/v1/realtime?api-key=sekret&model=m')).toBe('wss://redacted:redacted@example.com/v1/realtime?api-key=redacted&model=m');
    expect(redactUrl('not a url with secret')).toBe('[unparseable url]');
    const up = await scriptedUpstream((ws) => ws.send(sessionCreated(1)));
    const url = new URL(up.url);
    url.username = 'svc';
    url.password = 'hunter2-password';
    url.searchParams.set('api-key', 'query-secret-123');
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: url.toString(), apiKey: 'sk-x' } } });
    try {
      const c = await tp.client();
      await c.next('session.created');
      c.close();
      await c.closed;
      expect(tp.logText()).not.toContain('hunter2-password');
      expect(tp.logText()).not.toContain('query-secret-123');
      expect(tp.logs.find((l) => l.msg === 'realtime proxy listening')?.['upstream']).toContain('redacted');
    } finally {
      await tp.stop();
      await up.close();
    }
  });

  it('bad keys log one line per source per interval with a count, and a metric counts refusals by reason', async () => {
    const tp = await startTestProxy({ config: { logging: { level: 'info', refusalIntervalSec: 1 } } });
    try {
      for (let i = 0; i < 200; i++) {
        await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', [`Authorization: Bearer rpk_flood_${i}_0123456789abcdef`]));
      }
      await rawRequest(tp.port, upgradeRequest('/v1/realtime?model=gpt-realtime', []));
      const refusals = () => tp.logs.filter((l) => l['event'] === 'upgrade_refused');
      const invalid = () => refusals().filter((l) => l['reason'] === 'invalid_api_key');
      // Each line stands for itself or, a summary, for `repeated` refusals.
      const counted = () => invalid().reduce((n, l) => n + (typeof l['repeated'] === 'number' ? l['repeated'] : 1), 0);
      // The summary line comes at the end of the interval (bounded wait, not a fixed sleep).
      for (let i = 0; i < 600 && counted() < 200; i++) await sleep(10);
      expect(counted()).toBe(200);
      // One line at once per interval the flood spanned (one on a quiet machine; a loaded CI machine
      // can take longer than an interval for 200 requests), the rest counted in that interval's summary.
      const firsts = invalid().filter((l) => l['repeated'] === undefined);
      const summaries = invalid().filter((l) => l['repeated'] !== undefined);
      expect(firsts.length).toBeGreaterThanOrEqual(1);
      expect(firsts.length).toBeLessThanOrEqual(5);
      expect(summaries.length).toBeLessThanOrEqual(firsts.length);
      for (const summary of summaries) expect(summary['source']).toMatch(/127\.0\.0\.1|::1/);
      expect(refusals().filter((l) => l['reason'] === 'missing_api_key')).toHaveLength(1);
      expect(tp.logText()).not.toContain('rpk_flood_');
      const metrics = await (await fetch(`${tp.adminUrl}/metrics`)).text();
      expect(metrics).toMatch(/rtproxy_upgrades_refused_total\{[^}]*rtproxy_refusal_reason="invalid_api_key"[^}]*\} 200/);
      expect(metrics).toMatch(/rtproxy_upgrades_refused_total\{[^}]*rtproxy_refusal_reason="missing_api_key"[^}]*\} 1/);
    } finally {
      await tp.stop();
    }
  });
});
