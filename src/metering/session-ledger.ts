import type { Logger } from 'pino';
import type { Amount, MaybePromise, ReserveResult, UsageRecord } from './ledger.js';
import type { CapSet } from './limits.js';
import type { MeteringRuntime } from './runtime.js';

/**
 * A session's calls on the ledger: its reservation ids, reserve, release and settle (and the export
 * of every settled record). None throws: a ledger that fails is logged, and a reserve it could not
 * answer is `unavailable`.
 */
export class SessionLedger {
  readonly #rt: Pick<MeteringRuntime, 'ledger' | 'config' | 'wall' | 'onRecord'>;
  readonly #session: string;
  readonly #tenant: string;
  readonly #caps: CapSet;
  readonly #log: Logger;
  #seq = 0;

  constructor(rt: Pick<MeteringRuntime, 'ledger' | 'config' | 'wall' | 'onRecord'>, session: string, tenant: string, caps: CapSet, log: Logger) {
    this.#rt = rt;
    this.#session = session;
    this.#tenant = tenant;
    this.#caps = caps;
    this.#log = log;
  }

  /** A reservation id of its own (the session's id and a count). */
  nextId(): string {
    return `${this.#session}:${++this.#seq}`;
  }

  reserve(id: string, amount: Amount): MaybePromise<ReserveResult> {
    const req = { tenant: this.#tenant, id, amount, caps: this.#caps, wallMs: this.#rt.wall(), mode: this.#rt.config.admission };
    try {
      const r = this.#rt.ledger.reserve(req);
      return r instanceof Promise
        ? r.catch((err: unknown): ReserveResult => {
            this.#log.error({ err }, 'metering: reserve failed');
            return { kind: 'unavailable', reason: String(err) };
          })
        : r;
    } catch (err) {
      this.#log.error({ err }, 'metering: reserve failed');
      return { kind: 'unavailable', reason: err instanceof Error ? err.message : String(err) };
    }
  }

  release(id: string): void {
    try {
      const r = this.#rt.ledger.release(this.#tenant, id);
      if (r instanceof Promise) r.catch(() => undefined);
    } catch (err) {
      this.#log.error({ err }, 'metering: release failed');
    }
  }

  settle(reservationId: string | null, record: UsageRecord): void {
    try {
      const r = this.#rt.ledger.settle(reservationId, record);
      if (r instanceof Promise) r.catch((err: unknown) => this.#log.error({ err, ref: record.ref }, 'metering: settle failed'));
    } catch (err) {
      // A ledger that throws (the SQLite ledger keeps a record its file refuses and does not): the
      // record still goes to the export sink and the log.
      this.#log.error({ err, record }, 'metering: settle failed');
    }
    try {
      this.#rt.onRecord(record);
    } catch (err) {
      this.#log.error({ err }, 'metering: usage export failed');
    }
  }

  releaseAll(reservations: readonly string[]): void {
    for (const id of reservations) this.release(id);
  }
}
