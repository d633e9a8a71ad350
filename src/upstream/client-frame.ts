import { randomFillSync } from 'node:crypto';

/**
 * A client-to-server WebSocket text frame (RFC 6455 §5.2) in one buffer: FIN + text opcode, the
 * MASK bit, and a zero masking key, so the payload goes out as it is (XOR with zero). The key only
 * protects naive intermediaries from attacker-chosen bytes a browser sends; over TLS, or to a
 * loopback upstream, there is no such intermediary (see dial.ts `maskingIsMoot`; elsewhere frames
 * are masked with a random key, `clientFrame`).
 *
 * perf: one buffer means one plain socket write per relayed frame (a header and a payload written
 * as two chunks under cork/uncork cost a writev and several objects per frame: Node's corked-write
 * bookkeeping was the largest allocation site on the audio path).
 */
export function zeroMaskedTextFrame(payload: Buffer): Buffer {
  const n = payload.length;
  const header = zeroMaskedHeaderLength(n);
  const frame = Buffer.allocUnsafe(header + n);
  writeZeroMaskedHeader(frame, n);
  payload.copy(frame, header);
  return frame;
}

/** Bytes of the header of a zero-masked text frame with an `n`-byte payload. */
export function zeroMaskedHeaderLength(n: number): number {
  return n < 126 ? 6 : n < 65_536 ? 8 : 14;
}

/**
 * Writes that header at the start of `frame` (which has room for it, see zeroMaskedHeaderLength),
 * so a caller that copies a payload in anyway can frame it in place (src/relay/frame-slab.ts).
 */
export function writeZeroMaskedHeader(frame: Buffer, n: number): void {
  frame[0] = 0x81; // FIN, opcode 1 (text)
  if (n < 126) {
    frame[1] = 0x80 | n;
  } else if (n < 65_536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(n / 0x1_0000_0000), 2);
    frame.writeUInt32BE(n >>> 0, 6);
  }
  frame.writeUInt32BE(0, zeroMaskedHeaderLength(n) - 4); // the masking key
}

/** The payload of a frame `writeZeroMaskedHeader` framed (a view: no copy). */
export function zeroMaskedPayload(frame: Buffer): Buffer {
  // The second byte's 7-bit length says which header: the length itself, or a 16- or 64-bit one after it.
  const len7 = frame[1]! & 0x7f;
  return frame.subarray(len7 < 126 ? 6 : len7 === 126 ? 8 : 14);
}

/**
 * Any client frame (a control frame, or a text frame to an upstream where masking matters) in one
 * buffer: FIN, `opcode`, and the payload masked with a fresh random key, or with a zero key when
 * `zeroMask` (the payload then goes out as it is).
 */
export function clientFrame(opcode: number, payload: Buffer, zeroMask: boolean): Buffer {
  const n = payload.length;
  const header = zeroMaskedHeaderLength(n);
  const frame = Buffer.allocUnsafe(header + n);
  writeZeroMaskedHeader(frame, n);
  frame[0] = 0x80 | opcode;
  payload.copy(frame, header);
  if (!zeroMask) {
    const key = frame.subarray(header - 4, header);
    randomFillSync(key);
    for (let i = 0; i < n; i++) frame[header + i] = frame[header + i]! ^ key[i & 3]!;
  }
  return frame;
}

/** The payload of a close frame: the code, then the reason (at most 123 bytes of UTF-8). */
export function closePayload(code: number, reason = ''): Buffer {
  const payload = Buffer.allocUnsafe(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return payload;
}
