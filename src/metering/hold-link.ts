import type { CapHit } from './ledger.js';
import type { CapName } from './limits.js';
import type { PeriodKind } from './periods.js';

/*
 * How an over-cap audio hold found by one session reaches the tenant's sessions in other processes
 * sharing the ledger: relay workers (through the primary, over the IPC channel: ChannelHoldLink) and
 * other instances on one Redis ledger (pub/sub: src/metering/redis-holds.ts). A hold only ever tells
 * sessions to hold their input audio; each one lifts its own by asking the ledger again
 * (AUDIO_RECHECK_MS), so a lost, late or forged message costs at most one recheck period of audio.
 */

/** One session found `tenant` over a cap (`hit`): its sessions elsewhere should hold their input audio. */
export interface TenantHold {
  readonly tenant: string;
  readonly hit: CapHit;
}

export type HoldReceiver = (hold: TenantHold) => void;

/** A ledger's reach to the tenant's sessions in other processes (Ledger.holds). */
export interface HoldLink {
  /** Tells the other processes: never throws, never waits (a hold not delivered leaves them as before). */
  publish(hold: TenantHold): void;
  /** `receiver` gets the holds other processes publish (never this one's own); returns the unsubscribe. */
  subscribe(receiver: HoldReceiver): () => void;
}

/** A hold on the worker ↔ primary channel (src/server/worker-protocol.ts), either direction. */
export interface TenantHoldMessage extends TenantHold {
  readonly t: 'tenant-hold';
}

const CAPS: ReadonlySet<string> = new Set<CapName>(['daily_usd', 'monthly_usd', 'daily_tokens', 'monthly_tokens']);
const KINDS: ReadonlySet<string> = new Set<PeriodKind>(['day', 'month']);
/** Longer than any tenant id or period key the config allows: a bound on what a message may carry. */
const MAX_TEXT = 256;

const text = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_TEXT;
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * The hold a message carries, rebuilt field by field (nothing else kept), or null when it is not
 * one: messages come from other processes, and a hit's fields reach clients in `budget_exceeded`.
 */
export function tenantHoldOf(m: unknown): TenantHold | null {
  if (typeof m !== 'object' || m === null) return null;
  const { tenant, hit } = m as { tenant?: unknown; hit?: unknown };
  if (!text(tenant) || typeof hit !== 'object' || hit === null) return null;
  const { cap, period, limit, spent, reserved } = hit as Partial<Record<keyof CapHit, unknown>>;
  if (!text(cap) || !CAPS.has(cap) || !finite(limit) || !finite(spent) || !finite(reserved)) return null;
  if (typeof period !== 'object' || period === null) return null;
  const { kind, key, startsAt, resetsAt } = period as Partial<Record<'kind' | 'key' | 'startsAt' | 'resetsAt', unknown>>;
  if (!text(kind) || !KINDS.has(kind) || !text(key) || !finite(startsAt) || !finite(resetsAt)) return null;
  return { tenant, hit: { cap: cap as CapName, period: { kind: kind as PeriodKind, key, startsAt, resetsAt }, limit, spent, reserved } };
}

export function isTenantHoldMessage(m: unknown): m is TenantHoldMessage {
  return typeof m === 'object' && m !== null && (m as { t?: unknown }).t === 'tenant-hold';
}

/** The receivers of one link; one that throws does not keep the others from theirs. */
export class HoldReceivers {
  readonly #receivers = new Set<HoldReceiver>();

  add(receiver: HoldReceiver): () => void {
    this.#receivers.add(receiver);
    return () => void this.#receivers.delete(receiver);
  }

  deliver(hold: TenantHold): void {
    for (const r of [...this.#receivers]) {
      try {
        r(hold);
      } catch {
        // A receiver's failure is its own (a session closing under it).
      }
    }
  }

  get size(): number {
    return this.#receivers.size;
  }
}

/**
 * A relay worker's link: its holds go to the primary, which passes each one to every other worker
 * (and to the other instances with a Redis ledger); the holds the primary passes on arrive through
 * `receive` (src/server/worker.ts).
 */
export class ChannelHoldLink implements HoldLink {
  readonly #send: (m: TenantHoldMessage) => boolean;
  readonly #receivers = new HoldReceivers();

  constructor(send: (m: TenantHoldMessage) => boolean) {
    this.#send = send;
  }

  publish(hold: TenantHold): void {
    // A closed channel (the primary gone): nobody else to tell.
    this.#send({ t: 'tenant-hold', tenant: hold.tenant, hit: hold.hit });
  }

  subscribe(receiver: HoldReceiver): () => void {
    return this.#receivers.add(receiver);
  }

  /** A hold the primary passed on (a message of the channel, checked here). */
  receive(m: unknown): void {
    const hold = tenantHoldOf(m);
    if (hold) this.#receivers.deliver(hold);
  }
}
