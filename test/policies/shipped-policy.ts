import { resolve } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { barrier, errorOf, noticeOf, recordingUpstream, type RecordedConnection, type RecordingUpstream } from '../governance/edges-support.js';
import type { TestClient, TestProxy } from '../support/harness.js';
import { startTestProxy } from '../support/harness.js';
import { userMessage } from './support.js';

/**
 * For a test file: a proxy whose tenant `acme` runs the shipped `customer-support` policy (policies/)
 * over a recording upstream that answers every response.create with a spoken answer streamed as the
 * transcript deltas `spoken` (none: no answer). Started before the file's tests, stopped after.
 */
export function customerSupportProxy(spoken: readonly string[] = []) {
  let upstream: RecordingUpstream | null = null;
  let tp: TestProxy | null = null;
  let n = 0;
  beforeAll(async () => {
    upstream = await recordingUpstream((event, send) => {
      if (event.type !== 'response.create' || spoken.length === 0) return;
      const ids = { response_id: 'resp_1', item_id: 'item_out', output_index: 0, content_index: 0 };
      send({ type: 'response.created', event_id: 'ev_c', response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [] } });
      spoken.forEach((delta, i) => send({ type: 'response.output_audio_transcript.delta', event_id: `ev_d${i}`, ...ids, delta }));
      send({ type: 'response.output_audio_transcript.done', event_id: 'ev_t', ...ids, transcript: spoken.join('') });
    });
    tp = await startTestProxy({
      tenants: { acme: { policy: 'customer-support' } },
      config: { upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' }, policies: { dir: resolve(import.meta.dirname, '../../policies'), watch: false } },
    });
  });
  afterAll(async () => {
    await tp?.stop();
    await upstream?.close();
  });

  /** A new session, its upstream connection, after session.created. */
  async function connect(): Promise<{ c: TestClient; up: RecordedConnection }> {
    if (!tp || !upstream) throw new Error('the proxy is not started (beforeAll)');
    const c = await tp.client();
    const up = await upstream.connection(++n);
    await c.next('session.created');
    return { c, up };
  }

  /** Sends one user text item on a new session: the raw events the upstream received for it, and the client's error codes. */
  async function sendItem(text: string): Promise<{ relayed: string[]; errors: string[] }> {
    const { c, up } = await connect();
    const before = up.raw.length;
    c.send({ type: 'conversation.item.create', event_id: 'evt_item', item: userMessage(text) });
    await barrier(c, up, `sp${n}`);
    const relayed = up.raw.slice(before).filter((r) => r.includes('conversation.item.create') && !r.includes('barrier_'));
    // A refused item: its error reaches the client (the barrier only saw the upstream side).
    if (relayed.length === 0) await c.next('error');
    const errors = c.ofType('error').map((e) => errorOf(e).code);
    c.close();
    return { relayed, errors };
  }

  return {
    connect,
    /** Asks for a response on a new session: the first notice the client got (a response cancelled by policy), and the transcript it was shown before it. */
    async spokenAnswer(): Promise<{ noticeCode: string; shown: string }> {
      const { c } = await connect();
      c.send({ type: 'response.create', event_id: 'evt_resp' });
      const notice = await c.next('rtproxy.notice');
      const shown = c.ofType('response.output_audio_transcript.delta').map((e) => String(e['delta'])).join('');
      c.close();
      return { noticeCode: noticeOf(notice).code, shown };
    },
    /** How many item creates reached the upstream, and the client's error codes. */
    async createItem(text: string): Promise<{ relayed: number; errors: string[] }> {
      const r = await sendItem(text);
      return { relayed: r.relayed.length, errors: r.errors };
    },
    /** The text of the item as it reached the upstream ('(not relayed)' when it did not). */
    async relayedText(text: string): Promise<string> {
      const raw = (await sendItem(text)).relayed[0];
      const item = (JSON.parse(raw ?? '{}') as { item?: { content?: { text?: string }[] } }).item;
      return item?.content?.[0]?.text ?? '(not relayed)';
    },
  };
}
