import type pino from 'pino';
import { ProxyError } from '../../src/protocol/errors.js';
import type { Sideband, SidebandInit } from '../../src/calls/governor.js';

/** A sideband that ends when told: by the proxy (`close`) or by the upstream (`endBy`). */
export class FakeSideband implements Sideband {
  readonly id: string;
  readonly log: pino.Logger;
  ended = false;
  started = false;
  closedWith: string | null = null;
  closedError: ProxyError | null = null;
  #record: Record<string, unknown> = {};
  readonly #onEnded: (s: Sideband) => void;

  /** The call as the governor started this sideband for it. */
  readonly call: SidebandInit['call'];
  constructor(init: SidebandInit) {
    this.id = init.id;
    this.log = init.log;
    this.#onEnded = init.onEnded;
    this.call = init.call;
  }
  start(): void {
    this.started = true;
  }
  readonly ticks: number[] = [];
  /** Set: tick() throws (a bug in the sideband's deadline checks). */
  tickThrows = false;
  tick(now: number): void {
    if (this.tickThrows) throw new Error('tick bug');
    this.ticks.push(now);
  }
  failed: string[] = [];
  fail(what: string, _err: unknown): void {
    this.failed.push(what);
    this.close(new ProxyError('internal_error', { close: 'internalError' }));
  }
  endRecord(): Record<string, unknown> {
    return this.#record;
  }
  /** What `idle` waits on (the test resolves it), and the bounds it was given. */
  busy: Promise<void> | null = null;
  readonly idleWaits: number[] = [];
  idle(timeoutMs: number): Promise<void> {
    this.idleWaits.push(timeoutMs);
    return this.busy ?? Promise.resolve();
  }
  /** Set: close() only records; the sideband ends when `finish()` is called (a response lingering). */
  lingers = false;
  close(error: ProxyError): void {
    this.closedWith = error.code;
    this.closedError = error;
    if (!this.lingers) this.finish();
  }
  finish(): void {
    this.#end({ initiator: 'proxy', upstreamCloseCode: 1000 });
  }
  /** The upstream ended the sideband with `code`. */
  endBy(code: number): void {
    this.#end({ initiator: 'upstream', upstreamCloseCode: code });
  }
  #end(record: Record<string, unknown>): void {
    if (this.ended) return;
    this.ended = true;
    this.#record = record;
    this.#onEnded(this);
  }
}
