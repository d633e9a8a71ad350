import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Child } from '../../bench/lib/ipc.js';
import { RelaySession } from '../../src/relay/session.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';

/**
 * Slow consumers under a fast upstream. The fake upstream runs in its own process and answers each
 * response.create with ~700 KB of audio at once. Clients that stop reading must cost bounded
 * memory, be closed with 4008, and not slow down the clients that read.
 */

const SLOW = 10;
const HEALTHY = 10;
const RESPONSES_PER_SLOW = 30;
const DELTAS = 200;
const HIGH_WATERMARK = 256 * 1024;
const MAX_BUFFERED = 4 * 1024 * 1024;
/**
 * The most one session may hold (RelaySession.heldBytes: the client's send buffer and outbox, the
 * upstream socket's unsent bytes, frames read but not delivered). A client's send buffer passing the
 * high watermark pauses the upstream reads (ClientLink #checkBackpressure -> UpstreamLink.pause) at
 * the flush of the batch that passed it; that batch is the frames of one socket read (64 KiB, libuv's
 * read size), and the frame reader keeps at most what follows them in that read. So: the high
 * watermark plus two reads; measured 259-315 KiB for a slow client. The hard cap (maxBufferedBytes)
 * is never reached while the pause works: a proxy that kept reading would hold up to 4 MiB per slow
 * client and fail this.
 */
const READ = 64 * 1024;
const MAX_HELD_PER_SESSION = HIGH_WATERMARK + 2 * READ;

describe('slow clients', () => {
  let upstream: Child;
  let tp: TestProxy;

  beforeAll(async () => {
    upstream = new Child('upstream', 'bench/procs/upstream.ts', { cpus: null, args: [JSON.stringify({ pacing: 'burst', deltasPerResponse: DELTAS, deltaMs: 40 })], stdout: 'ignore' });
    const { port } = (await upstream.ready) as { port: number };
    tp = await startTestProxy({
      config: {
        logging: { level: 'info' },
        upstream: { provider: 'openai', url: `ws://127.0.0.1:${port}/v1/realtime`, apiKey: 'sk-fake' },
        server: { backpressure: { highWatermarkBytes: HIGH_WATERMARK, lowWatermarkBytes: 64 * 1024, maxBufferedBytes: MAX_BUFFERED, slowClientGraceMs: 1000 } },
      },
    });
  }, 30_000);

  afterAll(async () => {
    vi.restoreAllMocks();
    await tp?.stop();
    await upstream?.stop();
  });

  it(`${SLOW} clients that stop reading: bounded memory, each closed with 4008, ${HEALTHY} readers unaffected`, async () => {
    // The proxy's own accounting: every session's heldBytes() (what the server sums into its memory
    // budget once a second), read here every 10 ms. Sessions are found through the client frames they get.
    // (A session's figure drops to 0 at its 4008; the bytes uWS still holds for the ended socket are
    // then counted by the server until uWS's end timeout: test/resilience/slow-client-linger.test.ts.)
    const sessions = new Set<RelaySession>();
    const onClientMessage = RelaySession.prototype.onClientMessage;
    vi.spyOn(RelaySession.prototype, 'onClientMessage').mockImplementation(function (this: RelaySession, message, isBinary) {
      sessions.add(this);
      onClientMessage.call(this, message, isBinary);
    });
    const heldPeakBy = new Map<RelaySession, number>();
    let heldPeak = 0;

    const slow = await Promise.all(Array.from({ length: SLOW }, () => tp.client()));
    const healthy = await Promise.all(Array.from({ length: HEALTHY }, () => tp.client()));
    await Promise.all([...slow, ...healthy].map((c) => c.next('session.created')));
    global.gc?.();
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      let held = 0;
      for (const s of sessions) {
        const h = s.heldBytes();
        held += h;
        if (h > (heldPeakBy.get(s) ?? 0)) heldPeakBy.set(s, h);
      }
      heldPeak = Math.max(heldPeak, held);
    }, 10);

    // The slow clients stop reading, then ask for ~20 MB of audio each.
    for (const c of slow) {
      c.ws.pause();
      for (let i = 0; i < RESPONSES_PER_SLOW; i++) c.send({ type: 'response.create', event_id: `slow_${i}` });
    }
    // Meanwhile the healthy ones hold three complete turns each.
    const turns = async (c: TestClient) => {
      for (let t = 1; t <= 3; t++) {
        c.send({ type: 'response.create', event_id: `ok_${t}` });
        await c.nth('response.done', t, 10_000);
      }
    };
    await Promise.all(healthy.map(turns));
    for (const c of healthy) {
      expect(c.ofType('response.output_audio.delta')).toHaveLength(3 * DELTAS);
      expect(c.ofType('error')).toEqual([]);
    }

    // Every slow client is ended by the proxy for being slow (the record is written at session end).
    const slowEnds = () => tp.logs.filter((l) => l['event'] === 'session_end' && l['clientCloseCode'] === 4008);
    const deadline = Date.now() + 15_000;
    while (slowEnds().length < SLOW && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    clearInterval(sampler);
    expect(slowEnds()).toHaveLength(SLOW);
    for (const end of slowEnds()) expect(end['backpressureEvents']).toBeGreaterThanOrEqual(1);
    // No healthy session was touched.
    expect(tp.proxy.server.sessionCount).toBe(HEALTHY);

    // Bounded, by the proxy's own accounting: no session held more than the high watermark and two
    // reads at any sample, nor all of them together more than that per session.
    const peaks = [...heldPeakBy.values()].sort((a, b) => b - a);
    expect(sessions.size).toBe(SLOW + HEALTHY);
    expect(peaks[0] ?? 0, `per-session held peaks (bytes): ${peaks.join(', ')}`).toBeLessThanOrEqual(MAX_HELD_PER_SESSION);
    expect(heldPeak).toBeLessThanOrEqual((SLOW + HEALTHY) * MAX_HELD_PER_SESSION);
    // Not vacuous: each slow client was seen holding past the high watermark (it stays there for the
    // whole grace second before the 4008, sampled every 10 ms).
    expect(peaks.filter((p) => p > HIGH_WATERMARK).length, `per-session held peaks (bytes): ${peaks.join(', ')}`).toBeGreaterThanOrEqual(SLOW);
    // A sanity bound on the whole process too, not the measure: RSS holds the test's clients and
    // runner, allocator retention, and the read buffers the proxy and the clients are done with but
    // the GC has not freed yet (30-57 MiB of ArrayBuffers at the peak, by GC timing; the RSS growth
    // read 60-93 MiB over the same proxy accounting of <3 MiB). 200 MiB is what the slow clients
    // asked for (the figure of the original issue): a proxy that buffered it all would not stay under it.
    const grownMiB = (rssPeak - rssBefore) / 1048576;
    expect(grownMiB).toBeLessThan(200);

    for (const c of slow) c.ws.resume();
    const closes = await Promise.all(slow.map((c) => c.closed));
    // 4008 when the close frame gets through, 1006 when uWS had to cut the connection.
    for (const cl of closes) expect([4008, 1006]).toContain(cl.code);
    for (const c of healthy) c.close();
    await Promise.all(healthy.map((c) => c.closed));
  }, 40_000);
});
