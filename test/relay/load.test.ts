import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, TestClient, type TestProxy } from '../support/harness.js';

describe('many sessions', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await startTestProxy();
  });
  afterAll(async () => {
    await tp.stop();
  });

  it('relays 200 concurrent sessions without cross-talk', async () => {
    const n = 200;
    const clients = await Promise.all(Array.from({ length: n }, () => tp.client()));
    await Promise.all(clients.map((c) => c.next('session.created', 10_000)));
    clients.forEach((c, i) => c.say(`say: client number ${i} speaking`));
    await Promise.all(clients.map((c) => c.next('response.done', 15_000)));
    const sessionIds = new Set<string>();
    clients.forEach((c, i) => {
      const transcript = c
        .ofType('response.output_audio_transcript.delta')
        .map((e) => e['delta'] as string)
        .join('');
      expect(transcript).toBe(`client number ${i} speaking`);
      const created = c.ofType('session.created')[0]!;
      sessionIds.add((created['session'] as { id: string }).id);
      const responseIds = new Set(c.ofType('response.output_audio.delta').map((e) => e['response_id'] as string));
      expect(responseIds.size).toBe(1);
    });
    expect(sessionIds.size).toBe(n);
    for (const c of clients) c.close();
    await Promise.all(clients.map((c) => c.closed));
  }, 60_000);
});

describe('backpressure', () => {
  it('pauses the upstream for a slow client, closes it with 4008 after the grace period, and leaves others unaffected', async () => {
    const tp = await startTestProxy({
      config: {
        server: { backpressure: { highWatermarkBytes: 64 * 1024, lowWatermarkBytes: 16 * 1024, maxBufferedBytes: 4 * 1024 * 1024, slowClientGraceMs: 1500 } },
      },
    });
    const slow = await tp.client();
    await slow.next('session.created');
    const healthy = await tp.client();
    await healthy.next('session.created');
    // The slow client stops reading: its kernel buffers fill, then the proxy's send buffer.
    slow.ws.pause();
    // ~5 minutes of audio (≈ 19 MiB of base64): far more than loopback socket buffers absorb.
    slow.say(`say: ${'a very long answer that produces a lot of audio '.repeat(100)}`);
    healthy.say('say: I am fine');
    const done = await healthy.next('response.done', 5000);
    expect((done['response'] as { status: string }).status).toBe('completed');
    // A paused socket cannot read the close frame: watch the proxy's session-end record instead.
    const deadline = Date.now() + 8000;
    let end = tp.logs.find((l) => l['event'] === 'session_end' && l['clientCloseCode'] === 4008);
    while (!end && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      end = tp.logs.find((l) => l['event'] === 'session_end' && l['clientCloseCode'] === 4008);
    }
    expect(end?.['backpressureEvents']).toBeGreaterThanOrEqual(1);
    // The proxy buffered at most its hard cap for the slow client, not the whole answer.
    expect(end?.['serverBytes'] as number).toBeLessThan(19 * 1024 * 1024);
    slow.ws.resume();
    expect((await slow.closed).code).toBe(4008);
    healthy.close();
    await tp.stop();
  }, 20_000);
});

describe('graceful shutdown', () => {
  it('stops accepting, lets sessions drain, then closes them with 1012', async () => {
    const tp = await startTestProxy();
    const c = await tp.client();
    await c.next('session.created');
    const t0 = Date.now();
    const stopping = tp.proxy.shutdown(400);
    const late = new TestClient(tp.url, { headers: { authorization: `Bearer ${tp.key()}` } });
    const lateOutcome = await Promise.race([late.refused.then((s) => `http ${s}`), late.closed.then((x) => `closed ${x.code}`)]);
    // The listener stays open while sessions drain: a late client gets an HTTP 503, not a refused connection.
    expect(lateOutcome).toBe('http 503');
    const closed = await c.closed;
    expect(closed.code).toBe(1012);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(c.ofType('error').at(-1)?.['error']).toMatchObject({ code: 'server_shutting_down' });
    await stopping;
  });
});
