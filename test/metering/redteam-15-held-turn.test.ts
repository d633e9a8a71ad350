/**
 * Red team (metering × the spoken-turn hold, fifteenth pass).
 *
 * Under `guardrails.holdSpokenInput` the locks turn `create_response` off and the proxy itself sends
 * the `response.create` that answers each spoken turn once its transcript passed (src/policies/hold.ts).
 * That create was injected (`SessionContext.sendUpstream`) past the filter chain: metering never reserved
 * it at its create, and met its response only at `response.created`, like a server-VAD response; over
 * the cap it cancelled it there, and the upstream billed what the response read before the cancel.
 * Since 2026-12-06 a response.create a filter sends passes the filters after it (SessionChain.inject):
 * metering refuses it over the cap and the client gets that error.
 *
 * The guarantee (src/metering/README.md): `admission: worst_case` never passes the cap; the stated
 * exceptions are input transcription and server-started (VAD) responses, "because no reservation can
 * precede them". The proxy's own create can be reserved before it leaves. An adversary with a key fills
 * the conversation with text (free until a response reads it), then speaks one turn: the answer the
 * proxy starts reads the whole conversation and is billed past the cap.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { heldPolicy, policyDir } from '../policies/support.js';
import { appendEvents, speechThenSilence } from '../support/harness.js';
import { errorCode, meteredProxy, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);

describe('red team 15: the response the spoken-turn hold starts for a passed turn', () => {
  it('admission worst_case, $0.05 cap, 100,000 characters in the conversation: the answer to a spoken turn is never billed past the cap', async () => {
    const cap = '0.05';
    const tp = await meteredProxy(cleanups, {
      tenants: { acme: { policy: 'held', limits: { dailyUsd: cap } } },
      config: { policies: { dir: policyDir({ 'held.yaml': heldPolicy(5000) }), watch: false } },
      simulator: { transcribe: () => 'what is the weather like today', timing: { transcriptionDelayMs: 50, deltaIntervalMs: 1 } },
      metering: { admission: 'worst_case' },
    });
    const c = await tp.client();
    await c.next('session.created');
    await c.next('session.updated');
    // ~25,000 tokens of text ($0.10 to read at gpt-realtime's $4/M): no create, nothing reserved or billed.
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'abcd'.repeat(25_000) }] } });
    await c.next('conversation.item.done');
    for (const e of appendEvents(speechThenSilence(600, 700), 20)) c.send(e);
    // The turn is transcribed (billed: outside the guarantee), passes, and its answer is started or refused.
    await until(() => c.events.some((e) => e.type === 'response.done' || e.type === 'error'), 10_000, 'the answer to the turn');
    // Billed: the transcription, and the response if the upstream started one (its response.done read).
    const started = () => tp.sim.connections[0]!.sent.some((e) => e.type === 'response.created');
    await until(
      async () => {
        const billed = await usageRecords(tp.adminUrl, '?tenant=acme');
        return billed.some((r) => r['source'] === 'transcription') && (!started() || billed.some((r) => r['source'] === 'response'));
      },
      10_000,
      'the turn billed',
    );
    const records = await usageRecords(tp.adminUrl, '?tenant=acme');
    const responses = records.filter((r) => r['source'] === 'response');
    const responseNanos = responses.reduce((a, r) => a + (r['costNanos'] as number), 0);
    // Old code: the proxy's create went out unreserved; cancelled at its response.created, the response
    // had read the conversation: ~$0.10 billed against $0.05.
    expect(responseNanos).toBeLessThanOrEqual(nanos(cap));
    // Refused before it left: no response ran upstream, and the client was told why.
    expect(tp.sim.connections[0]!.received.filter((e) => e.type === 'response.create')).toEqual([]);
    expect(c.ofType('error').map((e) => errorCode(e))).toContain('budget_exceeded');
  }, 30_000);
});
