/** Budget periods: UTC calendar days and months. */
export type PeriodKind = 'day' | 'month';

export interface Period {
  readonly kind: PeriodKind;
  /** `d:2026-11-28` or `m:2026-11`. */
  readonly key: string;
  /** Epoch ms of the period's first instant. */
  readonly startsAt: number;
  /** Epoch ms when the next period begins (the cap resets). */
  readonly resetsAt: number;
}

const pad = (n: number) => String(n).padStart(2, '0');

export function dayPeriod(wallMs: number): Period {
  const d = new Date(wallMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  const day = d.getUTCDate();
  return {
    kind: 'day',
    key: `d:${y}-${pad(m + 1)}-${pad(day)}`,
    startsAt: Date.UTC(y, m, day),
    resetsAt: Date.UTC(y, m, day + 1),
  };
}

export function monthPeriod(wallMs: number): Period {
  const d = new Date(wallMs);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth();
  return { kind: 'month', key: `m:${y}-${pad(m + 1)}`, startsAt: Date.UTC(y, m, 1), resetsAt: Date.UTC(y, m + 1, 1) };
}

export function periodOf(kind: PeriodKind, wallMs: number): Period {
  return kind === 'day' ? dayPeriod(wallMs) : monthPeriod(wallMs);
}

/** Both periods containing `wallMs`, cached per day (period math runs once per settle, not per frame). */
export class PeriodClock {
  #day: Period | null = null;
  #month: Period | null = null;

  at(wallMs: number): { readonly day: Period; readonly month: Period } {
    if (!this.#day || wallMs < this.#day.startsAt || wallMs >= this.#day.resetsAt) {
      this.#day = dayPeriod(wallMs);
      this.#month = monthPeriod(wallMs);
    }
    return { day: this.#day, month: this.#month! };
  }
}

/** How long after a period ends its spend key is kept (Redis expires it then). */
export const PERIOD_GRACE_MS = 86_400_000;

/**
 * The periods a settlement counts into. Normally the record's own day and month. A record written
 * more than `PERIOD_GRACE_MS` after its period ended (queued through a long ledger outage) counts
 * into the period current at write time instead: its period's key is gone (Redis would delete it
 * on write), and the money was spent, so it must count against the cap in force. The usage record
 * keeps its own timestamp; `late` says the substitution happened.
 */
export function settlementPeriods(
  clock: PeriodClock,
  recordTs: number,
  nowMs: number,
): { readonly day: Period; readonly month: Period; readonly late: boolean } {
  const own = clock.at(recordTs);
  const dayGone = own.day.resetsAt + PERIOD_GRACE_MS <= nowMs;
  const monthGone = own.month.resetsAt + PERIOD_GRACE_MS <= nowMs;
  if (!dayGone && !monthGone) return { ...own, late: false };
  const current = { day: dayPeriod(nowMs), month: monthPeriod(nowMs) };
  return { day: dayGone ? current.day : own.day, month: monthGone ? current.month : own.month, late: true };
}
