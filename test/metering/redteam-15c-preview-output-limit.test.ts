import type { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptedUpstream } from '../resilience/support/faulty-upstream.js';
import { meteredProxy, until } from './support.js';

/*
 * Red team, fifteenth session (protocol variants): the tenant's per-response output limit
 * (`limits.maxResponseOutputTokens`) on the Azure preview protocol (`upstream.azure.apiVersion`).
 * The preview reads the beta member `max_response_output_tokens`; the proxy clamps only GA's
 * `max_output_tokens`. A client asks `max_response_output_tokens: 4096` on its session and on a
 * response: a preview upstream that takes the member (and leaves GA's `max_output_tokens` aside)
 * answers with up to 4096 tokens where the tenant allows 100; the reservation held 100.
 * Guarantee broken: the per-response output limit holds whatever the protocol dialled.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Json = Record<string, unknown>;

describe('Azure preview protocol: the per-response output limit', () => {
  it('no response.create reaches the upstream asking more output than the tenant limit in the member the preview reads', async () => {
    const received: Json[] = [];
    const up = await scriptedUpstream((ws: WebSocket) => {
      ws.send(JSON.stringify({ type: 'session.created', event_id: 'e1', session: { object: 'realtime.session', id: 'sess_pv', model: 'gpt-realtime', modalities: ['text'], max_response_output_tokens: 'inf' } }));
      // A preview upstream that takes the beta members and leaves the others aside.
      let session: Json = { object: 'realtime.session', id: 'sess_pv', model: 'gpt-realtime', modalities: ['text'], max_response_output_tokens: 'inf' };
      ws.on('message', (data) => {
        const ev = JSON.parse(String(data)) as Json;
        received.push(ev);
        // No response runs here (what it was asked is the point): the create is answered by an error.
        if (ev['type'] === 'response.create') {
          ws.send(JSON.stringify({ type: 'error', event_id: `e${received.length + 1}`, error: { type: 'invalid_request_error', code: 'test_no_response', message: 'no response', param: null, event_id: ev['event_id'] } }));
        }
        if (ev['type'] !== 'session.update') return;
        const { type: _type, max_output_tokens: _ga, ...beta } = ev['session'] as Json;
        session = { ...session, ...beta };
        ws.send(JSON.stringify({ type: 'session.updated', event_id: `e${received.length + 1}`, session }));
      });
    });
    cleanups.push(() => up.close());
    const endpoint = new URL(up.url).origin.replace(/^ws/, 'http');
    const tp = await meteredProxy(cleanups, {
      tenants: { acme: { limits: { maxResponseOutputTokens: 100 } } },
      config: { upstream: { provider: 'azure', apiKey: 'azure-key', onInjectedEventError: 'per_response', azure: { endpoint, deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } } },
    });
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { max_response_output_tokens: 'inf' } });
    c.send({ type: 'response.create', response: { max_response_output_tokens: 4096 } });
    await until(() => received.some((e) => e['type'] === 'response.create'), 5000, 'the create upstream');
    // The proxy's own clamp at session start first, then the client's update and create.
    const sessionAsked = received.filter((e) => e['type'] === 'session.update').map((e) => (e['session'] as Json)['max_response_output_tokens']);
    const responseAsked = received.filter((e) => e['type'] === 'response.create').map((e) => (e['response'] as Json)['max_response_output_tokens']);
    // Before the fix: [undefined, 'inf'] and [4096]. The proxy's own clamp is in the preview's member
    // since 2026-12-07 (test/metering/preview-dialect-clamps.test.ts); GA-shaped, it was undefined here.
    expect(sessionAsked).toEqual([100, 100]);
    expect(responseAsked).toEqual([100]);
    // The client is told, as for GA's member.
    await c.waitFor((e) => e.type === 'error' && (e['error'] as Json)['code'] === 'test_no_response', 5000, 'the create answered');
    const notices = c.ofType('rtproxy.notice').map((e) => [(e['notice'] as Json)['code'], (e['notice'] as Json)['param']]);
    expect(notices).toEqual([
      ['max_output_tokens_clamped', 'session.max_response_output_tokens'],
      ['max_output_tokens_clamped', 'response.max_response_output_tokens'],
    ]);
    c.close();
  });
});
