import type { HoldLink } from './hold-link.js';
import type { CapName, CapSet } from './limits.js';
import type { Nanos } from './money.js';
import type { Period, PeriodKind } from './periods.js';
import type { ModalityTokens } from './pricing.js';

export type MaybePromise<T> = T | Promise<T>;

/**
 * Which rule produced a usage record:
 * - `response.done` / `transcription.completed`: the upstream's usage (exact);
 * - `client_gone_estimate`: the client left mid-response and no `response.done` came within the
 *   linger bound; billed at the response's reservation (worst case);
 * - `upstream_drop_estimate`: the upstream connection ended mid-response; billed likewise;
 * - `session_end_estimate`: the proxy ended the session (shutdown, limit) mid-response; likewise;
 * - `unreadable_usage_estimate`: the response's `response.done` came with a usage that cannot be
 *   priced (null, no counts, counts that are not numbers); billed at its reservation likewise;
 * - `translation_audio`: a translation session's input audio as forwarded (src/metering/translation.ts);
 * - `worker_lost_estimate`: the relay worker holding the reservation died (`server.workers`); the
 *   primary bills each reservation it held at its amount (it cannot tell a running response from
 *   a create never sent).
 */
export type SettledBy =
  | 'response.done'
  | 'transcription.completed'
  | 'client_gone_estimate'
  | 'upstream_drop_estimate'
  | 'session_end_estimate'
  | 'unreadable_usage_estimate'
  | 'worker_lost_estimate'
  /**
   * A translation session's input audio, as the proxy forwarded it upstream (base64 PCM16 at 24 kHz),
   * at the model's per-minute price: the upstream reports no usage for translation sessions.
   */
  | 'translation_audio';

/** One billed unit: a response (`response.done`) or an input transcription. Never content. */
export interface UsageRecord {
  /** Wall-clock epoch ms when the usage was settled. */
  readonly ts: number;
  readonly tenant: string;
  readonly session: string;
  readonly source: 'response' | 'transcription';
  /** Response id (`resp_…`) or, for transcriptions, the input item id (`item_…`). */
  readonly ref: string;
  readonly model: string;
  /** Response status (completed, cancelled, incomplete, failed); null for transcriptions. */
  readonly status: string | null;
  readonly costNanos: Nanos;
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cachedTokens: number;
  readonly totalTokens: number;
  readonly input: ModalityTokens | null;
  readonly cached: ModalityTokens | null;
  readonly output: { readonly text: number; readonly audio: number } | null;
  /** Audio seconds of duration-billed transcription. */
  readonly seconds: number | null;
  /**
   * Not the upstream's exact count: a usage shape converted to the price (10 audio tokens/s), or a
   * response whose `response.done` never arrived, billed at its reservation (`settledBy`).
   */
  readonly estimated: boolean;
  /** The rule that produced the record. */
  readonly settledBy: SettledBy;
  /** The model had no price of its own; `metering.fallbackPrice` applied. */
  readonly fallbackPrice: boolean;
}

export interface Amount {
  readonly nanos: Nanos;
  readonly tokens: number;
}

export interface CapHit {
  readonly cap: CapName;
  readonly period: Period;
  /** The effective cap (admin override or config), nanos for *_usd caps, tokens otherwise. */
  readonly limit: number;
  readonly spent: number;
  readonly reserved: number;
}

export type ReserveResult =
  | { readonly kind: 'ok' }
  | { readonly kind: 'over'; readonly hit: CapHit }
  /**
   * `ownerSilent`: a relay worker's call to the primary's ledger went unanswered (a stalled primary,
   * not the ledger behind it): never run open on that, whatever `failMode` says.
   * `queueFull`: the Redis ledger holds as many unwritten settlements as it may; running open would
   * add records it cannot keep, so never open on that either.
   */
  | { readonly kind: 'unavailable'; readonly reason: string; readonly ownerSilent?: true; readonly queueFull?: true };

export interface ReserveRequest {
  readonly tenant: string;
  /** Unique per reservation (session id + sequence). */
  readonly id: string;
  readonly amount: Amount;
  readonly caps: CapSet;
  readonly wallMs: number;
  /**
   * remaining: granted while spent + reserved is below every cap (overshoot ≤ one response);
   * worst_case: granted only if spent + reserved + amount fits every cap.
   */
  readonly mode: 'remaining' | 'worst_case';
}

export interface CapOverride {
  readonly nanos: Nanos | null;
  readonly tokens: number | null;
}

export interface PeriodStatus {
  readonly period: Period;
  readonly spent: Amount;
  readonly reserved: Amount;
  /** Effective caps for this period (override or config); null = none. */
  readonly capNanos: Nanos | null;
  readonly capTokens: number | null;
  readonly override: CapOverride;
}

export interface TenantStatus {
  readonly tenant: string;
  readonly day: PeriodStatus;
  readonly month: PeriodStatus;
}

/** Change to a runtime cap override: a number sets it, null clears it, undefined leaves it. */
export interface OverrideChange {
  readonly nanos?: Nanos | null;
  readonly tokens?: number | null;
}

/**
 * The durable record of spend. Embedded (SQLite, synchronous) or shared (Redis, asynchronous):
 * callers handle both through MaybePromise and never block a frame on the synchronous path.
 */
export interface Ledger {
  readonly kind: 'sqlite' | 'redis';
  /** True when every call returns synchronously. */
  readonly synchronous: boolean;
  reserve(req: ReserveRequest): MaybePromise<ReserveResult>;
  /** Bills a record (day and month of `record.ts`) and drops its reservation, atomically. */
  settle(reservationId: string | null, record: UsageRecord): MaybePromise<void>;
  release(tenant: string, reservationId: string): MaybePromise<void>;
  status(tenant: string, caps: CapSet, wallMs: number): MaybePromise<TenantStatus>;
  setOverride(tenant: string, kind: PeriodKind, change: OverrideChange): MaybePromise<void>;
  /** Zeroes the tenant's spend for the current period of `kind` (usage records are kept). */
  resetSpend(tenant: string, kind: PeriodKind, wallMs: number): MaybePromise<void>;
  /**
   * A page of usage records in the ledger's usage order, from `sinceMs` (inclusive) or strictly
   * after a cursor a previous page gave: following `next` returns every record exactly once, however
   * many share one millisecond.
   */
  usagePage(tenant: string | null, from: number | UsageCursor, limit: number): MaybePromise<UsagePage>;
  /** Concurrent-session slots: true when granted. */
  acquireSlot(tenant: string, token: string, max: number, wallMs: number): MaybePromise<boolean | 'unavailable'>;
  releaseSlot(tenant: string, token: string): void;
  /**
   * This process stops holding the slot without giving it back: a call's slot whose call goes on under
   * another instance (handed over, or claimed by it) stays counted under its token until the instance
   * taking the call over takes that very slot (acquireSlot of a held token), else until it expires
   * unrefreshed (the slot TTL, as a crashed instance's). Absent: slots are this process's own
   * (the SQLite ledger), and leaving one is releasing it.
   */
  leaveSlot?(tenant: string, token: string): void;
  /**
   * A recent, synchronous "this tenant is over a cap" answer, for ledgers whose reserve is
   * asynchronous: lets a server-started response be cancelled before any of its frames pass.
   */
  knownOver?(tenant: string, wallMs: number): CapHit | null;
  /**
   * How an over-cap audio hold reaches the tenant's sessions in the other processes sharing this
   * ledger (a relay worker's: the primary and the other workers; Redis: the other instances), or
   * absent: no other process (SQLite in one process). src/metering/hold-link.ts.
   */
  readonly holds?: HoldLink;
  readiness(): string | null;
  close(): Promise<void>;
}

/**
 * A position in a ledger's usage order, just after one record. Time alone does not order records
 * (many settle in one millisecond), so each ledger adds its own tie-breakers: SQLite the row id
 * (`tenant` empty), Redis the stream entry's time and sequence and the tenant whose stream it is in.
 */
export interface UsageCursor {
  readonly ts: number;
  readonly seq: number;
  readonly tenant: string;
}

export interface UsagePage {
  readonly records: UsageRecord[];
  /** Just after the last record; null when the page is empty. */
  readonly next: UsageCursor | null;
}

/** The opaque `cursor` token of GET /admin/usage (base64url JSON; what is inside is not a contract). */
export function encodeUsageCursor(c: UsageCursor): string {
  return Buffer.from(JSON.stringify([c.ts, c.seq, c.tenant])).toString('base64url');
}

/** A token `encodeUsageCursor` made, or null. */
export function decodeUsageCursor(token: string): UsageCursor | null {
  if (token.length > 512 || !/^[A-Za-z0-9_-]+$/.test(token)) return null;
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (!Array.isArray(v) || v.length !== 3) return null;
  const [ts, seq, tenant] = v as unknown[];
  const count = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (!count(ts) || !count(seq) || typeof tenant !== 'string') return null;
  return { ts, seq, tenant };
}

/** Checks a period's spend + reservations against its caps (shared by the ledgers, tested alone). */
export function firstHit(
  day: { period: Period; spent: Amount; capNanos: Nanos | null; capTokens: number | null },
  month: { period: Period; spent: Amount; capNanos: Nanos | null; capTokens: number | null },
  reserved: Amount,
  add: Amount,
  mode: 'remaining' | 'worst_case',
): CapHit | null {
  const checks: Array<[CapName, Period, number | null, number, number, number]> = [
    ['daily_usd', day.period, day.capNanos, day.spent.nanos, reserved.nanos, add.nanos],
    ['monthly_usd', month.period, month.capNanos, month.spent.nanos, reserved.nanos, add.nanos],
    ['daily_tokens', day.period, day.capTokens, day.spent.tokens, reserved.tokens, add.tokens],
    ['monthly_tokens', month.period, month.capTokens, month.spent.tokens, reserved.tokens, add.tokens],
  ];
  for (const [cap, period, limit, spent, res, extra] of checks) {
    if (limit === null) continue;
    const over = mode === 'remaining' ? spent + res >= limit : spent + res + extra > limit;
    if (over) return { cap, period, limit, spent, reserved: res };
  }
  return null;
}

/** The token prefix of a call's concurrency slot taken by its offer's check (holdSessionSlot). */
export const OFFER_SLOT_PREFIX = 'hold_';
/** The token prefix of a call's concurrency slot named after the call (callSlotToken: no offer's hold). */
export const CALL_SLOT_PREFIX = 'call_';

/**
 * Whether a slot token is a call's (OFFER_SLOT_PREFIX, CALL_SLOT_PREFIX): the call goes on upstream
 * when the process holding its slot dies, and the instance taking it over takes that slot by its
 * token, so the slot is left (Ledger.leaveSlot), not given back. A WebSocket session's slot
 * (`slot_…`) goes with its client.
 */
export const isCallSlot = (token: string): boolean => token.startsWith(OFFER_SLOT_PREFIX) || token.startsWith(CALL_SLOT_PREFIX);
