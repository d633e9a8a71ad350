import { writeZeroMaskedHeader, zeroMaskedHeaderLength } from '../upstream/client-frame.js';

/**
 * Client frames are copied out of uWS (it neuters `message` when the callback returns) into
 * slices of a shared slab: one allocation per 512 KiB of traffic instead of one per frame
 * (a fresh 6 KiB Buffer costs more than the relay's whole per-frame work). A slab lives until
 * its last slice is collected; slices are forwarded at once, so slabs turn over quickly.
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

