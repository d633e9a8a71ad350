import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator } from '../../src/simulator/index.js';
import { defaultKey, startTestProxy, TestClient, type TestProxy } from '../support/harness.js';
import { UPSTREAM_CREDENTIALS_MESSAGE } from '../../src/upstream/auth-refusal.js';

/** A port this test holds whose server resets every connection (a freed port can be taken by a parallel test). */
async function refusingPort(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { port: (server.address() as { port: number }).port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

const auth = { authorization: `Bearer ${defaultKey('acme')}` };

describe('upstream failures reach the client as an error and a close within 2 s', () => {
  it('upstream refusing connections', async () => {
    const refusing = await refusingPort();
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: `ws://127.0.0.1:${refusing.port}/v1/realtime`, apiKey: 'sk-x' } } });
    const t0 = Date.now();
    const c = new TestClient(tp.url, { headers: auth });
    const err = await c.next('error');
    expect(err['error']).toMatchObject({ code: 'upstream_unavailable', type: 'server_error' });
    expect((await c.closed).code).toBe(1013);
    expect(Date.now() - t0).toBeLessThan(2000);
    await tp.stop();
    await refusing.close();
  });

  it('upstream accepting TCP but never answering the upgrade (connect timeout)', async () => {
    const silent = createServer(() => undefined).listen(0, '127.0.0.1');
    await new Promise((r) => silent.once('listening', r));
    const port = (silent.address() as { port: number }).port;
    const tp = await startTestProxy({
      config: { upstream: { provider: 'openai', url: `ws://127.0.0.1:${port}/v1/realtime`, apiKey: 'sk-x', connectTimeoutMs: 800 } },
    });
    const t0 = Date.now();
    const c = new TestClient(tp.url, { headers: auth });
    expect((await c.next('error'))['error']).toMatchObject({ code: 'upstream_unavailable' });
    expect((await c.closed).code).toBe(1013);
    expect(Date.now() - t0).toBeLessThan(2000);
    await tp.stop();
    silent.close();
  });

  it("upstream answering the upgrade with HTTP 401 (the proxy's own key refused): the fixed message, close 4101, logged (2026-12-06: 1011, which the SDK retries)", async () => {
    const sim = await startSimulator({ rejectUpgradeStatus: 401 });
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: sim.url, apiKey: 'sk-x' } } });
    const c = new TestClient(tp.url, { headers: auth });
    const err = await c.next('error');
    expect(err['error']).toMatchObject({ code: 'upstream_rejected', message: UPSTREAM_CREDENTIALS_MESSAGE, details: { status: 401 } });
    expect(await c.closed).toEqual({ code: 4101, reason: 'upstream_rejected' });
    expect(tp.logs.some((l) => l['event'] === 'upstream_auth_refused' && l['upstreamStatus'] === 401)).toBe(true);
    await tp.stop();
    await sim.close();
  });

  it("OpenAI-style refusal of the proxy's own upstream key (101, error invalid_api_key, close 3000): upstream_rejected with a fixed message, close 4101 (2026-12-06: it was relayed as it came; then 1011, which the SDK retries)", async () => {
    const sim = await startSimulator({ apiKey: 'sk-the-real-one' });
    const tp = await startTestProxy({ config: { upstream: { provider: 'openai', url: sim.url, apiKey: 'sk-wrong' } } });
    const c = new TestClient(tp.url, { headers: auth });
    const err = await c.next('error');
    expect(err['error']).toMatchObject({ code: 'upstream_rejected', type: 'server_error', message: UPSTREAM_CREDENTIALS_MESSAGE });
    expect(await c.closed).toEqual({ code: 4101, reason: 'upstream_rejected' });
    expect(tp.logs.some((l) => l['event'] === 'upstream_auth_refused' && l['upstreamCode'] === 'invalid_api_key')).toBe(true);
    await tp.stop();
    await sim.close();
  });

  it('upstream dropping mid-response', async () => {
    const tp = await startTestProxy();
    const c = await tp.client();
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    conn.dropAfterDeltas(2);
    const t0 = Date.now();
    c.say('say: this response will be cut off in the middle of a long sentence');
    const err = await c.waitFor((e) => e.type === 'error' && (e['error'] as { code: string }).code === 'upstream_closed');
    expect(err).toBeDefined();
    expect((await c.closed).code).toBe(1011);
    expect(Date.now() - t0).toBeLessThan(2000);
    await tp.stop();
  });

  it('upstream that stops answering pings is detected and the client closed', async () => {
    const tp = await startTestProxy({ config: { upstream: { pingIntervalMs: 200, pongTimeoutMs: 300 } } });
    const c = await tp.client();
    await c.next('session.created');
    tp.sim.connections[tp.sim.connections.length - 1]!.freeze();
    const err = await c.next('error', 4000);
    expect(err['error']).toMatchObject({ code: 'upstream_timeout' });
    expect((await c.closed).code).toBe(1011);
    await tp.stop();
  });
});

describe('bad client input', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await startTestProxy();
  });
  afterAll(async () => {
    await tp.stop();
  });

  it('answers malformed frames with error events and keeps the session', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.send('{"type": "session.update", ');
    expect((await c.nth('error', 1))['error']).toMatchObject({ code: 'invalid_json' });
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await c.nth('error', 2))['error']).toMatchObject({ code: 'invalid_event' });
    c.send({ event_id: 'evt_no_type', audio: 'AAAA' });
    expect((await c.nth('error', 3))['error']).toMatchObject({ code: 'invalid_event', event_id: 'evt_no_type' });
    c.send('[1,2,3]');
    expect((await c.nth('error', 4))['error']).toMatchObject({ code: 'invalid_event' });
    // Unknown types are the upstream's to judge: forwarded, and its error comes back.
    c.send({ type: 'no.such.event', event_id: 'evt_unknown' });
    expect((await c.nth('error', 5))['error']).toMatchObject({ event_id: 'evt_unknown' });
    c.say('say: still here');
    const done = await c.next('response.done');
    expect((done['response'] as { status: string }).status).toBe('completed');
    c.close();
  });

  it('refuses a 20 MiB frame with frame_too_large, relays none of it, and keeps the session', async () => {
    const c = await tp.client();
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    const audio = 'A'.repeat(20 * 1024 * 1024);
    c.send(`{"type":"input_audio_buffer.append","audio":"${audio}"}`);
    expect((await c.next('error'))['error']).toMatchObject({ code: 'frame_too_large' });
    c.say('say: after the big frame');
    expect(((await c.next('response.done'))['response'] as { status: string }).status).toBe('completed');
    expect(conn.received.some((r) => r.type === 'input_audio_buffer.append')).toBe(false);
    c.close();
  });

  it('relays a 15 MiB append (the documented per-event maximum) to the upstream byte for byte', async () => {
    const c = await tp.client();
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    // Not all zeros: a truncated or re-encoded payload must not compare equal by accident.
    const pcm = Buffer.alloc(11 * 1024 * 1024);
    for (let i = 0; i < pcm.length; i++) pcm[i] = (i * 31 + (i >> 11)) & 0xff;
    const audio = pcm.toString('base64');
    expect(audio.length).toBeGreaterThan(14.5 * 1024 * 1024);
    c.send({ type: 'input_audio_buffer.append', event_id: 'evt_big', audio });
    // The upstream handles events in order: once `cleared` is back, the append has arrived.
    c.send({ type: 'input_audio_buffer.clear', event_id: 'evt_clear' });
    await c.next('input_audio_buffer.cleared');
    const appends = conn.received.filter((r) => r.type === 'input_audio_buffer.append');
    expect(appends).toHaveLength(1);
    const relayed = appends[0]!.event as { event_id?: string; audio?: string };
    expect(relayed.event_id).toBe('evt_big');
    expect(relayed.audio?.length).toBe(audio.length);
    expect(relayed.audio === audio).toBe(true);
    expect(c.ofType('error')).toEqual([]);
    c.close();
  });

  it('enforces server.maxFrameBytes exactly: a frame of the limit is relayed, one byte more is refused', async () => {
    const limit = 16 * 1024 * 1024; // the default server.maxFrameBytes
    const c = await tp.client();
    await c.next('session.created');
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    // JSON whitespace pads the frame to an exact byte length without changing the audio.
    const frame = (id: string, bytes: number): string => {
      const head = `{"type":"input_audio_buffer.append","event_id":"${id}","audio":"`;
      const audio = 'AAAA'.repeat(Math.floor((bytes - head.length - 2) / 4) - 1);
      const body = `${head}${audio}"`;
      const out = `${body}${' '.repeat(bytes - body.length - 1)}}`;
      expect(Buffer.byteLength(out)).toBe(bytes);
      return out;
    };
    c.send(frame('evt_at_limit', limit));
    c.send(frame('evt_over_limit', limit + 1));
    c.send({ type: 'input_audio_buffer.clear', event_id: 'evt_clear' });
    await c.next('input_audio_buffer.cleared');
    const refused = await c.next('error');
    expect(refused['error']).toMatchObject({ code: 'frame_too_large', type: 'invalid_request_error' });
    expect(c.ofType('error')).toHaveLength(1);
    const ids = conn.received.filter((r) => r.type === 'input_audio_buffer.append').map((r) => (r.event as { event_id?: string }).event_id);
    expect(ids).toEqual(['evt_at_limit']);
    c.close();
  });

  it('queues frames sent before the upstream opened, in order', async () => {
    const c = new TestClient(tp.url, { headers: auth });
    await c.opened;
    for (let i = 0; i < 20; i++) c.send({ type: 'conversation.item.create', event_id: `evt_${i}`, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: `n${i}` }] } });
    await c.nth('conversation.item.done', 20);
    const conn = tp.sim.connections[tp.sim.connections.length - 1]!;
    // Item creates leave with the proxy's event_ids (Conversation.stamp): the order is read from their text.
    const texts = conn.received
      .filter((r) => r.type === 'conversation.item.create')
      .map((r) => (r.event as { item: { content: { text: string }[] } }).item.content[0]!.text);
    expect(texts).toEqual(Array.from({ length: 20 }, (_, i) => `n${i}`));
    c.close();
  });
});
