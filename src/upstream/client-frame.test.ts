import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { clientFrame, closePayload, zeroMaskedPayload, zeroMaskedTextFrame } from './client-frame.js';
import { Opcode } from './frame-reader.js';

// A real `ws` server (which refuses unmasked client frames) reads what a raw socket writes.
let server: WebSocketServer;
let port = 0;
const received: { text: string; isBinary: boolean }[] = [];
const controls: string[] = [];
let latest: WebSocket | null = null;
let onMessage: (() => void) | null = null;

beforeAll(async () => {
  server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 1 << 20 });
  await new Promise<void>((r) => server.once('listening', r));
  port = (server.address() as { port: number }).port;
  server.on('connection', (ws) => {
    latest = ws;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      received.push({ text: data.toString('utf8'), isBinary });
      onMessage?.();
    });
    ws.on('ping', (data: Buffer) => {
      if (ws !== latest) return;
      controls.push(`ping ${data.toString()}`);
      onMessage?.();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      if (ws !== latest) return; // an earlier test's socket, destroyed
      controls.push(`close ${code} ${reason.toString()}`);
      onMessage?.();
    });
  });
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

  it('zeroMaskedPayload finds the payload behind each header size', () => {
    for (const n of [0, 1, 125, 126, 127, 65_535, 65_536, 70_001]) {
      const payload = Buffer.alloc(n, n % 251);
      const view = zeroMaskedPayload(zeroMaskedTextFrame(payload));
      expect(view.length).toBe(n);
      expect(view.equals(payload)).toBe(true);
    }
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

describe('clientFrame', () => {
  it.each([0, 1, 125, 126, 65_536])('a %i-byte text frame with a random key (an upstream where masking matters) arrives unmasked and intact', async (n) => {
    const payload = Buffer.from('é'.repeat(n >> 1) + 'x'.repeat(n & 1));
    const frame = clientFrame(Opcode.text, payload, false);
    const header = n < 126 ? 6 : n < 65_536 ? 8 : 14;
    expect(frame.length).toBe(header + n);
    if (n >= 64) expect(frame.subarray(header)).not.toEqual(payload); // masked on the wire
    expect(await sendAndRead([frame], 1)).toEqual([{ text: payload.toString(), isBinary: false }]);
  });

  it('with zeroMask the key is zero and the payload is in clear; closePayload without a reason is the code alone', () => {
    const payload = Buffer.from('ping payload');
    const frame = clientFrame(Opcode.ping, payload, true);
    expect(frame.subarray(0, 6)).toEqual(Buffer.from([0x89, 0x80 | payload.length, 0, 0, 0, 0]));
    expect(frame.subarray(6)).toEqual(payload);
    expect(closePayload(1000)).toEqual(Buffer.from([0x03, 0xe8]));
    expect(closePayload(4321, 'é')).toEqual(Buffer.from([0x10, 0xe1, 0xc3, 0xa9]));
  });

  it('two frames get different keys', () => {
    const a = clientFrame(Opcode.text, Buffer.alloc(8), false).subarray(2, 6);
    const b = clientFrame(Opcode.text, Buffer.alloc(8), false).subarray(2, 6);
    expect(a).not.toEqual(b);
  });

  it.each([true, false])('a ping and a close frame (zero key: %s) reach a real ws server as a ping and a close with code and reason', async (zero) => {
    controls.length = 0;
    latest = null; // an earlier test's socket may report its close meanwhile
    received.length = 0;
    const socket = await upgraded();
    const done = new Promise<void>((r) => (onMessage = () => controls.length >= 2 && r()));
    socket.write(Buffer.concat([clientFrame(Opcode.ping, Buffer.from('hi'), zero), clientFrame(Opcode.close, closePayload(4321, 'bye ✓'), zero)]));
    await done;
    socket.destroy();
    // ws may emit the close before the ping it read in the same chunk: the set is what counts.
    expect(controls.sort()).toEqual(['close 4321 bye ✓', 'ping hi']);
  });
});
