import { describe, expect, it } from 'vitest';
import { BodyBuffer } from './body-buffer.js';

const chunkOf = (bytes: Buffer): ArrayBuffer => bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;

describe('BodyBuffer', () => {
  it('keeps the bytes in order whatever the chunk sizes, across every growth', () => {
    const whole = Buffer.from(Array.from({ length: 70_000 }, (_, i) => i % 251));
    const body = new BodyBuffer(100_000);
    let at = 0;
    for (const size of [1, 1, 3, 1024, 5000, 1, 20_000]) {
      body.append(chunkOf(whole.subarray(at, at + size)));
      at += size;
    }
    body.append(chunkOf(whole.subarray(at)));
    expect(body.length).toBe(whole.length);
    expect(body.take().equals(whole)).toBe(true);
    expect(body.length).toBe(0);
  });

  it('an empty body is an empty buffer; empty chunks add nothing', () => {
    const body = new BodyBuffer(10);
    body.append(new ArrayBuffer(0));
    expect(body.take().length).toBe(0);
  });

  it('a body of its expected length (Content-Length) in small chunks ends in a buffer of exactly that length', () => {
    const body = new BodyBuffer(3000);
    for (let i = 0; i < 3000; i++) body.append(chunkOf(Buffer.from([i % 256])));
    const taken = body.take();
    expect(taken.length).toBe(3000);
    // No slack past the expected length: the view covers its whole backing buffer.
    expect(taken.buffer.byteLength).toBe(3000);
  });

  it('clear drops what was received', () => {
    const body = new BodyBuffer(10);
    body.append(chunkOf(Buffer.from('abc')));
    body.clear();
    expect(body.length).toBe(0);
    expect(body.take().length).toBe(0);
  });
});
