import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { zeroMaskedTextFrame } from './client-frame.js';

// A real `ws` server (which refuses unmasked client frames) reads what a raw socket writes.
let server: WebSocketServer;
let port = 0;
const received: { text: string; isBinary: boolean }[] = [];
let onMessage: (() => void) | null = null;

beforeAll(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20 });
  await new Promise<void>((r) => server.once('listening', r));
  port = (server.address() as { port: number }).port;
  server.on('connection', (ws) =>
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      received.push({ text: data.toString('utf8'), isBinary });
      onMessage?.();
    }),
  );
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** A raw client socket after a real upgrade handshake. */
async function upgraded(): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise<void>((r) => socket.once('connect', r));
  socket.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
  const head = await new Promise<string>((r) => socket.once('data', (d: Buffer) => r(d.toString('latin1'))));
  expect(head.startsWith('HTTP/1.1 101')).toBe(true);
  return socket;
}

async function sendAndRead(frames: Buffer[], count: number): Promise<{ text: string; isBinary: boolean }[]> {
  received.length = 0;
  const socket = await upgraded();
  const done = new Promise<void>((r) => (onMessage = () => received.length >= count && r()));
  socket.write(Buffer.concat(frames));
  await done;
  socket.destroy();
  return [...received];
}

describe('zero-masked client text frame', () => {
  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 70_001])('a %i-byte payload arrives at a real ws server as one text message with the same bytes', async (n) => {
    const payload = Buffer.from('x'.repeat(n));
    const frame = zeroMaskedTextFrame(payload);
    const header = n < 126 ? 6 : n < 65_536 ? 8 : 14;
    expect(frame.length).toBe(header + n);
    expect(frame.subarray(header - 4, header)).toEqual(Buffer.alloc(4)); // the zero key
    expect(await sendAndRead([frame], 1)).toEqual([{ text: payload.toString(), isBinary: false }]);
  });

  it('frames back to back arrive in order, multi-byte UTF-8 intact', async () => {
    const a = Buffer.from('{"type":"input_audio_buffer.append","audio":"AAAA"}');
    const b = Buffer.from('{"type":"conversation.item.create","item":{"content":[{"type":"input_text","text":"héllo ✓"}]}}');
    expect(await sendAndRead([zeroMaskedTextFrame(a), zeroMaskedTextFrame(b)], 2)).toEqual([
      { text: a.toString(), isBinary: false },
      { text: b.toString(), isBinary: false },
    ]);
  });
});
