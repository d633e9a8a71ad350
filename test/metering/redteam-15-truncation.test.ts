/**
 * Red team (metering, fifteenth pass): the upstream's own truncation setting against the context estimate.
 *
 * A response that reads the default conversation recalibrates metering's estimate of it: its usage (what
 * the model read) becomes the conversation's size. Under a session `truncation` with a low
 * `token_limits.post_instructions`, the model reads only the newest part of the conversation (OpenAI:
 * older messages "will not be included in the model's context"; they are not deleted), so that usage is
 * far below the conversation. A `session.update` loosening the truncation ("disabled", "auto", a higher
 * limit) makes the next responses read the whole conversation again, while metering still reserves them
 * on the truncated count. Out-of-band creates without an `input` list read the default conversation,
 * run in parallel, and never recalibrate: each is reserved on the small count and reads it all.
 *
 * The guarantee (src/metering/README.md, "The guarantee"): under `admission: worst_case` spend never
 * passes the cap. Scripted upstream (the simulator does not truncate): 120,000 bytes of text (~30,000
 * tokens, inside gpt-realtime's 32,768 window), the first response read 800 of them under the tight truncation.
 */
import type WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { TestClient } from '../support/harness.js';
import { errorCode, scriptedMeteredProxy, scriptedSession, spend, textUsage, until, usageRecords } from './support.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nanos = (usd: string) => Math.round(Number(usd) * 1e9);
const total = (records: Record<string, unknown>[]) => records.reduce((a, r) => a + (r['costNanos'] as number), 0);

type ClientEvent = { type: string; event_id?: string; session?: Record<string, unknown>; item?: Record<string, unknown>; response?: Record<string, unknown> };

/** Tokens the model reads of the whole conversation (120,000 bytes of text), and under the tight truncation. */
const WHOLE_CONVERSATION_TOKENS = 30_000;
const TRUNCATED_TOKENS = 800;

/**
 * A scripted upstream that truncates as OpenAI documents: while the session's truncation has a
 * `post_instructions` limit below the conversation, a response reads only that much of it.
 */
interface UpstreamOptions {
  /** The first response's response.done waits until the client's truncation update is answered. */
  readonly holdFirstDoneUntilUpdate?: boolean;
  /** Right after the first response, the upstream reports a loosened truncation the proxy never relayed. */
  readonly looseningNotRelayed?: boolean;
}

function truncatingUpstream(created: ClientEvent[], options: UpstreamOptions = {}) {
  return (ws: WebSocket, send: (event: Record<string, unknown>) => void) => {
    let session: Record<string, unknown> = scriptedSession();
    let tight = false;
    let n = 0;
    /** The first response's done, held back (it read under the tight truncation) until the next session.update arrives. */
    let heldDone: Record<string, unknown> | null = null;
    send({ type: 'session.created', event_id: 'event_s0', session });
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as ClientEvent;
      if (ev.type === 'session.update') {
        const truncation = ev.session?.['truncation'];
        if (truncation !== undefined) tight = typeof truncation === 'object' && truncation !== null;
        session = { ...session, ...ev.session };
        send({ type: 'session.updated', event_id: `event_u${++n}`, session });
        if (heldDone !== null) send(heldDone);
        heldDone = null;
        return;
      }
      if (ev.type === 'conversation.item.create') {
        const item = { ...ev.item, object: 'realtime.item', status: 'completed' };
        send({ type: 'conversation.item.added', event_id: `event_a${++n}`, previous_item_id: null, item });
        send({ type: 'conversation.item.done', event_id: `event_d${++n}`, previous_item_id: null, item });
        return;
      }
      if (ev.type === 'response.create') {
        created.push(ev);
        const r = ev.response ?? {};
        const id = `resp_${created.length}`;
        const base = {
          object: 'realtime.response',
          id,
          status_details: null,
          output: [],
          conversation_id: r['conversation'] === 'none' ? null : 'conv_1',
          output_modalities: ['text'],
          max_output_tokens: r['max_output_tokens'] ?? 'inf',
          metadata: r['metadata'] ?? null,
        };
        send({ type: 'response.created', event_id: `event_c${++n}`, response: { ...base, status: 'in_progress', usage: null } });
        const read = tight ? TRUNCATED_TOKENS : WHOLE_CONVERSATION_TOKENS;
        const done = { type: 'response.done', event_id: `event_r${++n}`, response: { ...base, status: 'completed', usage: textUsage(read, 1) } };
        if (options.holdFirstDoneUntilUpdate === true && created.length === 1) heldDone = done;
        else send(done);
        if (options.looseningNotRelayed === true && created.length === 1) {
          // Another party loosens the truncation (a call's browser on its data channel): the proxy reads only the answer.
          tight = false;
          session = { ...session, truncation: 'disabled' };
          send({ type: 'session.updated', event_id: `event_u${++n}`, session });
        }
      }
    });
  };
}

/**
 * A session under a tight truncation reads 800 tokens of a ~30,000-token conversation in one response;
 * `loosen` then lifts the truncation its own way, and five out-of-band creates follow, each reading the
 * whole conversation. Returns what was billed and what reached the upstream.
 */
async function fiveCreatesAfterLoosening(options: UpstreamOptions, loosen: (c: TestClient) => Promise<void>) {
  const cap = '0.20';
  const created: ClientEvent[] = [];
  const tp = await scriptedMeteredProxy(cleanups, truncatingUpstream(created, options), { tenants: { acme: { limits: { dailyUsd: cap } } }, metering: { admission: 'worst_case' } });
  const c = await tp.client();
  await c.next('session.created');
  // A tight truncation: the model reads at most ~1,000 tokens of the conversation (a documented way to cut cost).
  c.send({ type: 'session.update', session: { type: 'realtime', truncation: { type: 'retention_ratio', retention_ratio: 0.8, token_limits: { post_instructions: 1000 } } } });
  await c.next('session.updated');
  c.send({ type: 'conversation.item.create', item: { id: 'item_filler', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'word '.repeat(24_000) }] } });
  await c.waitFor((e) => e.type === 'conversation.item.done', 10_000, 'the filler');
  // One conversation response: reserved on the whole window ($0.13), it read 800 tokens ($0.0032).
  c.send({ type: 'response.create', event_id: 'evt_first', response: { output_modalities: ['text'], max_output_tokens: 1 } });
  await loosen(c);
  // The next responses read the whole conversation (~30,000 tokens, $0.12 each).
  for (let k = 0; k < 5; k++) c.send({ type: 'response.create', event_id: `evt_oob_${k}`, response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 1, metadata: { job: String(k) } } });
  await until(() => c.ofType('response.done').length + c.events.filter((e) => e.type === 'error' && errorCode(e) === 'budget_exceeded').length >= 6, 10_000, 'every create answered');
  const records = await usageRecords(tp.adminUrl, '?tenant=acme');
  return { c, tp, created, records, capNanos: nanos(cap) };
}

const looseningUpdate = async (c: TestClient): Promise<void> => {
  c.send({ type: 'session.update', session: { type: 'realtime', truncation: 'disabled' } });
  await c.next('session.updated');
};

describe('red team 15: a truncation the client loosens after a response read a truncated conversation', () => {
  it('admission worst_case, $0.20 cap: out-of-band creates after truncation "disabled" are reserved on the conversation, never over the cap', async () => {
    const { c, tp, created, records, capNanos } = await fiveCreatesAfterLoosening({}, async (c) => {
      await c.next('response.done', 10_000);
      await looseningUpdate(c);
    });
    // Old code: all five admitted at ~$0.0033 each, each read 30,000 tokens: $0.60 + $0.0032 against $0.20.
    expect(total(records)).toBeLessThanOrEqual(capNanos);
    // Reserved on the whole conversation (the window, $0.13): one runs, the others are refused.
    expect(created).toHaveLength(2);
    expect(c.events.filter((e) => e.type === 'error').map(errorCode)).toEqual(['budget_exceeded', 'budget_exceeded', 'budget_exceeded', 'budget_exceeded']);
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(total(records));
  }, 30_000);

  it('the response that read under the tight truncation finishes after the update loosened it: its count does not recalibrate the estimate', async () => {
    const { created, records, capNanos } = await fiveCreatesAfterLoosening({ holdFirstDoneUntilUpdate: true }, async (c) => {
      await c.next('response.created', 10_000);
      // While it runs (it read 800 tokens under the tight truncation), the client loosens the truncation.
      await looseningUpdate(c);
      await c.next('response.done', 10_000);
    });
    // Had its 800 tokens recalibrated the estimate after the update, the five would run as above: $0.60.
    expect(total(records)).toBeLessThanOrEqual(capNanos);
    expect(created).toHaveLength(2);
  }, 30_000);

  it('a loosening the proxy did not relay (only its session.updated is read) puts the estimate back too', async () => {
    const { created, records, capNanos } = await fiveCreatesAfterLoosening({ looseningNotRelayed: true }, async (c) => {
      await c.next('response.done', 10_000);
      await c.waitFor((e) => e.type === 'session.updated' && (e['session'] as { truncation?: unknown }).truncation === 'disabled', 10_000, 'the loosening');
    });
    expect(total(records)).toBeLessThanOrEqual(capNanos);
    expect(created).toHaveLength(2);
  }, 30_000);
});
