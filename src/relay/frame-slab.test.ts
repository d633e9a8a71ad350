import { describe, expect, it } from 'vitest';
import { zeroMaskedTextFrame } from '../upstream/client-frame.js';
import { copyFrame, payloadOf } from './frame-slab.js';

/** What uWS hands the message callback: an ArrayBuffer of exactly the message. */
function uwsMessage(bytes: Buffer): ArrayBuffer {
  const ab = new ArrayBuffer(bytes.length);
  new Uint8Array(ab).set(bytes);
  return ab;
}

function payload(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('copyFrame: a client message copied once, already framed for the upstream', () => {
  // client-frame.test.ts proves zeroMaskedTextFrame against a real ws server: the slab copy must be byte-identical.
  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 65_537, 70_001])('a %i-byte message: the same bytes as zeroMaskedTextFrame, and payloadOf is the message', (n) => {
    const msg = payload(n, n);
    const framed = copyFrame(uwsMessage(msg));
    expect(framed.equals(zeroMaskedTextFrame(msg))).toBe(true);
    expect(payloadOf(framed).equals(msg)).toBe(true);
    expect(payloadOf(framed).buffer).toBe(framed.buffer); // a view, not a copy
  });

  it('copies do not overlap: earlier frames keep their bytes while the slab fills and rolls over', () => {
    const kept: { framed: Buffer; expected: Buffer }[] = [];
    // 6 KiB appends, as a 40 ms PCM16 append is: well over one 512 KiB slab's worth.
    for (let i = 0; i < 200; i++) {
      const msg = payload(6_000 + (i % 7), i);
      kept.push({ framed: copyFrame(uwsMessage(msg)), expected: zeroMaskedTextFrame(msg) });
    }
    for (const { framed, expected } of kept) expect(framed.equals(expected)).toBe(true);
    expect(new Set(kept.map((k) => k.framed.buffer)).size).toBeGreaterThan(1);
  });

  it('the copy outlives the message: uWS reusing its buffer does not change it', () => {
    const msg = payload(300, 3);
    const ab = uwsMessage(msg);
    const framed = copyFrame(ab);
    new Uint8Array(ab).fill(0);
    expect(payloadOf(framed).equals(msg)).toBe(true);
  });
});
