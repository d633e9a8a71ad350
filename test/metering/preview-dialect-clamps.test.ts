import type { WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { scriptedUpstream } from '../resilience/support/faulty-upstream.js';
import { meteredProxy, until } from './support.js';

/*
 * On the Azure preview protocol (`upstream.azure.apiVersion`) what the proxy writes itself (its
 * session clamp of a tenant's `maxResponseOutputTokens`, a response's limit it sets) is in the
 * preview's dialect: beta members, no GA `session.type`. Until 2026-12-07 both were GA-shaped
 * (`{type: 'realtime', max_output_tokens}`): an upstream that refuses members it does not know
 * refused the proxy's own session.update, and the session ended `governance_failed`.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Json = Record<string, unknown>;

/** Members a preview (beta) session and response.create take (docs: realtime-protocol.md §4); anything else is refused. */
const BETA_SESSION = new Set(['modalities', 'voice', 'instructions', 'input_audio_format', 'output_audio_format', 'input_audio_transcription', 'input_audio_noise_reduction', 'turn_detection', 'tools', 'tool_choice', 'temperature', 'max_response_output_tokens', 'speed', 'tracing']);
const BETA_RESPONSE = new Set(['modalities', 'voice', 'output_audio_format', 'temperature', 'max_response_output_tokens', 'instructions', 'tools', 'tool_choice', 'conversation', 'metadata', 'input']);

/**
 * A strict preview upstream: refuses unknown members with `unknown_parameter`, as the API does.
 * Records every client event. Its session.updated answers wait until `creates` creates came, so the
 * proxy sets those creates' limits not knowing the clamp applied (deterministically).
 */
async function strictPreviewUpstream(received: Json[], creates: number) {
  return scriptedUpstream((ws: WebSocket) => {
    const heldUpdates: Json[] = [];
    let createsSeen = 0;
    let session: Json = { object: 'realtime.session', id: 'sess_pv', model: 'gpt-realtime', modalities: ['text'], max_response_output_tokens: 'inf' };
    let n = 0;
    const send = (ev: Json) => ws.send(JSON.stringify({ ...ev, event_id: `e${++n}` }));
    const refuse = (ev: Json, param: string) =>
      send({ type: 'error', error: { type: 'invalid_request_error', code: 'unknown_parameter', message: `Unknown parameter: '${param}'.`, param, event_id: ev['event_id'] ?? null } });
    send({ type: 'session.created', session });
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as Json;
      received.push(ev);
      if (ev['type'] === 'session.update') {
        const asked = (ev['session'] ?? {}) as Json;
        const unknown = Object.keys(asked).find((k) => !BETA_SESSION.has(k));
        if (unknown !== undefined) return refuse(ev, `session.${unknown}`);
        session = { ...session, ...asked };
        const answer = { type: 'session.updated', session };
        if (createsSeen < creates) heldUpdates.push(answer);
        else send(answer);
      } else if (ev['type'] === 'response.create') {
        if (++createsSeen === creates) for (const answer of heldUpdates.splice(0)) send(answer);
        const unknown = Object.keys((ev['response'] ?? {}) as Json).find((k) => !BETA_RESPONSE.has(k));
        if (unknown !== undefined) return refuse(ev, `response.${unknown}`);
        // No response runs (what was asked is the point): answered by an error naming the create.
        send({ type: 'error', error: { type: 'invalid_request_error', code: 'test_no_response', message: 'no response', param: null, event_id: ev['event_id'] } });
      }
    });
  });
}

describe('Azure preview protocol: the proxy writes its clamps in the preview dialect', () => {
  it("the session clamp and a response's limit go upstream as beta members; a strict preview upstream refuses none, and the session runs", async () => {
    const received: Json[] = [];
    const up = await strictPreviewUpstream(received, 3);
    cleanups.push(() => up.close());
    const endpoint = new URL(up.url).origin.replace(/^ws/, 'http');
    const tp = await meteredProxy(cleanups, {
      tenants: { acme: { limits: { maxResponseOutputTokens: 100 } } },
      // The default: a refused clamp ends the session.
      config: { upstream: { provider: 'azure', apiKey: 'azure-key', onInjectedEventError: 'end_session', azure: { endpoint, deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } } },
    });
    const c = await tp.client();
    await c.next('session.created');
    // The proxy's own clamp is the session's first event upstream: exactly this frame (the relay gives it an event_id).
    await until(() => received.length > 0, 5000, 'the clamp upstream');
    const update = received[0]!;
    expect(update).toEqual({ type: 'session.update', ...(update['event_id'] === undefined ? {} : { event_id: update['event_id'] }), session: { max_response_output_tokens: 100 } });
    // Asks nothing (the proxy sets the limit), asks less than the limit (kept), asks more (clamped).
    c.send({ type: 'response.create', event_id: 'c1', response: {} });
    c.send({ type: 'response.create', event_id: 'c2', response: { max_response_output_tokens: 50 } });
    c.send({ type: 'response.create', event_id: 'c3', response: { max_response_output_tokens: 4096 } });
    await until(() => received.filter((e) => e['type'] === 'response.create').length === 3, 5000, 'three creates upstream');
    await c.waitFor((e) => e.type === 'error' && (e['error'] as Json)['event_id'] === 'c3', 5000, 'the last create answered');
    // (Creates leave with event ids of the relay's own.)
    expect(received.slice(1).map((e) => [e['type'], e['response']])).toEqual([
      // The session's clamp not yet reported applied: the proxy sets the limit itself.
      ['response.create', { max_response_output_tokens: 100 }],
      ['response.create', { max_response_output_tokens: 50 }],
      ['response.create', { max_response_output_tokens: 100 }],
    ]);
    // Nothing the proxy wrote was refused; the client saw only its own creates answered and the one clamp notice.
    // Once the session reports the clamp (the preview's member, relayed to the client after the proxy read it),
    // a create asking nothing goes as it is.
    await c.waitFor((e) => e.type === 'session.updated' && (e['session'] as Json)['max_response_output_tokens'] === 100, 5000, 'the clamp reported');
    c.send({ type: 'response.create', event_id: 'c4', response: {} });
    await c.waitFor((e) => e.type === 'error' && (e['error'] as Json)['event_id'] === 'c4', 5000, 'the fourth create answered');
    expect(received.filter((e) => e['type'] === 'response.create').map((e) => e['response'])[3]).toEqual({});
    // The upstream reports the limit lifted ("inf", its default): the proxy clamps the session again, the preview's way.
    up.connections[0]!.send(JSON.stringify({ type: 'session.updated', event_id: 'e_lifted', session: { object: 'realtime.session', id: 'sess_pv', model: 'gpt-realtime', modalities: ['text'], max_response_output_tokens: 'inf' } }));
    await until(() => received.filter((e) => e['type'] === 'session.update').length === 2, 5000, 'the clamp sent again');
    expect(received.filter((e) => e['type'] === 'session.update').map((e) => e['session'])).toEqual([{ max_response_output_tokens: 100 }, { max_response_output_tokens: 100 }]);
    const errors = c.ofType('error').map((e) => `${String((e['error'] as Json)['code'])} ${String((e['error'] as Json)['param'] ?? '')}`);
    expect(errors).toEqual(['test_no_response ', 'test_no_response ', 'test_no_response ', 'test_no_response ']);
    // The clamp of a forwarded create is a notice, not an error.
    expect(c.ofType('rtproxy.notice').map((e) => `${String((e['notice'] as Json)['code'])} ${String((e['notice'] as Json)['param'])}`)).toEqual(['max_output_tokens_clamped response.max_response_output_tokens']);
    c.close();
  });
});
