import { afterEach, describe, expect, it } from 'vitest';
import { spend, until } from '../metering/support.js';
import { TestClient, type TestProxy } from '../support/harness.js';
import { policyDir } from '../policies/support.js';
import { meteredProxy } from './translation-support.js';

/*
 * Red team of the translation sessions (commit 63ce82f): a tenant-key holder probing what the
 * metering, the relay's event allowlist and the upgrade path let through. Plain `ws` clients on
 * loopback, the simulator upstream.
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function proxy(options: Parameters<typeof meteredProxy>[0] = {}): Promise<TestProxy> {
  const tp = await meteredProxy(options);
  cleanups.push(() => tp.stop());
  return tp;
}

function translationClient(tp: TestProxy, path = '/v1/realtime/translations', query = 'model=gpt-realtime-translate'): TestClient {
  const c = new TestClient(`ws://127.0.0.1:${tp.port}${path}?${query}`, { headers: { authorization: `Bearer ${tp.key()}` } });
  cleanups.push(async () => c.ws.terminate());
  return c;
}

/** `ms` of 24 kHz PCM16 silence, base64. */
const pcm = (ms: number) => Buffer.alloc(ms * 48).toString('base64');
/** A translation append with its type escaped: the sniffer gives up and the strict parser reads the type the upstream reads. */
const escaped = (id: string, ms: number) => `{"type":"session.input_audio_buffer.app\\u0065nd","event_id":"${id}","audio":"${pcm(ms)}"}`;

describe('red team 19t: translation input audio in a realtime session', () => {
  /*
   * The adversary opens an ordinary realtime session (`/v1/realtime?model=gpt-realtime`) and sends
   * its audio as `session.input_audio_buffer.append`, the translation sessions' append, which the
   * GA endpoint lists among the types it accepts (reference §3.1). Metering's comment says "no other
   * session sends it: the relay refuses it there", but nothing refuses it: it reaches the upstream
   * past every realtime input-audio control (AUDIO_IN is `input_audio_buffer.append`: the spoken-turn
   * hold, input-audio counters and budgets never see it). Guarantee broken: the proxy is not a
   * weaker check than the upstream's, and audio the proxy does not count never reaches the upstream.
   */
  it('refuses session.input_audio_buffer.append in a realtime session before the upstream sees it', async () => {
    const tp = await proxy();
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'session.input_audio_buffer.append', event_id: 'evt_tr_audio', audio: pcm(200) });
    const error = await c.next('error');
    expect(error['error']).toMatchObject({ code: 'invalid_event', event_id: 'evt_tr_audio', param: 'type' });
    // The proxy's own refusal (the simulator's says "only supported in translation sessions").
    expect(JSON.stringify(error)).not.toContain('only supported in translation sessions');
    c.send({ type: 'input_audio_buffer.clear' });
    await c.next('input_audio_buffer.cleared');
    expect(tp.sim.connections[0]!.received.map((r) => r.type)).not.toContain('session.input_audio_buffer.append');
    c.close();
  });

  it('an escaped translation append in a realtime session is refused as the plain one is', async () => {
    const tp = await proxy();
    const c = await tp.client();
    await c.next('session.created');
    c.send(escaped('evt_esc', 200));
    const error = await c.next('error');
    expect(error['error']).toMatchObject({ code: 'invalid_event', event_id: 'evt_esc', param: 'type' });
    c.send({ type: 'input_audio_buffer.clear' });
    await c.next('input_audio_buffer.cleared');
    expect(tp.sim.connections[0]!.received.map((r) => r.type)).toEqual(['input_audio_buffer.clear']);
  });
});

describe('red team 19t: one large append under admission remaining', () => {
  /*
   * src/metering/README.md: "under `admission` (remaining: granted while spent + reserved is below
   * the cap, so a session runs past a cap by at most one block, $0.034". A frame longer than a block
   * reserves all of it at once, and `remaining` grants it whenever anything is left: one 3-minute
   * append (11.5 MB base64, under the 16 MiB frame limit) just under a $0.01 cap is sent and billed,
   * $0.102: three times the documented overshoot (a 16 MiB frame carries 4.4 minutes, $0.149).
   */
  it('a single append larger than a block cannot run past the cap by more than one block', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.01' } } }, metering: { admission: 'remaining' } });
    const c = translationClient(tp);
    await c.opened;
    await c.next('session.created');
    c.send({ type: 'session.input_audio_buffer.append', event_id: 'evt_big', audio: pcm(180_000) });
    c.send({ type: 'session.close' });
    await c.closed;
    // Refused whole ($0.102 does not fit under $0.01 + one block), not sent upstream.
    expect(c.events.find((e) => e.type === 'error')?.['error']).toMatchObject({ code: 'budget_exceeded', event_id: 'evt_big', param: 'audio' });
    expect(tp.sim.connections[0]!.received.map((r) => r.type)).toEqual(['session.close']);
    await until(async () => (await spend(tp.adminUrl)).day.reservedUsd === '0.00', 10_000, 'nothing reserved');
    const spent = (await spend(tp.adminUrl)).day.spentNanos;
    // The cap ($0.01) plus one block ($0.034).
    expect(spent).toBeLessThanOrEqual(10_000_000 + 34_000_000);
  });
});

describe('red team 19t: the inputTranscription lock in a translation session', () => {
  /*
   * policies/README.md: "`inputTranscription` pins the input transcription: on, with the policy's
   * model ... Input rules read its transcripts". A translation session has a source transcription
   * (`audio.input.transcription`, off by default), yet the locks were switched off there whole
   * ("none of their settings exist there"). The adversary opens a translation session and never
   * turns transcription on (or turns it off with `transcription: null`): the input rules never read
   * a word of what is said, and a card number spoken into the session passes a policy that ends the
   * session on one. Guarantee broken: the lock keeps input transcription on, with its model.
   */
  const POLICY = `
locks:
  inputTranscription: { model: gpt-realtime-whisper }
guardrails:
  rules:
    - { id: card, sources: [input], match: { pii: [card] }, action: end_session }
`;

  async function lockedProxy(): Promise<TestProxy> {
    return proxy({
      tenants: { acme: { policy: 'locked' } },
      config: { policies: { dir: policyDir({ 'locked.yaml': POLICY }), watch: false } },
      simulator: { translate: ({ frame }) => ({ source: frame === 0 ? 'my card is 4111 1111 1111 1111' : 'thanks', translated: 'hello ' }) },
    });
  }

  it('turns source transcription on with the locked model at session start, so the input rules read what is said', async () => {
    const tp = await lockedProxy();
    const c = translationClient(tp);
    await c.opened;
    await c.next('session.created');
    // Two frames: the second's transcript settles the card number held at the end of the first.
    c.send({ type: 'session.input_audio_buffer.append', audio: pcm(400) });
    c.send({ type: 'session.close' });
    const { code } = await c.closed;
    expect(code).toBe(4003);
    expect(JSON.stringify(c.events)).not.toContain('4111');
    const first = tp.sim.connections[0]!.received[0]!;
    expect(first.event).toMatchObject({ type: 'session.update', session: { audio: { input: { transcription: { model: 'gpt-realtime-whisper' } } } } });
  });

  it("rewrites a client's session.update that turns transcription off or names another model", async () => {
    const tp = await lockedProxy();
    const c = translationClient(tp);
    await c.opened;
    await c.next('session.created');
    c.send({ type: 'session.update', event_id: 'evt_off', session: { audio: { input: { transcription: null }, output: { language: 'fr' } } } });
    const notice = await c.next('rtproxy.notice');
    expect(notice['notice']).toMatchObject({ code: 'session_locked', event_id: 'evt_off', details: { field: 'input_transcription', action: 'rewritten' } });
    c.send({ type: 'session.update', event_id: 'evt_other', session: { audio: { input: { transcription: { model: 'gpt-live-transcribe' } } } } });
    await c.waitFor((e) => e.type === 'rtproxy.notice' && (e['notice'] as { event_id?: string }).event_id === 'evt_other');
    const updates = tp.sim.connections[0]!.received.filter((r) => r.type === 'session.update').map((r) => (r.event as Record<string, unknown>)['session']);
    expect(updates).toEqual([
      { audio: { input: { transcription: { model: 'gpt-realtime-whisper' } } } },
      { audio: { input: { transcription: { model: 'gpt-realtime-whisper' } }, output: { language: 'fr' } } },
      { audio: { input: { transcription: { model: 'gpt-realtime-whisper' } } } },
    ]);
    c.close();
  });
});

describe('red team 19t: held (probes that found nothing)', () => {

  it('an escaped append in a translation session is metered as the plain one is', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '5' } } } });
    const c = translationClient(tp);
    await c.opened;
    await c.next('session.created');
    c.send(escaped('evt_esc', 1000));
    c.send({ type: 'session.close' });
    await c.closed;
    await until(async () => (await spend(tp.adminUrl)).day.reservedUsd === '0.00', 10_000, 'nothing reserved');
    // 1 s at $0.034/min.
    expect((await spend(tp.adminUrl)).day.spentNanos).toBe(566_667);
  });

  it('sessions opened at once against one cap under remaining run past it by one block in all', async () => {
    const tp = await proxy({ tenants: { acme: { limits: { dailyUsd: '0.05' } } }, metering: { admission: 'remaining' } });
    const clients = Array.from({ length: 5 }, () => translationClient(tp));
    await Promise.all(clients.map((c) => c.opened.then(() => c.next('session.created'))));
    // Every session appends a second of audio at once: each first block ($0.034) is asked for together.
    for (const c of clients) c.send({ type: 'session.input_audio_buffer.append', audio: pcm(1000) });
    await until(() => clients.every((c) => c.events.some((e) => e.type === 'error' || e.type === 'session.output_audio.delta')), 10_000, 'every append answered');
    const granted = clients.filter((c) => c.events.some((e) => e.type === 'session.output_audio.delta')).length;
    // $0.05 admits a first block ($0) and a second ($0.034 < $0.05); a third would start at $0.068.
    expect(granted).toBe(2);
    expect((await spend(tp.adminUrl)).day.reservedUsd).toBe('0.068');
  });

  it('paths: a trailing slash, a doubled slash and a client ":translation" query parameter', async () => {
    const tp = await proxy();
    const slash = translationClient(tp, '/v1/realtime/translations/');
    expect(await slash.refused).toBe(404);
    // Any path ending in /realtime/translations is a translation session, dialled at the upstream's own path.
    const doubled = translationClient(tp, '//realtime/translations');
    await doubled.opened;
    await doubled.next('session.created');
    expect(new URL(tp.sim.connections[0]!.url, 'http://sim').pathname).toBe('/v1/realtime/translations');
    doubled.close();
    // A realtime session cannot mark itself a translation session (its metering would price audio only).
    const marked = translationClient(tp, '/v1/realtime', 'model=gpt-realtime&%3Atranslation=1');
    await marked.opened;
    const created = await marked.next('session.created');
    expect((created['session'] as Record<string, unknown>)['type']).toBe('realtime');
    expect(new URL(tp.sim.connections[1]!.url, 'http://sim').pathname).toBe('/v1/realtime');
    // A realtime model on the translation path: refused before the upgrade (no audio price).
    const realtime = translationClient(tp, '/v1/realtime/translations', 'model=gpt-realtime');
    expect(await realtime.refused).toBe(400);
    // No key at all.
    const anon = new TestClient(`ws://127.0.0.1:${tp.port}/v1/realtime/translations?model=gpt-realtime-translate`);
    cleanups.push(async () => anon.ws.terminate());
    expect(await anon.refused).toBe(401);
  });
});
