/**
 * Client frames are copied out of uWS (it neuters `message` when the callback returns) into
 * slices of a shared slab: one allocation per 512 KiB of traffic instead of one per frame
 * (a fresh 6 KiB Buffer costs more than the relay's whole per-frame work). A slab lives until
 * its last slice is collected; slices are forwarded at once, so slabs turn over quickly.
 */
const SLAB_BYTES = 512 * 1024;
const SLAB_MAX_FRAME = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabOffset = 0;

/** A copy of a uWS message that outlives the callback: a slab slice, or its own buffer when large. */
export function copyFrame(message: ArrayBuffer): Buffer {
  const n = message.byteLength;
  if (n > SLAB_MAX_FRAME) {
    const own = Buffer.allocUnsafeSlow(n);
    own.set(new Uint8Array(message));
    return own;
  }
  if (slabOffset + n > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabOffset = 0;
  }
  const buf = slab.subarray(slabOffset, slabOffset + n);
  buf.set(new Uint8Array(message));
  slabOffset = (slabOffset + n + 7) & ~7;
  return buf;
}
