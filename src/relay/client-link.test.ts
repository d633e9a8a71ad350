import type { us_listen_socket, WebSocket as UwsSocket } from 'uWebSockets.js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig } from '../config/load.js';
import type { ProxyError } from '../protocol/errors.js';
import { uws } from '../server/uws.js';
import { ClientLink } from './client-link.js';

/**
 * The client side of a session over a real uWS socket and a real client that stops reading. A
 * single frame leaves uncorked (one write), so the link trusts uWS's answer: 1 means written, with
 * nothing buffered. These tests hold uWS to that, and hold the link to checking the buffer whenever
 * a send was not written whole.
 */

const HIGH = 64 * 1024;
const config = parseConfig(
  {
    upstream: { provider: 'openai', url: 'ws://127.0.0.1:1/v1/realtime', apiKey: 'sk-test' },
    server: { backpressure: { highWatermarkBytes: HIGH, lowWatermarkBytes: 16 * 1024, maxBufferedBytes: 256 * 1024 * 1024, slowClientGraceMs: 60_000 } },
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
  const events = { overHigh: vi.fn(() => true), flushed: vi.fn(), slow: vi.fn((_e: ProxyError) => undefined) };
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
