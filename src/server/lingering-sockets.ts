/**
 * Client sockets the proxy ended while they still had unsent bytes (a slow consumer's 4008: its close
 * frame waits behind what it has not read). uWS calls the close callback at `end()` and hands the
 * socket back to no one, but keeps it, and its send buffer, until the buffer drains or its end
 * timeout passes. Those bytes stay in the memory budget for that long, so a client that is ended for
 * being slow, reconnects and is ended again cannot hold memory the budget does not see (until
 * 2026-12-06 they left the budget at the 4008). The timeout is an upper bound: a client that drains
 * sooner is still counted until then (conservative).
 */
export class LingeringSockets {
  readonly #lingerMs: number;
  /** Oldest first: every entry has the same linger, so they expire in order. */
  #entries: { bytes: number; until: number }[] = [];
  #bytes = 0;

  constructor(idleTimeoutSec: number) {
    this.#lingerMs = uwsEndLingerMs(idleTimeoutSec);
  }

  /** A socket ended at `now` with `bytes` still to send. */
  add(bytes: number, now: number): void {
    if (bytes <= 0) return;
    this.#entries.push({ bytes, until: now + this.#lingerMs });
    this.#bytes += bytes;
  }

  /** Bytes of ended sockets uWS may still hold at `now` (expired entries are dropped). */
  held(now: number): number {
    let gone = 0;
    while (gone < this.#entries.length && this.#entries[gone]!.until <= now) this.#bytes -= this.#entries[gone++]!.bytes;
    if (gone > 0) this.#entries = this.#entries.slice(gone);
    return this.#bytes;
  }

  get count(): number {
    return this.#entries.length;
  }
}

/**
 * How long uWS keeps a socket after `end()` at most: `end()` sets the socket's timeout to the margin
 * it derives from `idleTimeout` (4, 8 or 16 s: doubled while `idleTimeout - 2 × margin ≥ 2 × margin`,
 * up to 16; WebSocketContextData's idle-timeout components), and uSockets checks timeouts every 4 s.
 * Measured at the default idleTimeoutSec 120: closed within 16 s.
 */
export function uwsEndLingerMs(idleTimeoutSec: number): number {
  let margin = 4;
  while (idleTimeoutSec - margin * 2 >= margin * 2 && margin < 16) margin *= 2;
  return (margin + 4) * 1000;
}
