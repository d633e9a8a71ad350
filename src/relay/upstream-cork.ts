import type { Duplex } from 'node:stream';

/**
 * Batches the writes to one upstream socket per event-loop turn: the first write of a turn corks
 * the socket, a microtask uncorks it, so every frame relayed in that turn leaves in one `writev`
 * (one syscall, one TLS record batch) instead of one per frame. The client side does the same
 * with uWS `cork` (RelaySession's outbox).
 *
 * `ws` frames each message with its own cork/uncork pair; node counts nested corks, so those
 * inner pairs only flush when this outer one is released.
 */
export class MicrotaskCork {
  #socket: Duplex | null = null;
  #corked = false;

  /** The upstream's TCP/TLS socket (from the `ws` client's `upgrade` response). */
  attach(socket: Duplex): void {
    this.#socket = socket;
  }

  /** Call before a write: corks the socket until the end of the current turn. */
  hold(): void {
    if (this.#corked) return;
    const socket = this.#socket;
    if (socket === null || socket.destroyed) return;
    socket.cork();
    this.#corked = true;
    queueMicrotask(this.#release);
  }

  readonly #release = (): void => {
    this.#corked = false;
    const socket = this.#socket;
    if (socket !== null && !socket.destroyed) socket.uncork();
  };
}
