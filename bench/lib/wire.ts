/**
 * Bench event layout. Every event the bench creates starts with
 * `{"type":"<type>","event_id":"<letter><16 digits>"` where the digits are the sender's
 * CLOCK_MONOTONIC time in ns (`process.hrtime`, shared by every process on the machine). The
 * receiver reads them at a fixed offset without parsing. Relays that forward bytes keep the layout;
 * one that re-serialises (`JSON.stringify(JSON.parse(x))`) keeps it too, since the frames are
 * compact and key order survives.
 */

export const TS_DIGITS = 16;
const TYPE_START = 9; // `{"type":"`
const EVENT_ID_GAP = 15; // `","event_id":"` + the id's letter

export function nowNs(): number {
  return Number(process.hrtime.bigint());
}

/** Byte offset of the timestamp digits in an event of this type. */
export function tsOffset(type: string): number {
  return TYPE_START + type.length + EVENT_ID_GAP;
}

export function writeTs(buf: Buffer, offset: number, ns: number): void {
  let v = ns;
  for (let i = offset + TS_DIGITS - 1; i >= offset; i--) {
    buf[i] = 48 + (v % 10);
    v = Math.floor(v / 10);
  }
}

/** The timestamp at `offset`, or -1 when the bytes are not 16 digits. */
export function readTs(buf: Buffer, offset: number): number {
  if (buf.length < offset + TS_DIGITS) return -1;
  let v = 0;
  for (let i = offset; i < offset + TS_DIGITS; i++) {
    const d = buf[i]! - 48;
    if (d < 0 || d > 9) return -1;
    v = v * 10 + d;
  }
  return v;
}

/** The event type of a bench-layout frame (or any compact frame whose first member is `type`), else ''. */
export function typeOf(buf: Buffer): string {
  // `{"type":"`
  if (buf[0] !== 0x7b || buf[2] !== 0x74 || buf[6] !== 0x22 || buf[7] !== 0x3a || buf[8] !== 0x22) return '';
  const end = buf.indexOf(0x22, TYPE_START);
  return end < 0 ? '' : buf.toString('latin1', TYPE_START, end);
}

/** True when `buf` begins with `prefix` (both ASCII). */
export function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}

const ZERO_TS = '0'.repeat(TS_DIGITS);

/** Serialises an event in bench layout with a zero timestamp (patch it with `writeTs`). */
export function benchEvent(type: string, letter: string, body: Record<string, unknown>): Buffer {
  return Buffer.from(JSON.stringify({ type, event_id: `${letter}${ZERO_TS}`, ...body }), 'utf8');
}

/** 24 kHz PCM16 mono, `ms` long: a voiced tone with a little noise, like a real microphone chunk. */
export function pcm16(ms: number, seed = 1): Buffer {
  const n = Math.round((ms * 24_000) / 1000);
  const buf = Buffer.alloc(n * 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const noise = ((x >>> 0) / 0xffffffff - 0.5) * 800;
    const s = Math.sin((2 * Math.PI * 180 * i) / 24_000) * 6000 + Math.sin((2 * Math.PI * 360 * i) / 24_000) * 3000 + noise;
    buf.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(s))), i * 2);
  }
  return buf;
}

/** Prefix shared by every bench `input_audio_buffer.append` (the upstream's fast path). */
export const APPEND_TYPE = 'input_audio_buffer.append';
export const APPEND_PREFIX = Buffer.from(`{"type":"${APPEND_TYPE}","event_id":"b`, 'latin1');
export const APPEND_TS_OFFSET = tsOffset(APPEND_TYPE);

export function appendEvent(ms: number, seed = 1): Buffer {
  return benchEvent(APPEND_TYPE, 'b', { audio: pcm16(ms, seed).toString('base64') });
}

/** Deterministic PRNG (xorshift32) so runs offer the same load. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

/** The session.update every bench session sends first (the load generator's, the relay-path bench's). */
export const SESSION_UPDATE = {
  session: {
    type: 'realtime',
    // Compliant with the strict shipped policy's instruction lock, so a governed run rewrites nothing.
    instructions: "You are Acme's customer-support agent. Stay on the topic of Acme orders, billing and products. Be concise.",
    output_modalities: ['audio'],
    audio: {
      input: { format: { type: 'audio/pcm', rate: 24_000 }, turn_detection: null },
      output: { format: { type: 'audio/pcm', rate: 24_000 }, voice: 'marin' },
    },
  },
};
