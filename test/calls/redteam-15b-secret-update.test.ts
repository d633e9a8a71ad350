/**
 * Red team (calls, fifteenth pass b): a client secret's config on the WebSocket endpoint against metering.
 *
 * A browser WebSocket client opening a session with a proxy-minted `ek_proxy_…` gets the secret's
 * governed config sent upstream first (RelaySession.start, `sendUpstream(session.update, 'client_secret')`),
 * outside the filter chain. Metering learns what that update sets (instructions, tools) only from its
 * `session.updated`. An adversary with a tenant key mints a secret whose session carries ~100 KB of
 * instructions (the policy allows them: no truncation budget), opens the WebSocket with it and sends
 * out-of-band `response.create`s at once, before the upstream answered the secret's update: each is
 * reserved on an empty prompt and reads the whole instructions upstream. The guarantee broken
 * (src/metering/README.md, "The guarantee"): under `admission: worst_case` spend never passes the cap;
 * a client `session.update` counts as soon as it is forwarded, pessimistically, and so must the secret's.
 * Before the fix: six creates ran, $0.60 spent against a $0.30 cap; now two run and four are refused.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import type { TestProxy } from '../support/harness.js';
import { ADMIN_KEY, usageRecords } from '../metering/support.js';
import { callsProxy, mint } from './support.js';

const CAP_USD = '0.30';
const CREATES = 6;
/** ~25,000 tokens as the simulator counts text (4 characters a token): $0.10 of gpt-realtime text input per response. */
const INSTRUCTIONS = 'Answer briefly. '.repeat(6_250);

let tp: TestProxy;
beforeAll(async () => {
  tp = await callsProxy({
    tenants: { capped: { limits: { dailyUsd: CAP_USD } } },
    extra: { config: { admin: { key: ADMIN_KEY }, metering: { admission: 'worst_case' } } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

describe('a client secret on the WebSocket endpoint: its minted config counts from the start', () => {
  it('out-of-band creates sent right behind the secret\'s update are reserved with its instructions: spend stays under a worst_case cap', async () => {
    const minted = await mint(tp, 'capped', { session: { type: 'realtime', model: 'gpt-realtime', instructions: INSTRUCTIONS } });
    expect(minted.status).toBe(200);
    const secret = minted.json['value'] as string;
    const c = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime?model=gpt-realtime`, { protocols: ['realtime', `openai-insecure-api-key.${secret}`] });
    await c.opened;
    // At once: the upstream has not answered the secret's session.update yet.
    for (let i = 0; i < CREATES; i++) {
      c.send({ type: 'response.create', event_id: `evt_oob_${i}`, response: { conversation: 'none', input: [], output_modalities: ['text'], max_output_tokens: 16, metadata: { n: String(i) } } });
    }
    // Each create is answered: its response.done, or an error refusing it over the cap.
    const isRefusal = (e: { type: string; [k: string]: unknown }) => e.type === 'error' && String((e['error'] as { event_id?: unknown }).event_id).startsWith('evt_oob_');
    const answered = () => c.events.filter((e) => e.type === 'response.done' || isRefusal(e));
    await c.waitFor(() => answered().length >= CREATES);
    const outcomes = answered().map((e) => (e.type === 'error' ? String((e['error'] as { code?: unknown }).code) : 'done'));
    c.close();
    await c.closed;
    const records = await usageRecords(tp.adminUrl);
    const spentNanos = records.filter((r) => r['tenant'] === 'capped').reduce((a, r) => a + (r['costNanos'] as number), 0);
    // Worst case admission: never past the cap.
    expect(spentNanos).toBeLessThanOrEqual(Math.round(Number(CAP_USD) * 1e9));
    // The first ran (its reservation fits the cap); the rest were refused before they left.
    expect(outcomes.filter((o) => o === 'done').length).toBeGreaterThanOrEqual(1);
    expect(outcomes.filter((o) => o === 'budget_exceeded').length).toBeGreaterThanOrEqual(1);
  });
});
