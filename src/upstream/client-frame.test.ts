import { describe, expect, it } from 'vitest';
import { Receiver } from 'ws';
import { zeroMaskedTextFrame } from './client-frame.js';

/** What a server-side `ws` receiver (which requires masked client frames) reads from `bytes`. */
function decode(bytes: Buffer): { messages: string[]; error: string | null } {
  const messages: string[] = [];
  let error: string | null = null;
  const receiver = new Receiver({ isServer: true, maxPayload: 1 << 20 });
  receiver.on('message', (data: Buffer, isBinary: boolean) => messages.push(`${isBinary ? 'binary' : 'text'}:${data.toString('utf8')}`));
  receiver.on('error', (err: Error) => (error = err.message));
  receiver.write(bytes);
  return { messages, error };
}

describe('zero-masked client text frame', () => {
  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 70_001])('a %i-byte payload decodes as one masked text message with the same bytes', (n) => {
    const payload = Buffer.from('x'.repeat(n));
    const frame = zeroMaskedTextFrame(payload);
    const header = n < 126 ? 6 : n < 65_536 ? 8 : 14;
    expect(frame.length).toBe(header + n);
    expect(frame[0]).toBe(0x81);
    expect(frame[1]! & 0x80).toBe(0x80); // masked, as RFC 6455 requires of a client
    expect(frame.subarray(header - 4, header)).toEqual(Buffer.alloc(4)); // the zero key
    expect(decode(frame)).toEqual({ messages: [`text:${payload.toString()}`], error: null });
  });

  it('frames back to back decode in order, multi-byte UTF-8 intact', () => {
    const a = Buffer.from('{"type":"input_audio_buffer.append","audio":"AAAA"}');
    const b = Buffer.from('{"type":"conversation.item.create","item":{"content":[{"type":"input_text","text":"héllo ✓"}]}}');
    expect(decode(Buffer.concat([zeroMaskedTextFrame(a), zeroMaskedTextFrame(b)]))).toEqual({ messages: [`text:${a}`, `text:${b}`], error: null });
  });
});
