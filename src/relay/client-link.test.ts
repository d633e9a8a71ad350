import type { us_listen_socket, WebSocket as UwsSocket } from 'uWebSockets.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig } from '../config/load.js';
import { ProxyError } from '../protocol/errors.js';
import { uws } from '../server/uws.js';
import { ClientLink } from './client-link.js';

/**
 * The client side of a session over a real uWS socket and a real client that stops reading. A
 * single frame leaves uncorked (one write), so the link trusts uWS's answer: 1 means written, with
 * nothing buffered. These tests hold uWS to that, and hold the link to checking the buffer whenever
 * a send was not written whole.
 */

const HIGH = 64 * 1024;
const LOW = 16 * 1024;
const MAX = 256 * 1024 * 1024;
const GRACE = 60_000;
const config = parseConfig(
  {
    upstream: { provider: 'openai', url: 'ws://127.0.0.1:1/v1/realtime', apiKey: 'sk-test' },
    server: { backpressure: { highWatermarkBytes: HIGH, lowWatermarkBytes: LOW, maxBufferedBytes: MAX, slowClientGraceMs: GRACE } },
  },
  '(client link test)',
  {},
);
const clock = { now: () => performance.now(), wall: () => Date.now() };

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** A uWS server whose one connection is handed out; a `ws` client connected to it, paused at once when asked. */
async function connected(paused: boolean): Promise<{ socket: UwsSocket<object>; client: WebSocket }> {
  let resolveSocket!: (ws: UwsSocket<object>) => void;
  const socket = new Promise<UwsSocket<object>>((r) => (resolveSocket = r));
  const app = uws.App().ws<object>('/*', { maxBackpressure: 512 * 1024 * 1024, maxPayloadLength: 64 * 1024 * 1024, open: (ws) => resolveSocket(ws) });
  const listen = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  cleanup.push(() => uws.us_listen_socket_close(listen));
  const port = uws.us_socket_local_port(listen);
  const client = new WebSocket(`ws://127.0.0.1:${port}/`);
  cleanup.push(() => client.terminate());
  await new Promise((r) => client.once('open', r));
  if (paused) client.pause();
  return { socket: await socket, client };
}

function link(socket: UwsSocket<object>) {
  const events = { overHigh: vi.fn(() => true), flushed: vi.fn(), slow: vi.fn((_e: ProxyError) => undefined), failed: vi.fn((_e: unknown) => undefined) };
  return { link: new ClientLink(socket, config, clock, events), events };
}

/** Runs outside any uWS callback (as the relay's flush after an upstream read does). */
const nextMacrotask = () => new Promise((r) => setTimeout(r, 0));

describe('client link', () => {
  it('a single frame that is written whole leaves nothing buffered (uWS answers 1), so no watermark is crossed', async () => {
    const { socket, client } = await connected(false);
    const got = new Promise<Buffer>((r) => client.once('message', (d: Buffer) => r(d)));
    const { link: l, events } = link(socket);
    await nextMacrotask();
    l.send(Buffer.from('{"type":"response.output_audio.delta","delta":"AAAA"}'));
    await Promise.resolve();
    expect(socket.getBufferedAmount()).toBe(0);
    expect(events.flushed).toHaveBeenCalledTimes(1);
    expect(events.overHigh).not.toHaveBeenCalled();
    expect((await got).toString()).toContain('output_audio.delta');
  });

  it('a single frame the client cannot take is buffered by uWS and crosses the high watermark: the link pauses the upstream', async () => {
    const { socket } = await connected(true);
    const { link: l, events } = link(socket);
    await nextMacrotask();
    // Far more than loopback socket buffers absorb: uWS keeps the rest and answers 0.
    l.send(Buffer.alloc(48 * 1024 * 1024, 0x41));
    await Promise.resolve();
    expect(socket.getBufferedAmount()).toBeGreaterThan(HIGH);
    expect(events.overHigh).toHaveBeenCalledTimes(1);
    expect(events.slow).not.toHaveBeenCalled();
  });

  it('a batch leaves in one cork and is checked against the watermark afterwards (inside a cork every send answers 1)', async () => {
    const { socket } = await connected(true);
    const { link: l, events } = link(socket);
    await nextMacrotask();
    for (let i = 0; i < 6; i++) l.send(Buffer.alloc(8 * 1024 * 1024, 0x41));
    await Promise.resolve();
    expect(socket.getBufferedAmount()).toBeGreaterThan(HIGH);
    expect(events.flushed).toHaveBeenCalledTimes(1);
    expect(events.overHigh).toHaveBeenCalledTimes(1);
  });
});

describe('client link over a real socket: closing', () => {
  it('end() closes the client with the code and the reason, cut to the 123 bytes a close frame holds', async () => {
    const { socket, client } = await connected(false);
    const closed = new Promise<{ code: number; reason: string }>((r) => client.once('close', (code, reason) => r({ code, reason: reason.toString('utf8') })));
    const { link: l } = link(socket);
    l.end(4008, `slow_consumer ${'x'.repeat(200)}`);
    expect(l.present).toBe(false);
    expect(l.closeCode).toBe(4008);
    const got = await closed;
    expect(got.code).toBe(4008);
    expect(got.reason).toBe(`slow_consumer ${'x'.repeat(200)}`.slice(0, 123));
    // A second end (the session's teardown after the peer closed) touches the closed socket not at all.
    expect(() => l.end(1000, 'again')).not.toThrow();
    expect(l.closeCode).toBe(4008);
  });

  it('after the client closed (uWS close callback: gone), sends are dropped and no socket call is made', async () => {
    const { socket, client } = await connected(false);
    const { link: l, events } = link(socket);
    const closedByClient = new Promise<number>((r) => {
      // The proxy side learns of the close through uWS; here the link is told directly.
      client.once('close', (code) => r(code));
    });
    client.close(1000);
    await closedByClient;
    l.gone(1000);
    expect(l.present).toBe(false);
    expect(l.closeCode).toBe(1000);
    l.send('{"type":"late"}');
    await Promise.resolve();
    expect(events.flushed).not.toHaveBeenCalled();
    expect(l.heldBytes()).toBe(0);
    expect(() => l.end(1011, 'x')).not.toThrow();
    expect(l.closeCode).toBe(1000);
  });
});

/**
 * The same link against a small fake of the three uWS calls it makes (send, cork,
 * getBufferedAmount, end): every answer uWS can give, on demand, and calls recorded.
 */
class FakeSocket {
  readonly sent: { data: Buffer | string; isBinary: boolean; compress: boolean; corked: boolean }[] = [];
  readonly ended: { code: number; reason: string }[] = [];
  corks = 0;
  buffered = 0;
  /** Answers of the next sends (1 written, 0 backpressure, 2 dropped); 1 when empty. */
  answers: number[] = [];
  /** Set to make every socket call throw (a socket closed in this tick). */
  closed = false;
  #corked = false;

  #check(): void {
    if (this.closed) throw new Error('Invalid access of closed uWS.WebSocket/SSLWebSocket.');
  }
  send(data: Buffer | string, isBinary: boolean, compress: boolean): number {
    this.#check();
    this.sent.push({ data, isBinary, compress, corked: this.#corked });
    return this.answers.shift() ?? 1;
  }
  cork(fn: () => void): this {
    this.#check();
    this.corks++;
    this.#corked = true;
    try {
      fn();
    } finally {
      this.#corked = false;
    }
    return this;
  }
  getBufferedAmount(): number {
    this.#check();
    return this.buffered;
  }
  end(code: number, reason: string): void {
    this.#check();
    this.ended.push({ code, reason });
  }
}

function fakeLink(opts: { socket?: FakeSocket | null; overHigh?: boolean } = {}) {
  const socket = opts.socket === undefined ? new FakeSocket() : opts.socket;
  let t = 1_000;
  const fakeClock = { now: () => t, wall: () => Date.now(), advance: (ms: number) => void (t += ms) };
  const order: string[] = [];
  const events = {
    overHigh: vi.fn(() => {
      order.push('overHigh');
      return opts.overHigh ?? true;
    }),
    flushed: vi.fn(() => void order.push('flushed')),
    slow: vi.fn((_e: ProxyError) => void order.push('slow')),
    failed: vi.fn((_e: unknown) => void order.push('failed')),
  };
  const l = new ClientLink(socket as unknown as UwsSocket<object>, config, fakeClock, events);
  return { link: l, socket: socket!, events, clock: fakeClock, order };
}

/** Lets the link's scheduled flush (a microtask) run. */
const microtasks = () => new Promise<void>((r) => setImmediate(r));

describe('client link: state', () => {
  it('is present with a socket, absent without one (a session the proxy runs on its own)', () => {
    expect(fakeLink().link.present).toBe(true);
    expect(fakeLink({ socket: null }).link.present).toBe(false);
  });

  it('has no close code until the connection ends', () => {
    expect(fakeLink().link.closeCode).toBeNull();
  });

  it('a link without a socket ignores sends, holds nothing, cannot drain and ends quietly', async () => {
    const { link: l, events } = fakeLink({ socket: null });
    l.send('{"type":"x"}');
    l.send(Buffer.from('y'));
    expect(l.heldBytes()).toBe(0);
    await microtasks();
    l.flush();
    expect(events.flushed).not.toHaveBeenCalled();
    expect(l.drained()).toBe(false);
    l.end(1000, 'bye');
    expect(l.closeCode).toBeNull();
  });
});

describe('client link: held bytes (the memory budget)', () => {
  it('counts queued frames in bytes (UTF-8 for strings) plus what the socket buffers', async () => {
    const { link: l, socket } = fakeLink();
    socket.buffered = 1000;
    expect(l.heldBytes()).toBe(1000);
    l.send('é€😀'); // 2 + 3 + 4 bytes
    l.send(Buffer.alloc(10));
    expect(l.heldBytes()).toBe(1000 + 9 + 10);
    await microtasks();
    // Flushed: only the socket's buffer is left.
    expect(l.heldBytes()).toBe(1000);
  });

  it('a socket closed in this tick is read as holding nothing (never throws)', () => {
    const { link: l, socket } = fakeLink();
    l.send(Buffer.alloc(7));
    socket.closed = true;
    expect(l.heldBytes()).toBe(7);
    // The client's close callback follows in the same tick: the queued frame is never written.
    l.gone(1006);
  });
});

describe('client link: sending', () => {
  it('a string leaves as its UTF-8 bytes in a text frame, uncompressed', async () => {
    const { link: l, socket } = fakeLink();
    l.send('{"t":"é"}');
    await microtasks();
    expect(socket.sent).toHaveLength(1);
    const [f] = socket.sent;
    expect(Buffer.isBuffer(f!.data)).toBe(true);
    expect((f!.data as Buffer).toString('utf8')).toBe('{"t":"é"}');
    expect(f!.isBinary).toBe(false);
    expect(f!.compress).toBe(false);
  });

  it('a Buffer leaves as it is (no copy)', async () => {
    const { link: l, socket } = fakeLink();
    const buf = Buffer.from('{"type":"response.output_audio.delta"}');
    l.send(buf);
    await microtasks();
    expect(socket.sent[0]!.data).toBe(buf);
  });

  it('nothing leaves before the turn ends; then everything sent in the turn leaves together, in order, in one cork', async () => {
    const { link: l, socket, events } = fakeLink();
    const scheduled = vi.spyOn(globalThis, 'queueMicrotask');
    try {
      l.send('a');
      l.send('b');
      l.send(Buffer.from('c'));
      expect(socket.sent).toHaveLength(0);
      // One flush scheduled per turn, however many frames.
      expect(scheduled).toHaveBeenCalledTimes(1);
    } finally {
      scheduled.mockRestore();
    }
    await microtasks();
    expect(socket.corks).toBe(1);
    expect(socket.sent.map((f) => [String(f.data), f.corked, f.isBinary, f.compress])).toEqual([
      ['a', true, false, false],
      ['b', true, false, false],
      ['c', true, false, false],
    ]);
    expect(events.flushed).toHaveBeenCalledTimes(1);
  });

  it('a single frame is written without a cork', async () => {
    const { link: l, socket } = fakeLink();
    l.send('only');
    await microtasks();
    expect(socket.corks).toBe(0);
    expect(socket.sent.map((f) => f.corked)).toEqual([false]);
  });

  it('each turn gets its own flush: frames sent after a flush leave in the next one', async () => {
    const { link: l, socket, events } = fakeLink();
    l.send('1');
    await microtasks();
    l.send('2');
    await microtasks();
    l.send('3');
    l.send('4');
    await microtasks();
    expect(socket.sent.map((f) => String(f.data))).toEqual(['1', '2', '3', '4']);
    expect(events.flushed).toHaveBeenCalledTimes(3);
  });

  it('a flush with nothing queued writes nothing and reports no batch', () => {
    const { link: l, socket, events } = fakeLink();
    l.flush();
    expect(socket.sent).toHaveLength(0);
    expect(socket.corks).toBe(0);
    expect(events.flushed).not.toHaveBeenCalled();
  });

  it('an explicit flush (the session ending) sends at once; the scheduled one then finds nothing', async () => {
    const { link: l, socket, events } = fakeLink();
    l.send('error event');
    l.flush();
    expect(socket.sent.map((f) => String(f.data))).toEqual(['error event']);
    await microtasks();
    expect(socket.sent).toHaveLength(1);
    expect(events.flushed).toHaveBeenCalledTimes(1);
  });
});

describe('client link: backpressure', () => {
  it('a single frame written whole (uWS answers 1) is not checked against the watermarks', async () => {
    const { link: l, socket, events } = fakeLink();
    socket.buffered = MAX + 1; // not consulted
    socket.answers = [1];
    l.send('x');
    await microtasks();
    expect(events.overHigh).not.toHaveBeenCalled();
    expect(events.slow).not.toHaveBeenCalled();
    expect(events.flushed).toHaveBeenCalledTimes(1);
  });

  it('a single frame left partly buffered (uWS answers 0) over the high watermark pauses the upstream', async () => {
    const { link: l, socket, events, order } = fakeLink();
    socket.buffered = HIGH + 1;
    socket.answers = [0];
    l.send('x');
    await microtasks();
    expect(order).toEqual(['flushed', 'overHigh']);
    expect(events.slow).not.toHaveBeenCalled();
  });

  it('exactly at the high watermark is not over it', async () => {
    const { link: l, socket, events } = fakeLink();
    socket.buffered = HIGH;
    socket.answers = [0];
    l.send('x');
    await microtasks();
    expect(events.overHigh).not.toHaveBeenCalled();
    expect(events.slow).not.toHaveBeenCalled();
  });

  it('a batch is always checked afterwards (inside a cork every send answers 1)', async () => {
    const { link: l, socket, events } = fakeLink();
    socket.buffered = HIGH + 1;
    socket.answers = [1, 1];
    l.send('a');
    l.send('b');
    await microtasks();
    expect(events.overHigh).toHaveBeenCalledTimes(1);
  });

  it('a batch under the high watermark does not pause anything', async () => {
    const { link: l, socket, events } = fakeLink();
    socket.buffered = 0;
    l.send('a');
    l.send('b');
    await microtasks();
    expect(events.overHigh).not.toHaveBeenCalled();
    expect(events.slow).not.toHaveBeenCalled();
  });

  it('a buffer over the hard cap ends the session as slow_consumer, without pausing first', async () => {
    const { link: l, socket, events, order } = fakeLink();
    socket.buffered = MAX + 1;
    socket.answers = [0];
    l.send('x');
    await microtasks();
    expect(order).toEqual(['flushed', 'slow']);
    const err = events.slow.mock.calls[0]![0];
    expect(err).toBeInstanceOf(ProxyError);
    expect(err.code).toBe('slow_consumer');
    expect(err.closeCode).toBe(4008);
    expect(err.message).toBe('The client send buffer exceeded its limit.');
  });

  it('exactly at the hard cap is not over it (only over the high watermark)', async () => {
    const { link: l, socket, events } = fakeLink();
    socket.buffered = MAX;
    socket.answers = [0];
    l.send('x');
    await microtasks();
    expect(events.slow).not.toHaveBeenCalled();
    expect(events.overHigh).toHaveBeenCalledTimes(1);
  });

  it('a single frame uWS dropped (answers 2) ends the session as slow_consumer, buffer unchecked', async () => {
    const { link: l, socket, events, order } = fakeLink();
    socket.buffered = HIGH + 1;
    socket.answers = [2];
    l.send('x');
    await microtasks();
    expect(order).toEqual(['flushed', 'slow']);
    const err = events.slow.mock.calls[0]![0];
    expect(err.code).toBe('slow_consumer');
    expect(err.closeCode).toBe(4008);
    expect(err.message).toBe('The client send buffer overflowed.');
  });

  it('a batch with any frame dropped ends the session as slow_consumer (the other frames still go out)', async () => {
    const { link: l, socket, events, order } = fakeLink();
    socket.buffered = HIGH + 1;
    socket.answers = [1, 2, 1];
    l.send('a');
    l.send('b');
    l.send('c');
    await microtasks();
    expect(socket.sent).toHaveLength(3);
    expect(order).toEqual(['flushed', 'slow']);
    expect(events.slow.mock.calls[0]![0].message).toBe('The client send buffer overflowed.');
  });

  it('a batch whose last frame is dropped is slow too', async () => {
    const { link: l, socket, events } = fakeLink();
    socket.answers = [1, 2];
    l.send('a');
    l.send('b');
    await microtasks();
    expect(events.slow).toHaveBeenCalledTimes(1);
  });

  it('once slow, the link queues nothing more and reports slow once: the closing error cannot overflow again (2026-12-05: it recursed until the stack overflowed)', async () => {
    for (const overflow of ['dropped', 'over the cap'] as const) {
      const { link: l, socket, events } = fakeLink();
      // The session's reaction to slow: queue its error event and flush it at once, as RelaySession.close does.
      events.slow.mockImplementation(() => {
        l.send('{"type":"error"}');
        l.flush();
      });
      socket.buffered = overflow === 'dropped' ? 0 : MAX + 1;
      socket.answers = overflow === 'dropped' ? [2, 2, 2] : [0, 0, 0];
      l.send('big');
      await microtasks();
      expect(events.slow, overflow).toHaveBeenCalledTimes(1);
      expect(socket.sent.map((f) => String(f.data)), overflow).toEqual(['big']);
      l.send('later');
      await microtasks();
      expect(socket.sent, overflow).toHaveLength(1);
      expect(l.heldBytes(), overflow).toBe(socket.buffered);
    }
  });

  it('a socket call that throws during a flush (it runs on a microtask, outside uWS) is reported as failed, not thrown', async () => {
    const { link: l, socket, events, order } = fakeLink();
    l.send('x');
    socket.closed = true;
    await microtasks();
    expect(order).toEqual(['failed']);
    expect(String(events.failed.mock.calls[0]![0])).toContain('Invalid access of closed uWS.WebSocket');
  });
});

describe('client link: slow-client grace', () => {
  async function overHighAt(f: ReturnType<typeof fakeLink>): Promise<number> {
    f.socket.buffered = HIGH + 1;
    f.socket.answers = [0];
    const since = f.clock.now();
    f.link.send('x');
    await microtasks();
    return since;
  }

  it('a client over the high watermark longer than the grace is ended as slow_consumer; at the grace exactly it is not', async () => {
    const f = fakeLink();
    const since = await overHighAt(f);
    expect(f.link.tick(since)).toBeNull();
    expect(f.link.tick(since + GRACE)).toBeNull();
    const err = f.link.tick(since + GRACE + 1);
    expect(err).toBeInstanceOf(ProxyError);
    expect(err!.code).toBe('slow_consumer');
    expect(err!.closeCode).toBe(4008);
    expect(err!.message).toBe(`The client stayed over ${HIGH} buffered bytes for ${GRACE} ms.`);
  });

  it('no grace runs while the client is under the high watermark', () => {
    const f = fakeLink();
    expect(f.link.tick(f.clock.now() + 10 * GRACE)).toBeNull();
  });

  it('the grace starts only when the upstream was paused now (not again while already paused)', async () => {
    const f = fakeLink({ overHigh: false });
    const since = await overHighAt(f);
    expect(f.events.overHigh).toHaveBeenCalledTimes(1);
    expect(f.link.tick(since + GRACE + 1)).toBeNull();
  });

  it('the grace counts from the first pause: a later pause restarts it', async () => {
    const f = fakeLink();
    const first = await overHighAt(f);
    f.clock.advance(GRACE / 2);
    const second = await overHighAt(f);
    expect(second).toBe(first + GRACE / 2);
    expect(f.link.tick(first + GRACE + 1)).toBeNull();
    expect(f.link.tick(second + GRACE + 1)).not.toBeNull();
  });

  it('draining below the low watermark lets the upstream resume and stops the grace', async () => {
    const f = fakeLink();
    const since = await overHighAt(f);
    f.socket.buffered = LOW + 1;
    expect(f.link.drained()).toBe(false);
    f.socket.buffered = HIGH + 1;
    expect(f.link.tick(since + GRACE + 1)).not.toBeNull();
    f.socket.buffered = LOW;
    expect(f.link.drained()).toBe(true);
    expect(f.link.tick(since + GRACE + 1)).toBeNull();
    f.socket.buffered = 0;
    expect(f.link.drained()).toBe(true);
  });

  it('a client back at or under the high watermark by the tick (the kernel took the backlog, no drain event) is not slow: its grace stops (2026-12-06)', async () => {
    const f = fakeLink();
    const since = await overHighAt(f);
    f.socket.buffered = HIGH;
    expect(f.link.tick(since + GRACE + 1)).toBeNull();
    // The grace is over, not paused: over the high watermark again (the upstream still paused, so no new pause) is not slow.
    f.socket.buffered = HIGH + 1;
    expect(f.link.tick(since + GRACE + 2)).toBeNull();
  });

  it('a client still over the high watermark at the tick is slow; a socket closed in this tick reads as empty', async () => {
    const f = fakeLink();
    const since = await overHighAt(f);
    f.socket.buffered = HIGH + 1;
    expect(f.link.tick(since + GRACE + 1)).not.toBeNull();
    f.socket.closed = true;
    expect(f.link.tick(since + GRACE + 1)).toBeNull();
    expect(f.link.heldBytes()).toBe(0);
  });

  it('discard (the client left) drops what is queued and stops the grace', async () => {
    const f = fakeLink();
    const since = await overHighAt(f);
    f.socket.buffered = 0;
    f.link.send(Buffer.alloc(100));
    f.link.discard();
    expect(f.link.heldBytes()).toBe(0);
    expect(f.link.tick(since + GRACE + 1)).toBeNull();
    await microtasks();
    expect(f.socket.sent).toHaveLength(1); // only the frame before the discard
  });
});

describe('client link: closing', () => {
  it('end() closes once with the code and a reason of at most 123 characters, then the link is absent', async () => {
    const { link: l, socket, events } = fakeLink();
    l.end(4008, 'r'.repeat(200));
    expect(socket.ended).toEqual([{ code: 4008, reason: 'r'.repeat(123) }]);
    expect(l.present).toBe(false);
    expect(l.closeCode).toBe(4008);
    l.end(1000, 'again');
    expect(socket.ended).toHaveLength(1);
    expect(l.closeCode).toBe(4008);
    l.send('after');
    await microtasks();
    expect(socket.sent).toHaveLength(0);
    expect(events.flushed).not.toHaveBeenCalled();
  });

  it('end() records what uWS still held for the client (kept in the memory budget until uWS lets it go); 0 before', () => {
    const f = fakeLink();
    expect(f.link.unsentAtEnd).toBe(0);
    f.socket.buffered = 12_345;
    f.link.end(4008, 'slow_consumer');
    expect(f.link.unsentAtEnd).toBe(12_345);
  });

  it('end() on a socket the peer closed in the same tick does not throw, and still records the code', () => {
    const { link: l, socket } = fakeLink();
    socket.closed = true;
    expect(() => l.end(4008, 'slow_consumer')).not.toThrow();
    expect(l.closeCode).toBe(4008);
    expect(l.present).toBe(false);
  });

  it('frames queued before end() are not written to the closed socket', async () => {
    const { link: l, socket } = fakeLink();
    l.send('queued');
    l.end(1000, '');
    await microtasks();
    expect(socket.sent).toHaveLength(0);
  });

  it('gone() (the client closed) records its code; nothing more is sent, drained or ended', async () => {
    const { link: l, socket, events } = fakeLink();
    l.send('queued');
    l.gone(1001);
    expect(l.present).toBe(false);
    expect(l.closeCode).toBe(1001);
    socket.closed = true; // uWS invalidates the socket after its close callback
    await microtasks();
    expect(events.flushed).not.toHaveBeenCalled();
    expect(l.drained()).toBe(false);
    expect(() => l.end(1011, 'x')).not.toThrow();
    expect(l.closeCode).toBe(1001);
    // What was queued is still counted until discarded (the session discards it).
    expect(l.heldBytes()).toBe(6);
  });
});
