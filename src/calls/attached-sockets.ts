/**
 * A call's client sockets (`?call_id=`: the app's own sideband, a supervisor's dashboard), counted
 * per call on this process. They are not metered (the proxy's own sideband meters the call) and so
 * hold no concurrent-session slot of the tenant's: this bound keeps what one call can hold
 * (upstream sockets, buffers) from growing without end. Until 2026-12-06 (thirteenth session) a
 * tenant limited to one concurrent session held a call and any number of such sockets.
 */
export const MAX_CLIENT_SOCKETS_PER_CALL = 4;

export class AttachedSockets {
  readonly #byCall = new Map<string, number>();
  readonly #max: number;

  constructor(max = MAX_CLIENT_SOCKETS_PER_CALL) {
    this.#max = max;
  }

  /** The call has as many client sockets as allowed. */
  full(callId: string): boolean {
    return (this.#byCall.get(callId) ?? 0) >= this.#max;
  }

  /** Counts one more socket on the call; null when it is full. The returned release counts it out, once. */
  attach(callId: string): (() => void) | null {
    const n = this.#byCall.get(callId) ?? 0;
    if (n >= this.#max) return null;
    this.#byCall.set(callId, n + 1);
    let counted = true;
    return () => {
      if (!counted) return;
      counted = false;
      const left = (this.#byCall.get(callId) ?? 1) - 1;
      if (left <= 0) this.#byCall.delete(callId);
      else this.#byCall.set(callId, left);
    };
  }

  /** Calls with sockets counted (for tests and metrics). */
  get calls(): number {
    return this.#byCall.size;
  }
}
