import { afterEach, describe, expect, it } from 'vitest';
import { parseOutputLimit } from '../../src/protocol/limits.js';
import { policyDir } from '../policies/support.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { barrier, errorCode, errorOf, isInjectedClamp, noticeCode, noticeOf, recordingUpstream, type RecordedConnection, type RecordingUpstream, type Script } from './edges-support.js';

/**
 * Finding 9 of issue 10: events the proxy injects are checked (clamp within the model maximum),
 * an upstream refusal of one is a governance failure, and every spelling of max_output_tokens is
 * read (and forwarded) one way.
 */

const proxies: TestProxy[] = [];
const upstreams: RecordingUpstream[] = [];
afterEach(async () => {
  // The upstream first: a session whose response it never ended then ends at once, where stopping the
  // proxy first waits out the linger bound for that response.done (5 s a test).
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function setup(options: { limit?: number | null; script?: Script; upstream?: Record<string, unknown>; policy?: string } = {}): Promise<{ tp: TestProxy; c: TestClient; up: RecordedConnection }> {
  const upstream = await recordingUpstream(options.script);
  upstreams.push(upstream);
  const limits = options.limit === null ? {} : { limits: { maxResponseOutputTokens: options.limit ?? 8000 } };
  const tp = await startTestProxy({
    tenants: { acme: { ...limits, ...(options.policy ? { policy: 'edge' } : {}) } },
    config: {
      upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream', ...options.upstream },
      ...(options.policy ? { policies: { dir: policyDir({ 'edge.yaml': options.policy }), watch: false } } : {}),
    },
  });
  proxies.push(tp);
  const c = await tp.client();
  const up = await upstream.connection();
  await c.next('session.created');
  return { tp, c, up };
}

const sent = (up: RecordedConnection, type: string) => up.events().filter((e) => e?.type === type) as { type: string; event_id?: string; session?: Record<string, unknown>; response?: Record<string, unknown> }[];

describe('the clamp stays within the model maximum (issue 10, finding 9)', () => {
  it('a tenant limit of 8000 on a 4,096-token model: the injected session.update and every response.create carry 4096', async () => {
    const { c, up } = await setup({ limit: 8000 });
    await up.waitFor((r) => r.includes('"session.update"'));
    expect(sent(up, 'session.update')[0]!.session).toEqual({ type: 'realtime', max_output_tokens: 4096 });
    c.send({ type: 'response.create', event_id: 'evt_inf', response: { max_output_tokens: 'inf' } });
    await barrier(c, up, 'b1');
    expect(sent(up, 'response.create').map((e) => e.response?.['max_output_tokens'])).toEqual([4096]);
    const notice = noticeOf(await c.waitFor((e) => noticeCode(e) === 'max_output_tokens_clamped'));
    expect(notice.details).toEqual({ requested: 'inf', limit: 4096 });
  });

  it('warns at boot when a tenant limit is above a priced model maximum', async () => {
    const { tp } = await setup({ limit: 8000 });
    const warning = tp.logs.find((l) => typeof l.msg === 'string' && l.msg.includes('above these models'));
    expect(warning?.['tenant']).toBe('acme');
    expect(warning?.['models']).toContain('gpt-realtime (4096)');
  });
});

describe('max_output_tokens is read one way', () => {
  it.each([
    ['"4096"', 1024],
    ['"INF"', 1024],
    ['"Inf"', 1024],
    ['null', 1024],
    ['1e999', 1024],
    ['100', 100],
    ['" 200 "', 200],
  ])('response.create with %s under a 1024 limit → upstream gets %d', async (raw, expected) => {
    const { c, up } = await setup({ limit: 1024 });
    c.send(`{"type":"response.create","event_id":"evt_x","response":{"max_output_tokens":${raw}}}`);
    await barrier(c, up, 'b2');
    expect(sent(up, 'response.create').map((e) => e.response?.['max_output_tokens'])).toEqual([expected]);
  });

  it.each([['-5'], ['0'], ['2.5'], ['"-5"'], ['"abc"'], ['true'], ['[]'], ['{}']])('max_output_tokens %s is refused with invalid_value (response.create and session.update)', async (raw) => {
    const { c, up } = await setup({ limit: 1024 });
    await up.waitFor((r) => r.includes('"session.update"'));
    const updatesBefore = sent(up, 'session.update').length;
    c.send(`{"type":"response.create","event_id":"evt_bad","response":{"max_output_tokens":${raw}}}`);
    c.send(`{"type":"session.update","event_id":"evt_bad2","session":{"type":"realtime","max_output_tokens":${raw}}}`);
    await barrier(c, up, 'b3');
    expect(sent(up, 'response.create')).toEqual([]);
    expect(sent(up, 'session.update')).toHaveLength(updatesBefore);
    await c.nth('error', 2);
    const errors = c.ofType('error').map(errorOf);
    expect(errors.map((e) => [e.code, e.event_id, e.param])).toEqual([
      ['invalid_value', 'evt_bad', 'response.max_output_tokens'],
      ['invalid_value', 'evt_bad2', 'session.max_output_tokens'],
    ]);
    expect(errors[0]!.message).toContain('max_output_tokens must be a whole number');
  });

  it('without a tenant limit, spellings are still canonicalised ("4096" → 4096, "INF" → "inf")', async () => {
    const { c, up } = await setup({ limit: null });
    c.send('{"type":"response.create","response":{"max_output_tokens":"4096"}}');
    c.send('{"type":"session.update","session":{"type":"realtime","max_output_tokens":"INF"}}');
    await barrier(c, up, 'b4');
    expect(sent(up, 'response.create').map((e) => e.response?.['max_output_tokens'])).toEqual([4096]);
    expect(sent(up, 'session.update').map((e) => e.session?.['max_output_tokens'])).toEqual(['inf']);
  });

  it('parseOutputLimit', () => {
    expect(parseOutputLimit(undefined)).toEqual({ kind: 'absent' });
    expect(parseOutputLimit('inf')).toEqual({ kind: 'limit', value: 'inf', canonical: true });
    expect(parseOutputLimit(4096)).toEqual({ kind: 'limit', value: 4096, canonical: true });
    expect(parseOutputLimit('4096')).toEqual({ kind: 'limit', value: 4096, canonical: false });
    expect(parseOutputLimit(Number.POSITIVE_INFINITY)).toEqual({ kind: 'limit', value: 'inf', canonical: false });
    expect(parseOutputLimit(2 ** 60)).toEqual({ kind: 'limit', value: 2 ** 60, canonical: false });
    expect(parseOutputLimit(-5).kind).toBe('invalid');
    expect(parseOutputLimit('0').kind).toBe('invalid');
    expect(parseOutputLimit('1e3').kind).toBe('invalid');
  });
});

describe('an upstream error about an injected event is a governance failure', () => {
  /** Refuses every session.update the proxy injected (the metering clamp; these clients send none). */
  const refuseInjected: Script = (event, send) => {
    if (isInjectedClamp(event)) {
      send({ type: 'error', event_id: 'event_up_1', error: { type: 'invalid_request_error', code: 'integer_above_max_value', message: 'Invalid max_output_tokens', param: 'session.max_output_tokens', event_id: event.event_id } });
      return 'handled';
    }
    return undefined;
  };

  it('default (end_session): the client gets governance_failed and close 4003; logged and counted', async () => {
    const { tp, c } = await setup({ limit: 1024, script: refuseInjected });
    const closed = await c.closed;
    expect(closed.code).toBe(4003);
    const err = errorOf(c.ofType('error').at(-1)!);
    expect(err.code).toBe('governance_failed');
    expect(err.details).toEqual({ eventType: 'session.update', by: 'metering', upstreamCode: 'integer_above_max_value' });
    // The upstream's own error about the proxy's event never reaches the client.
    expect(c.events.some((e) => errorCode(e) === 'integer_above_max_value')).toBe(false);
    const warn = tp.logs.find((l) => l.msg === 'governance failure: the upstream refused an event the proxy injected');
    expect(warn).toMatchObject({ level: 40, code: 'integer_above_max_value', eventType: 'session.update', by: 'metering' });
    const metrics = await (await fetch(`${tp.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/rtproxy_errors_total\{[^}]*error_type="governance_failed"[^}]*\} 1/);
  });

  it('per_response: logged and counted, the session goes on and client responses stay clamped', async () => {
    const { tp, c, up } = await setup({ limit: 1024, script: refuseInjected, upstream: { onInjectedEventError: 'per_response' } });
    await expect.poll(() => tp.logs.some((l) => l.msg === 'governance failure: the upstream refused an event the proxy injected')).toBe(true);
    c.send({ type: 'response.create', response: {} });
    await barrier(c, up, 'b5');
    expect(sent(up, 'response.create').map((e) => e.response?.['max_output_tokens'])).toEqual([1024]);
    expect(c.events.some((e) => errorCode(e) === 'integer_above_max_value' || errorCode(e) === 'governance_failed')).toBe(false);
  });

  it("a client cannot have its own event's error taken for the proxy's: injected events' ids are not predictable from a notice's (found 2026-12-05)", async () => {
    let guess: string | null = null;
    const { tp, c, up } = await setup({
      limit: 1024,
      script: (event, send) => {
        if (event.type === 'input_audio_buffer.clear' && event.event_id === guess) {
          // The upstream's default becomes the session's again: the proxy clamps it anew.
          send({ type: 'session.updated', event_id: 'event_up_8', session: { type: 'realtime', max_output_tokens: 'inf' } });
          return 'handled';
        }
        if (event.type === 'session.update' && guess !== null) {
          // ...and the error about the client's event arrives after the proxy's injection.
          send({ type: 'error', event_id: 'event_up_9', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'bad', param: null, event_id: guess } });
          return 'handled';
        }
        return undefined;
      },
    });
    await up.waitFor((r) => r.includes('"session.update"'));
    // A notice shows the client the session's scheme and counter; the next id the proxy draws is the one after.
    c.send({ type: 'response.create', event_id: 'evt_bad', response: { max_output_tokens: -5 } });
    const notice = await c.waitFor((e) => errorCode(e) === 'invalid_value');
    const m = /^(event_proxy_[^_]+_)([0-9a-z]+)$/.exec(String(notice['event_id']));
    expect(m).not.toBeNull();
    guess = m![1]! + (parseInt(m![2]!, 36) + 1).toString(36);
    c.send({ type: 'input_audio_buffer.clear', event_id: guess });
    await c.waitFor((e) => errorCode(e) === 'invalid_value' && errorOf(e).event_id === guess);
    const clamps = sent(up, 'session.update');
    expect(clamps).toHaveLength(2);
    expect(clamps.map((e) => e.event_id)).not.toContain(guess);
    await barrier(c, up, 'b7');
    expect(c.events.some((e) => errorCode(e) === 'governance_failed')).toBe(false);
    expect(tp.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('governance failure'))).toBe(false);
  });

  it('a racing response.cancel, or a delete of an item already gone, stays harmless (not a governance failure)', async () => {
    const { tp, c, up } = await setup({
      limit: null,
      policy: 'locks:\n  tools: { functions: [lookup_order] }\n',
      script: (event, send) => {
        if (event.type === 'response.create') {
          send({ type: 'response.created', event_id: 'event_up_3', response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [], usage: null } });
          send({ type: 'response.output_item.added', event_id: 'event_up_4', response_id: 'resp_1', output_index: 0, item: { id: 'item_1', type: 'function_call', name: 'wipe_disk', call_id: 'call_1', arguments: '', status: 'in_progress' } });
        }
        if (event.type === 'response.cancel') {
          send({ type: 'error', event_id: 'event_up_5', error: { type: 'invalid_request_error', code: 'response_cancel_not_active', message: 'no active response', param: null, event_id: event.event_id } });
          send({ type: 'response.done', event_id: 'event_up_6', response: { id: 'resp_1', object: 'realtime.response', status: 'cancelled', output: [], usage: null } });
        }
        if (event.type === 'conversation.item.delete') {
          send({ type: 'error', event_id: 'event_up_7', error: { type: 'invalid_request_error', code: 'item_not_found', message: 'no such item', param: 'item_id', event_id: event.event_id } });
        }
        return undefined;
      },
    });
    c.send({ type: 'response.create', response: {} });
    await up.waitFor((r) => r.includes('"response.cancel"'));
    // The disallowed call item is deleted once the response is done; the upstream no longer has it.
    await up.waitFor((r) => r.includes('"conversation.item.delete"'));
    await barrier(c, up, 'b6');
    await c.next('response.done');
    // The response was cancelled (the client sees its response.done): told as a notice.
    await c.waitFor((e) => noticeCode(e) === 'guardrail_blocked');
    expect(c.events.some((e) => errorCode(e) === 'response_cancel_not_active' || errorCode(e) === 'governance_failed')).toBe(false);
    expect(tp.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('governance failure'))).toBe(false);
  });
});
