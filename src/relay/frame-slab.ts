import { writeZeroMaskedHeader, zeroMaskedHeaderLength } from '../upstream/client-frame.js';

/**
 * Client frames are copied out of uWS (it neuters `message` when the callback returns) into
 * slices of a shared slab: one allocation per 512 KiB of traffic instead of one per frame
 * (a fresh 6 KiB Buffer costs more than the relay's whole per-frame work). A slab lives until
 * its last slice is collected; slices are forwarded at once, so slabs turn over quickly. A frame
 * that is to wait (queued behind an async verdict, or for the upstream to open) is copied out
 * first (ownCopy).
 *
 * Each copy lands behind the header of a zero-masked upstream text frame (client-frame.ts): a
 * frame relayed unchanged (an audio append, in practice) leaves as that slice, with no second copy
 * or allocation to frame it.
 */
const SLAB_BYTES = 512 * 1024;
const SLAB_MAX_FRAME = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabOffset = 0;

/** A uWS message copied out, already framed for the upstream (its payload: `zeroMaskedPayload`). */
export function copyFrame(message: ArrayBuffer): Buffer {
  const n = message.byteLength;
  const size = zeroMaskedHeaderLength(n) + n;
  let framed: Buffer;
  if (n > SLAB_MAX_FRAME) {
    framed = Buffer.allocUnsafeSlow(size);
  } else {
    if (slabOffset + size > SLAB_BYTES) {
      slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
      slabOffset = 0;
    }
    framed = slab.subarray(slabOffset, slabOffset + size);
    slabOffset = (slabOffset + size + 7) & ~7;
  }
  writeZeroMaskedHeader(framed, n);
  framed.set(new Uint8Array(message), size - n);
  return framed;
}

/**
 * A copy of `bytes` in a buffer of its own (not pooled), for a slice that is to be kept a while (a
 * frame queued behind an async verdict, or sent before the upstream opened): a kept slice keeps its
 * whole slab alive, other sessions' frames with it. Until 2026-12-06 queued frames kept their
 * slices: one 12-byte frame queued per ~1 MiB of another session's traffic pinned a slab each, 24 MiB
 * for 48 frames counted (test/security/redteam-15-slab-pinning.test.ts).
 */
export function ownCopy(bytes: Buffer): Buffer {
  const own = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(own);
  return own;
}
