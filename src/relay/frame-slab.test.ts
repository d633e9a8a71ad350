import { describe, expect, it } from 'vitest';
import { zeroMaskedPayload, zeroMaskedTextFrame } from '../upstream/client-frame.js';
import { copyFrame } from './frame-slab.js';

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
  it.each([0, 1, 125, 126, 127, 65_535, 65_536, 65_537, 70_001])('a %i-byte message: the same bytes as zeroMaskedTextFrame, and its payload view is the message', (n) => {
    const msg = payload(n, n);
    const framed = copyFrame(uwsMessage(msg));
    expect(framed.equals(zeroMaskedTextFrame(msg))).toBe(true);
    expect(zeroMaskedPayload(framed).equals(msg)).toBe(true);
    expect(zeroMaskedPayload(framed).buffer).toBe(framed.buffer); // a view, not a copy
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

  it('small frames share a slab; a frame over 64 KiB gets a buffer of its own; frames larger than a slab are whole', () => {
    const a = copyFrame(uwsMessage(payload(100, 1)));
    const b = copyFrame(uwsMessage(payload(100, 2)));
    const c = copyFrame(uwsMessage(payload(100, 3)));
    // Two of three consecutive copies share a slab even if one of them rolled over to a new one.
    expect(a.buffer === b.buffer || b.buffer === c.buffer).toBe(true);
    expect(a.buffer.byteLength).toBe(512 * 1024);
    const atLimit = copyFrame(uwsMessage(payload(64 * 1024, 4)));
    expect(atLimit.buffer.byteLength).toBe(512 * 1024); // 64 KiB exactly still comes from the slab
    const over = copyFrame(uwsMessage(payload(64 * 1024 + 1, 5)));
    expect(over.buffer.byteLength).toBe(over.length);
    const huge = payload(600_000, 6); // larger than a whole slab
    const framed = copyFrame(uwsMessage(huge));
    expect(framed.equals(zeroMaskedTextFrame(huge))).toBe(true);
  });

  it('a frame that fills the rest of the slab exactly stays in it; the next one starts a new slab', () => {
    const SLAB = 512 * 1024;
    // Where the slab's free space starts: just past the last copy, 8-byte aligned.
    const end = (f: Buffer) => (f.byteOffset + f.length + 7) & ~7;
    let last = copyFrame(uwsMessage(payload(10, 0)));
    // Leave between 200 bytes and 60 KB free (too little free space rolls over to a new slab first).
    for (let rest = SLAB - end(last); rest > 60_000 + 8 || rest < 200; rest = SLAB - end(last)) last = copyFrame(uwsMessage(payload(60_000, 1)));
    const rest = SLAB - end(last);
    // Payloads of 126..65,535 bytes take an 8-byte header.
    const msg = payload(rest - 8, 2);
    const exact = copyFrame(uwsMessage(msg));
    expect(exact.buffer).toBe(last.buffer);
    expect(exact.byteOffset + exact.length).toBe(SLAB);
    expect(zeroMaskedPayload(exact).equals(msg)).toBe(true);
    const next = copyFrame(uwsMessage(payload(10, 3)));
    expect(next.buffer).not.toBe(last.buffer);
    expect(next.byteOffset).toBe(0);
    expect(zeroMaskedPayload(exact).equals(msg)).toBe(true);
  });

  it('the copy outlives the message: uWS reusing its buffer does not change it', () => {
    const msg = payload(300, 3);
    const ab = uwsMessage(msg);
    const framed = copyFrame(ab);
    new Uint8Array(ab).fill(0);
    expect(zeroMaskedPayload(framed).equals(msg)).toBe(true);
  });
});
