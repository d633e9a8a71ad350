import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { capturedLog, type LogLine } from '../../test/support/captured-log.js';
import { rawUpstream, wireCloseFrame, wireFrame, type RawUpstreamConnection } from '../../test/support/ws-wire.js';
import { parseConfig } from '../config/load.js';
import type { ProxyError } from '../protocol/errors.js';
import { UPSTREAM_CREDENTIALS_MESSAGE } from '../upstream/auth-refusal.js';
import { zeroMaskedTextFrame } from '../upstream/client-frame.js';
import { UpstreamLink } from './upstream-link.js';

/**
 * Mutation survivors of src/relay/upstream-link.ts (twenty-second session): the link driven
 * directly against upstreams on loopback that write raw bytes (`rawUpstream`, decoded by `ws`):
 * frames queued before open (bounded, in order), backpressure once open, the close handshake,
 * pings and pongs on the server's timer, pause and resume, and each refusal of the dial. The
 * clock is the test's; only the bounded close wait and the connect timeout run on real timers.
 */

const TEXT = 0x1;
const BINARY = 0x2;
const PING = 0x9;
const PONG = 0xa;
const QUEUED_OVERHEAD = 256;

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Recorded {
  readonly opened: number[];
  readonly messages: { text: string; isBinary: boolean }[];
  readonly closed: { code: number; reason: string }[];
  readonly failed: ProxyError[];
  readonly callbackFailed: { what: string; err: unknown }[];
}

interface LinkOptions {
  readonly url: string;
  readonly limit?: number;
  readonly connectTimeoutMs?: number;
  readonly pingIntervalMs?: number;
  readonly pongTimeoutMs?: number;
  readonly validateUtf8?: boolean;
  /** Replaces a callback (e.g. one that throws). */
  readonly on?: Partial<{ opened(ms: number): void; message(data: Buffer, isBinary: boolean): void; closed(code: number, reason: string): void; failed(e: ProxyError): void }>;
}

function link(o: LinkOptions): { link: UpstreamLink; got: Recorded; lines: LogLine[]; clock: { t: number } } {
  const config = parseConfig(
    {
      server: { backpressure: { upstreamMaxBufferedBytes: o.limit ?? 32 * 1024 * 1024 } },
      upstream: {
        provider: 'openai',
        url: o.url,
        apiKey: 'sk-x',
        connectTimeoutMs: o.connectTimeoutMs ?? 5_000,
        pingIntervalMs: o.pingIntervalMs ?? 1_000,
        pongTimeoutMs: o.pongTimeoutMs ?? 500,
        validateUtf8: o.validateUtf8 ?? true,
      },
    },
    '(test)',
    {},
  );
  const clock = { t: 1_000 };
  const { log, lines } = capturedLog('debug');
  const got: Recorded = { opened: [], messages: [], closed: [], failed: [], callbackFailed: [] };
  const l = new UpstreamLink({ url: o.url, headers: {} }, config, { now: () => clock.t, wall: () => clock.t }, log, {
    opened: (ms) => {
      got.opened.push(ms);
      o.on?.opened?.(ms);
    },
    message: (data, isBinary) => (o.on?.message ? o.on.message(data, isBinary) : void got.messages.push({ text: data.toString('utf8'), isBinary })),
    closed: (code, reason) => (o.on?.closed ? o.on.closed(code, reason) : void got.closed.push({ code, reason })),
    failed: (e) => (o.on?.failed ? o.on.failed(e) : void got.failed.push(e)),
    callbackFailed: (what, err) => void got.callbackFailed.push({ what, err }),
  });
  cleanups.push(() => l.close());
  return { link: l, got, lines, clock };
}

/** A raw upstream whose upgrades wait for the test: `next()` resolves with the connection and its 101. */
async function heldUpstream(): Promise<{ url: string; next(): Promise<{ conn: RawUpstreamConnection; response101: string }> }> {
  const waiting: { conn: RawUpstreamConnection; response101: string }[] = [];
  const up = await rawUpstream((conn, response101) => void waiting.push({ conn, response101 }));
  cleanups.push(() => up.close());
  return {
    url: up.url,
    next: async () => {
      await vi.waitFor(() => expect(waiting.length).toBeGreaterThan(0), { timeout: 5_000, interval: 5 });
      return waiting.shift()!;
    },
  };
}

/** An upstream already answered: the link is open when this resolves. */
async function openLink(o: Omit<LinkOptions, 'url'> = {}, withThe101: Buffer = Buffer.alloc(0)) {
  const up = await heldUpstream();
  const l = link({ ...o, url: up.url });
  l.link.dial();
  const { conn, response101 } = await up.next();
  conn.socket.write(Buffer.concat([Buffer.from(response101, 'latin1'), withThe101]));
  await vi.waitFor(() => expect(l.got.opened).toHaveLength(1), { timeout: 5_000, interval: 5 });
  return { ...l, conn };
}

/** A server that answers every request with `answer` (or never, when null); counts the sockets it saw closed. */
async function httpAnswering(answer: ((request: string) => string) | null): Promise<{ url: string; closedSockets: () => number }> {
  let closed = 0;
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => {
    sockets.push(s);
    s.on('error', () => undefined);
    s.on('close', () => void closed++);
    let request = '';
    s.on('data', (d: Buffer) => {
      request += d.toString('latin1');
      if (answer && request.includes('\r\n\r\n')) s.end(answer(request));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  return { url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/realtime`, closedSockets: () => closed };
}

/** The frames the link wrote (client frames: masked), read from raw bytes: ws's decoder stops at the first close frame. */
function framesFromLink(bytes: Buffer): { opcode: number; payload: Buffer }[] {
  const frames: { opcode: number; payload: Buffer }[] = [];
  let i = 0;
  while (i + 6 <= bytes.length) {
    let n = bytes[i + 1]! & 0x7f;
    let h = 2;
    if (n === 126) {
      n = bytes.readUInt16BE(i + 2);
      h = 4;
    }
    const key = bytes.subarray(i + h, i + h + 4);
    const payload = Buffer.from(bytes.subarray(i + h + 4, i + h + 4 + n));
    for (let k = 0; k < payload.length; k++) payload[k]! ^= key[k % 4]!;
    frames.push({ opcode: bytes[i]! & 0x0f, payload });
    i += h + 4 + n;
  }
  return frames;
}

const wait = (assertion: () => void) => vi.waitFor(assertion, { timeout: 5_000, interval: 5 });

describe('frames sent before the upstream opened', () => {
  it('are queued in order up to the limit, each counting 256 bytes more; a frame past it is refused; all leave on open', async () => {
    const up = await heldUpstream();
    // Room for three 10-byte frames exactly.
    const { link: l, got, clock } = link({ url: up.url, limit: 3 * (10 + QUEUED_OVERHEAD) });
    l.dial();
    const { conn, response101 } = await up.next();
    const first = Buffer.from('aaaaaaaaaa');
    expect(l.send(first)).toBeNull();
    // The queue holds its own copy: the caller's buffer may be reused.
    first.fill('z');
    expect(l.send(Buffer.from('bbbbbbbbbb'))).toBeNull();
    expect(l.heldBytes).toBe(2 * (10 + QUEUED_OVERHEAD));
    expect(l.send(Buffer.from('cccccccccc'))).toBeNull();
    expect(l.heldBytes).toBe(3 * (10 + QUEUED_OVERHEAD));
    const refused = l.send(Buffer.from('d'));
    expect(refused?.code).toBe('upstream_backpressure');
    expect(refused?.message).toBe('Too much data was sent before the upstream connection opened.');
    expect(l.heldBytes).toBe(3 * (10 + QUEUED_OVERHEAD));
    expect(l.open).toBe(false);
    expect(l.connectMs).toBeNull();
    clock.t = 1_250;
    conn.socket.write(response101);
    await wait(() => expect(conn.fromProxy.messages).toEqual(['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc']));
    expect(got.opened).toEqual([250]);
    expect(l.connectMs).toBe(250);
    expect(l.open).toBe(true);
    expect(l.heldBytes).toBe(0);
    // Once open a frame goes out at once, after the queued ones.
    expect(l.send(Buffer.from('e'))).toBeNull();
    await wait(() => expect(conn.fromProxy.messages).toEqual(['aaaaaaaaaa', 'bbbbbbbbbb', 'cccccccccc', 'e']));
    expect(conn.fromProxy.errors).toEqual([]);
  });

  it('a link closed before the upstream answered drops its queue, aborts the dial and reports nothing', async () => {
    const up = await heldUpstream();
    const { link: l, got } = link({ url: up.url });
    l.dial();
    const { conn, response101 } = await up.next();
    expect(l.send(Buffer.from('queued'))).toBeNull();
    l.close();
    expect(l.heldBytes).toBe(0);
    expect(l.send(Buffer.from('after'))).toBeNull();
    expect(l.heldBytes).toBe(0);
    await conn.socketClosed;
    conn.socket.destroyed || conn.socket.write(response101);
    expect(got).toEqual({ opened: [], messages: [], closed: [], failed: [], callbackFailed: [] });
    expect(conn.fromProxy.messages).toEqual([]);
  });
});

describe('the dial refused', () => {
  for (const [status, closeCode] of [
    [400, 1011],
    [404, 1011],
    [499, 1011],
    [429, 1013],
    [500, 1013],
    [503, 1013],
  ] as const) {
    it(`HTTP ${status} on the upgrade: upstream_rejected naming the status, close ${closeCode}`, async () => {
      const server = await httpAnswering(() => `HTTP/1.1 ${status} No\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      const { link: l, got } = link({ url: server.url });
      l.dial();
      await wait(() => expect(got.failed).toHaveLength(1));
      const e = got.failed[0]!;
      expect({ code: e.code, closeCode: e.closeCode, message: e.message, details: e.details }).toEqual({
        code: 'upstream_rejected',
        closeCode,
        message: `The Realtime upstream refused the connection with HTTP ${status}.`,
        details: { status },
      });
      expect(got.closed).toEqual([]);
      expect(l.open).toBe(false);
    });
  }

  it("HTTP 401 and 403: the proxy's own key refused, close 4101 with the fixed message", async () => {
    for (const status of [401, 403]) {
      const server = await httpAnswering(() => `HTTP/1.1 ${status} No\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
      const { link: l, got } = link({ url: server.url });
      l.dial();
      await wait(() => expect(got.failed).toHaveLength(1));
      const e = got.failed[0]!;
      expect({ code: e.code, closeCode: e.closeCode, message: e.message, details: e.details }).toEqual({ code: 'upstream_rejected', closeCode: 4101, message: UPSTREAM_CREDENTIALS_MESSAGE, details: { status } });
    }
  });

  it('a refused connection: upstream_unavailable, logged as a warning without reaching the error', async () => {
    const server = await httpAnswering(null);
    const url = server.url;
    await new Promise<void>((r) => setImmediate(r));
    // A port nothing listens on: the listener closed.
    const closedPort = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const { link: l, got, lines } = link({ url: url.replace(/:\d+\//, `:${closedPort}/`) });
    l.dial();
    await wait(() => expect(got.failed).toHaveLength(1));
    expect(got.failed[0]!.code).toBe('upstream_unavailable');
    expect(got.failed[0]!.closeCode).toBe(1013);
    expect(lines.filter((x) => x['msg'] === 'upstream connect failed').map((x) => [x['level'], String(x['err']).includes('ECONNREFUSED')])).toEqual([[40, true]]);
  });

  it('a URL that cannot be dialled: upstream_unavailable at once, logged as an error, reported once', async () => {
    const { link: l, got, lines } = link({ url: 'http://127.0.0.1:9/v1/realtime', connectTimeoutMs: 50 });
    l.dial();
    expect(got.failed.map((e) => e.code)).toEqual(['upstream_unavailable']);
    expect(lines.filter((x) => x['msg'] === 'upstream dial failed').map((x) => [x['level'], (x['err'] as { message?: string } | undefined)?.message])).toEqual([
      [50, 'The upstream URL must be ws:// or wss:// (got http:).'],
    ]);
    // Past the connect timeout nothing more is reported.
    await new Promise((r) => setTimeout(r, 120));
    expect(got.failed).toHaveLength(1);
  });

  it('an upstream that never answers the upgrade: upstream_unavailable naming the timeout, the request aborted', async () => {
    const server = await httpAnswering(null);
    const { link: l, got } = link({ url: server.url, connectTimeoutMs: 100 });
    l.dial();
    await wait(() => expect(got.failed).toHaveLength(1));
    expect(got.failed[0]!.code).toBe('upstream_unavailable');
    expect(got.failed[0]!.message).toBe('The Realtime upstream did not answer within 100 ms.');
    await wait(() => expect(server.closedSockets()).toBe(1));
    await new Promise((r) => setTimeout(r, 50));
    expect(got.failed).toHaveLength(1);
    expect(got.closed).toEqual([]);
  });

  it('a failed callback that throws is reported as callbackFailed("upstream dial")', async () => {
    const boom = new Error('boom');
    const { link: l, got } = link({
      url: 'http://127.0.0.1:9/v1/realtime',
      on: {
        failed: () => {
          throw boom;
        },
      },
    });
    l.dial();
    expect(got.callbackFailed).toEqual([{ what: 'upstream dial', err: boom }]);
  });
});

describe('an open link', () => {
  it('the connect timeout no longer applies once open', async () => {
    const { got } = await openLink({ connectTimeoutMs: 100 });
    await new Promise((r) => setTimeout(r, 300));
    expect(got.failed).toEqual([]);
    expect(got.closed).toEqual([]);
  });

  it('delivers text and binary messages, a 1 MiB one whole; frames go out zero-masked to loopback; `framed` is written as it is', async () => {
    const big = 'x'.repeat(1024 * 1024);
    const { link: l, got, conn } = await openLink({}, Buffer.concat([wireFrame('{"a":1}', { opcode: TEXT }), wireFrame(Buffer.from([1, 2, 3]), { opcode: BINARY })]));
    conn.socket.write(wireFrame(big, { opcode: TEXT }));
    await wait(() => expect(got.messages).toHaveLength(3));
    expect(got.messages[0]).toEqual({ text: '{"a":1}', isBinary: false });
    expect(got.messages[1]).toEqual({ text: Buffer.from([1, 2, 3]).toString('utf8'), isBinary: true });
    expect(got.messages[2]!.text === big).toBe(true);
    const raw: Buffer[] = [];
    // A copy, before rawUpstream's decoder unmasks the chunk in place.
    conn.socket.prependListener('data', (d: Buffer) => void raw.push(Buffer.from(d)));
    expect(l.send(Buffer.from('plain'))).toBeNull();
    expect(l.send(Buffer.from('ignored'), zeroMaskedTextFrame(Buffer.from('prebuilt')))).toBeNull();
    await wait(() => expect(conn.fromProxy.messages).toEqual(['plain', 'prebuilt']));
    const bytes = Buffer.concat(raw);
    // FIN + text, masked, length 5, a zero masking key, the payload as it is.
    expect(bytes.subarray(0, 11)).toEqual(Buffer.concat([Buffer.from([0x81, 0x85, 0, 0, 0, 0]), Buffer.from('plain')]));
  });

  it('to a host that is not loopback (an IPv4-mapped address) over ws:, frames are masked with a key that is not zero', async () => {
    const up = await heldUpstream();
    const mapped = up.url.replace('127.0.0.1', '[::ffff:127.0.0.1]');
    const l = link({ url: mapped });
    l.link.dial();
    const { conn, response101 } = await up.next();
    conn.socket.write(response101);
    await wait(() => expect(l.got.opened).toHaveLength(1));
    const raw: Buffer[] = [];
    // A copy, before rawUpstream's decoder unmasks the chunk in place.
    conn.socket.prependListener('data', (d: Buffer) => void raw.push(Buffer.from(d)));
    expect(l.link.send(Buffer.from('plain'))).toBeNull();
    await wait(() => expect(conn.fromProxy.messages).toEqual(['plain']));
    const bytes = Buffer.concat(raw);
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0x81, 0x85]));
    expect(bytes.readUInt32BE(2)).not.toBe(0);
    expect(bytes.subarray(6, 11)).not.toEqual(Buffer.from('plain'));
  });

  it('invalid UTF-8 is a protocol violation (1007) when validated, a message when not', async () => {
    const bad = Buffer.from([0x7b, 0xff, 0x7d]);
    const checked = await openLink({}, wireFrame(bad, { opcode: TEXT }));
    await wait(() => expect(checked.got.closed).toEqual([{ code: 1006, reason: '' }]));
    expect(checked.got.messages).toEqual([]);
    await wait(() => expect(checked.conn.fromProxy.closes).toEqual([{ code: 1007, reason: '' }]));
    const unchecked = await openLink({ validateUtf8: false }, wireFrame(bad, { opcode: TEXT }));
    await wait(() => expect(unchecked.got.messages).toHaveLength(1));
  });

  it('a protocol violation: a warning, the close frame and FIN to the upstream, closed(1006) at once and once', async () => {
    // A masked server frame breaks RFC 6455 §5.1.
    const { link: l, got, lines, conn } = await openLink({}, wireFrame('x', { opcode: TEXT, mask: true }));
    await wait(() => expect(got.closed).toEqual([{ code: 1006, reason: '' }]));
    expect(l.open).toBe(false);
    expect(lines.filter((x) => x['msg'] === 'upstream broke the WebSocket protocol').map((x) => [x['level'], x['closeCode']])).toEqual([[40, 1002]]);
    await wait(() => expect(conn.fromProxy.closes).toEqual([{ code: 1002, reason: '' }]));
    conn.socket.destroy();
    await conn.socketClosed;
    await new Promise((r) => setTimeout(r, 20));
    expect(got.closed).toHaveLength(1);
  });

  it('answers a ping with its payload; after its own close frame it writes nothing, not even a second close', async () => {
    const { link: l, conn } = await openLink();
    const raw: Buffer[] = [];
    conn.socket.prependListener('data', (d: Buffer) => void raw.push(Buffer.from(d)));
    conn.socket.write(wireFrame('are you there', { opcode: PING }));
    await wait(() => expect(conn.fromProxy.pongs).toEqual(['are you there']));
    l.close();
    await wait(() => expect(conn.fromProxy.closes).toEqual([{ code: 1000, reason: '' }]));
    conn.socket.write(wireFrame('still?', { opcode: PING }));
    conn.socket.write(wireCloseFrame(1000));
    await conn.socketClosed;
    expect(framesFromLink(Buffer.concat(raw))).toEqual([
      { opcode: PONG, payload: Buffer.from('are you there') },
      { opcode: 0x8, payload: Buffer.from([0x03, 0xe8]) },
    ]);
  });

  it('after the upstream began the close, frames sent are held, never written behind the close frame', async () => {
    const { link: l, lines, conn } = await openLink();
    const raw: Buffer[] = [];
    conn.socket.prependListener('data', (d: Buffer) => void raw.push(Buffer.from(d)));
    const fin = new Promise<void>((r) => conn.socket.once('end', () => r()));
    conn.socket.write(wireCloseFrame(1001));
    await fin;
    // Held with the frames of a link not open (bounded by the same limit), not written to the ended socket.
    expect(l.send(Buffer.from('too late'))).toBeNull();
    expect(l.heldBytes).toBe('too late'.length + QUEUED_OVERHEAD);
    conn.socket.write(wireFrame('ping?', { opcode: PING }));
    await new Promise((r) => setTimeout(r, 50));
    conn.socket.end();
    await conn.socketClosed;
    expect(framesFromLink(Buffer.concat(raw))).toEqual([{ opcode: 0x8, payload: Buffer.from([0x03, 0xe9]) }]);
    expect(lines.filter((x) => x['msg'] === 'upstream socket error')).toEqual([]);
  });

  it('a reset from the upstream is logged as a socket error and closes 1006', async () => {
    const { got, lines, conn } = await openLink();
    conn.socket.resetAndDestroy();
    await wait(() => expect(got.closed).toEqual([{ code: 1006, reason: '' }]));
    expect(lines.filter((x) => x['msg'] === 'upstream socket error').map((x) => [x['level'], String(x['err']).includes('ECONNRESET')])).toEqual([[40, true]]);
  });

  it('echoes the upstream close code, ends TCP, and reports the code and reason once the socket closes', async () => {
    const { link: l, got, conn } = await openLink({ pingIntervalMs: 1_000, pongTimeoutMs: 500 });
    // A ping awaits its pong when the close comes: a closed link no longer times it out.
    l.tick(1_000);
    await wait(() => expect(conn.fromProxy.pings).toEqual(['']));
    const fin = new Promise<void>((r) => conn.socket.once('end', () => r()));
    conn.socket.write(wireCloseFrame(4321, 'bye now'));
    await fin;
    // The link ended its side (FIN) at once, and hears of the end only when the socket closes.
    expect(conn.fromProxy.closes).toEqual([{ code: 4321, reason: '' }]);
    expect(got.closed).toEqual([]);
    expect(l.open).toBe(false);
    expect(l.tick(1_000_000)).toBeNull();
    conn.socket.end();
    await wait(() => expect(got.closed).toEqual([{ code: 4321, reason: 'bye now' }]));
    expect(l.send(Buffer.from('late'))).toBeNull();
  });

  it('a close frame without a code is answered by one without a code (1005 is never sent)', async () => {
    const { got, conn } = await openLink();
    conn.socket.write(wireFrame(Buffer.alloc(0), { opcode: 0x8 }));
    await wait(() => expect(conn.fromProxy.closes).toEqual([{ code: 1005, reason: '' }]));
    expect(conn.fromProxy.errors).toEqual([]);
    conn.socket.end();
    await wait(() => expect(got.closed).toEqual([{ code: 1005, reason: '' }]));
  });

  it('a socket that closes without a close frame is 1006', async () => {
    const { link: l, got, conn } = await openLink();
    conn.socket.destroy();
    await wait(() => expect(got.closed).toEqual([{ code: 1006, reason: '' }]));
    expect(l.open).toBe(false);
  });

  it('close(): one close 1000; an upstream that never finishes the close is cut off after the bounded wait; messages no longer delivered', async () => {
    const { link: l, got, conn } = await openLink();
    l.close();
    l.close();
    conn.socket.write(wireFrame('late', { opcode: TEXT }));
    // rawUpstream never closes by itself: the link destroys its socket after the bounded wait.
    await conn.socketClosed;
    expect(conn.fromProxy.closes).toEqual([{ code: 1000, reason: '' }]);
    expect(conn.fromProxy.pings).toEqual([]);
    expect(got.messages).toEqual([]);
    // Nothing more is queued or sent.
    expect(l.send(Buffer.from('after close'))).toBeNull();
    expect(l.heldBytes).toBe(0);
  });

  it('a throwing opened, message or closed callback is reported with what it was doing', async () => {
    const boom = new Error('boom');
    const throwing = () => {
      throw boom;
    };
    const opened = await (async () => {
      const up = await heldUpstream();
      const l = link({ url: up.url, on: { opened: throwing } });
      l.link.dial();
      const { conn, response101 } = await up.next();
      conn.socket.write(response101);
      await wait(() => expect(l.got.callbackFailed).toHaveLength(1));
      return l.got.callbackFailed;
    })();
    expect(opened).toEqual([{ what: 'upstream open', err: boom }]);
    const m = await openLink({ on: { message: throwing, closed: throwing } });
    m.conn.socket.write(wireFrame('{}', { opcode: TEXT }));
    await wait(() => expect(m.got.callbackFailed).toEqual([{ what: 'upstream message', err: boom }]));
    m.conn.socket.destroy();
    await wait(() => expect(m.got.callbackFailed).toEqual([{ what: 'upstream message', err: boom }, { what: 'upstream close', err: boom }]));
  });
});

describe('backpressure once open', () => {
  it('a frame is refused when the bytes waiting in the socket plus its own pass the limit; up to the limit it is written', async () => {
    const limit = 1024 * 1024;
    const { link: l, conn } = await openLink({ limit });
    // The upstream stops reading: the kernel's buffers fill, then the socket's own.
    conn.socket.pause();
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let refused: ProxyError | null = null;
    for (let i = 0; i < 2_000 && refused === null; i++) {
      const before = l.heldBytes;
      refused = l.send(chunk);
      if (refused === null) expect(before + chunk.length).toBeLessThanOrEqual(limit);
      else expect(before + chunk.length).toBeGreaterThan(limit);
      if (refused === null && i % 16 === 15) await new Promise((r) => setImmediate(r));
    }
    expect(refused?.code).toBe('upstream_backpressure');
    expect(refused?.message).toBe('The client sends faster than the upstream accepts.');
    // Exactly up to the limit is still written; one byte past it is not.
    const held = l.heldBytes;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(limit);
    expect(l.send(Buffer.alloc(limit - held, 0x62))).toBeNull();
    expect(l.heldBytes).toBeGreaterThan(held);
    expect(l.send(Buffer.from('c'))?.code).toBe('upstream_backpressure');
  });
});

describe('pause and resume', () => {
  it('pause stops delivery (frames already read wait and count as held); resume delivers them on a later turn, never inside the call', async () => {
    const frames = Buffer.concat([wireFrame('one', { opcode: TEXT }), wireFrame('two', { opcode: TEXT }), wireFrame('three', { opcode: TEXT })]);
    let l!: UpstreamLink;
    const texts: string[] = [];
    const opened = await openLink({
      on: {
        message: (data) => {
          texts.push(data.toString('utf8'));
          // Paused from inside the callback, as a session does when its client is slow.
          if (texts.length === 1) expect(l.pause()).toBe(true);
        },
      },
    });
    l = opened.link;
    opened.conn.socket.write(frames);
    await wait(() => expect(texts).toEqual(['one']));
    expect(l.paused).toBe(true);
    expect(l.pause()).toBe(false);
    expect(l.heldBytes).toBeGreaterThan(0);
    l.resume();
    l.resume();
    expect(l.paused).toBe(false);
    expect(texts).toEqual(['one']);
    await wait(() => expect(texts).toEqual(['one', 'two', 'three']));
    expect(l.heldBytes).toBe(0);
    // Reads go on after the resume.
    opened.conn.socket.write(wireFrame('four', { opcode: TEXT }));
    await wait(() => expect(texts).toEqual(['one', 'two', 'three', 'four']));
  });

  it('while paused the socket is not read: what the upstream sends stays in TCP, not in the link; all of it arrives after the resume', async () => {
    const { link: l, got, conn } = await openLink();
    expect(l.pause()).toBe(true);
    const frame = wireFrame('y'.repeat(64 * 1024), { opcode: TEXT });
    // 16 MiB: more than loopback's buffers hold, so the upstream's own socket keeps some.
    for (let i = 0; i < 256; i++) conn.socket.write(frame);
    await wait(() => expect(conn.socket.writableLength).toBeGreaterThan(0));
    await new Promise((r) => setTimeout(r, 50));
    expect(conn.socket.writableLength).toBeGreaterThan(0);
    expect(l.heldBytes).toBeLessThan(1024 * 1024);
    expect(got.messages).toEqual([]);
    l.resume();
    await wait(() => expect(got.messages).toHaveLength(256));
  });

  it('frames waiting in a paused link are dropped when the socket closes: nothing is delivered after closed', async () => {
    let l!: UpstreamLink;
    const texts: string[] = [];
    const opened = await openLink({
      on: {
        message: (data) => {
          texts.push(data.toString('utf8'));
          if (texts.length === 1) l.pause();
        },
      },
    });
    l = opened.link;
    opened.conn.socket.write(Buffer.concat([wireFrame('one', { opcode: TEXT }), wireFrame('two', { opcode: TEXT })]));
    await wait(() => expect(texts).toEqual(['one']));
    expect(l.heldBytes).toBeGreaterThan(0);
    opened.conn.socket.destroy();
    await wait(() => expect(opened.got.closed).toEqual([{ code: 1006, reason: '' }]));
    expect(l.heldBytes).toBe(0);
    l.resume();
    await new Promise((r) => setTimeout(r, 20));
    expect(texts).toEqual(['one']);
  });

  it('a pause again before the scheduled resume keeps the frames waiting; a resume without a pause does nothing', async () => {
    const texts: string[] = [];
    let l!: UpstreamLink;
    const opened = await openLink({
      on: {
        message: (data) => {
          texts.push(data.toString('utf8'));
          if (texts.length === 1) l.pause();
        },
      },
    });
    l = opened.link;
    l.resume();
    opened.conn.socket.write(Buffer.concat([wireFrame('one', { opcode: TEXT }), wireFrame('two', { opcode: TEXT })]));
    await wait(() => expect(texts).toEqual(['one']));
    l.resume();
    expect(l.pause()).toBe(true);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 20));
    expect(texts).toEqual(['one']);
    l.resume();
    await wait(() => expect(texts).toEqual(['one', 'two']));
  });

  it('a link paused before it opened reads nothing sent with the 101 until resumed; a closed link does not pause', async () => {
    const up = await heldUpstream();
    const { link: l, got } = link({ url: up.url });
    l.dial();
    expect(l.pause()).toBe(true);
    const { conn, response101 } = await up.next();
    conn.socket.write(Buffer.concat([Buffer.from(response101, 'latin1'), wireFrame('early', { opcode: TEXT })]));
    await wait(() => expect(got.opened).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 20));
    expect(got.messages).toEqual([]);
    l.resume();
    await wait(() => expect(got.messages).toEqual([{ text: 'early', isBinary: false }]));
    l.close();
    expect(l.pause()).toBe(false);
  });

  it('a pause and resume before the link opened change nothing', async () => {
    const up = await heldUpstream();
    const { link: l, got } = link({ url: up.url });
    l.dial();
    expect(l.pause()).toBe(true);
    l.resume();
    await new Promise((r) => setImmediate(r));
    const { conn, response101 } = await up.next();
    conn.socket.write(Buffer.concat([Buffer.from(response101, 'latin1'), wireFrame('first', { opcode: TEXT })]));
    await wait(() => expect(got.messages).toEqual([{ text: 'first', isBinary: false }]));
    expect(got.callbackFailed).toEqual([]);
  });

  it('a message callback that throws while frames are delivered on resume is reported', async () => {
    const boom = new Error('boom');
    let l!: UpstreamLink;
    let n = 0;
    const opened = await openLink({
      on: {
        message: () => {
          n++;
          if (n === 1) l.pause();
          else throw boom;
        },
      },
    });
    l = opened.link;
    opened.conn.socket.write(Buffer.concat([wireFrame('one', { opcode: TEXT }), wireFrame('two', { opcode: TEXT })]));
    await wait(() => expect(n).toBe(1));
    l.resume();
    await wait(() => expect(opened.got.callbackFailed).toEqual([{ what: 'upstream message', err: boom }]));
  });
});

describe('liveness on the server tick', () => {
  it('nothing before the link opens', async () => {
    const up = await heldUpstream();
    const { link: l } = link({ url: up.url });
    l.dial();
    await up.next();
    expect(l.tick(1_000_000)).toBeNull();
  });

  it('a ping once the interval has passed (not before), one at a time; an unanswered one past the pong timeout ends the link', async () => {
    const { link: l, conn } = await openLink({ pingIntervalMs: 1_000, pongTimeoutMs: 500 });
    expect(l.tick(999)).toBeNull();
    expect(l.tick(1_000)).toBeNull();
    expect(l.tick(1_200)).toBeNull();
    await wait(() => expect(conn.fromProxy.pings).toEqual(['']));
    expect(l.tick(1_500)).toBeNull();
    const e = l.tick(1_501);
    expect(e?.code).toBe('upstream_timeout');
    expect(e?.message).toBe('The Realtime upstream did not answer a ping within 500 ms.');
    await conn.socketClosed;
    expect(conn.fromProxy.pings).toEqual(['']);
  });

  it('a pong, or data (alive), clears the wait: the next ping goes at the next interval', async () => {
    const { link: l, conn } = await openLink({ pingIntervalMs: 1_000, pongTimeoutMs: 10_000 });
    l.tick(1_000);
    await wait(() => expect(conn.fromProxy.pings).toHaveLength(1));
    l.tick(2_000);
    expect(conn.fromProxy.pings).toHaveLength(1);
    conn.socket.write(wireFrame('', { opcode: PONG }));
    await wait(() => {
      l.tick(2_000);
      expect(conn.fromProxy.pings).toHaveLength(2);
    });
    l.alive();
    // The next ping is due an interval after the last one (2 000), not before.
    l.tick(2_999);
    l.tick(3_000);
    await wait(() => expect(conn.fromProxy.pings).toHaveLength(3));
    expect(l.tick(13_000)).toBeNull();
    expect(l.tick(13_001)?.code).toBe('upstream_timeout');
  });

  it('while paused an awaited pong cannot be read: its wait counts from the resume', async () => {
    const { link: l, conn } = await openLink({ pingIntervalMs: 1_000, pongTimeoutMs: 500 });
    l.tick(1_000);
    await wait(() => expect(conn.fromProxy.pings).toHaveLength(1));
    l.pause();
    expect(l.tick(1_600)).toBeNull();
    expect(l.tick(2_000)).toBeNull();
    l.resume();
    expect(l.tick(2_500)).toBeNull();
    expect(l.tick(2_501)?.code).toBe('upstream_timeout');
  });
});
