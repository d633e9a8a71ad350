import { randomBytes } from 'node:crypto';
import type { AdmissionAsk, AdmissionTicket } from '../pipeline/filter.js';
import { ProxyError } from '../protocol/errors.js';
import { isTranslationSession } from '../protocol/events.js';
import { OFFER_SLOT_PREFIX, type Ledger } from './ledger.js';
import { hasCaps } from './limits.js';
import { budgetError, pricedForSessions, spentCap, unpricedError } from './refusals.js';
import { ledgerFailsOpen, type MeteringRuntime } from './runtime.js';
import { translationPriceProblem } from './translation.js';

const ADMISSION_HANDOFF_MS = 30_000;

/**
 * Admission-to-session handoff of concurrent-session slots, by admission ticket: `admit` parks the
 * slot it took under its request's ticket, and only that ticket claims it (the session `create` makes
 * with it, or `withdraw`), once. An admission that took none (no limit, a governed call's own socket,
 * failMode open with the ledger down) has nothing parked and claims nothing. A slot whose ticket never
 * comes back (a path that lost it) is released after ADMISSION_HANDOFF_MS. Until 2026-12-07 slots
 * were parked per tenant and any upgrade of the tenant claimed the oldest
 * (test/metering/redteam-18-slot-ticket.test.ts).
 */
export class SlotHandoff {
  readonly #parked = new Map<AdmissionTicket, ParkedSlot>();

  constructor(private readonly ledger: Ledger) {}

  park(ticket: AdmissionTicket, tenant: string, token: string): void {
    const timer = setTimeout(() => {
      if (this.#parked.get(ticket)?.token !== token) return;
      this.#parked.delete(ticket);
      this.ledger.releaseSlot(tenant, token);
    }, ADMISSION_HANDOFF_MS);
    timer.unref();
    // A ticket parks one slot: a second park gives the first back rather than losing it.
    this.#release(ticket);
    this.#parked.set(ticket, { tenant, token, timer });
  }

  /** The slot parked for `ticket` (the session now holds it), or null when it took none. */
  claim(ticket: AdmissionTicket | null | undefined): string | null {
    if (!ticket) return null;
    const parked = this.#parked.get(ticket);
    if (!parked) return null;
    this.#parked.delete(ticket);
    clearTimeout(parked.timer);
    return parked.token;
  }

  /** The slot parked for `ticket`, if any, goes back to the ledger now. */
  withdraw(ticket: AdmissionTicket): void {
    this.#release(ticket);
  }

  #release(ticket: AdmissionTicket): void {
    const parked = this.#parked.get(ticket);
    if (!parked) return;
    this.#parked.delete(ticket);
    clearTimeout(parked.timer);
    this.ledger.releaseSlot(parked.tenant, parked.token);
  }
}

interface ParkedSlot {
  readonly tenant: string;
  readonly token: string;
  readonly timer: NodeJS.Timeout;
}

/**
 * A concurrent-session slot held for a session on its way (a WebRTC offer or an incoming SIP call,
 * src/calls) from its check until its sideband's admission takes it over (AdmissionAsk.holdsSlot,
 * then `handOver`), or `held: false` when it took none (the tenant has no limit; failMode open with
 * the ledger down). `release` gives it back, once; after `handOver` it is the sideband's, and
 * `release` gives nothing back.
 */
export interface SessionSlotHold {
  readonly held: boolean;
  /** The slot's token in the ledger (null: none held), for the admission that takes it over. */
  readonly token: string | null;
  release(): void;
  handOver(): void;
}

/** A hold of nothing (no limit, failMode open with the ledger down, metering off, a call taken over). */
export const NO_SLOT: SessionSlotHold = { held: false, token: null, release: () => undefined, handOver: () => undefined };

/**
 * The model's price, the tenant's caps and a concurrency slot, taken now in the ledger. The ledger
 * is the one owner of the count, across relay workers (the primary's, over IPC) and instances
 * (Redis): until 2026-12-07 an offer in flight was counted in its own process only, and with
 * `server.workers: 2` a tenant allowed one session held an offer in one worker and a session in the
 * other (test/calls/workers-offers-in-flight.test.ts).
 */
export async function holdSessionSlot(rt: MeteringRuntime, req: AdmissionAsk): Promise<ProxyError | SessionSlotHold> {
  const refused = await capsRefusal(rt, req);
  if (refused) return refused;
  const limits = rt.limitsOf(req.tenant);
  if (limits.maxConcurrentSessions === null) return NO_SLOT;
  const exceeded = () => new ProxyError('concurrent_sessions_exceeded', { details: { limit: limits.maxConcurrentSessions } });
  if (limits.maxConcurrentSessions <= 0) return exceeded();
  const tenant = req.tenant.id;
  const token = `${OFFER_SLOT_PREFIX}${randomBytes(8).toString('hex')}`;
  const got = await rt.ledger.acquireSlot(tenant, token, limits.maxConcurrentSessions, rt.wall());
  if (got === false) return exceeded();
  if (got === 'unavailable') return ledgerFailsOpen(rt) ? NO_SLOT : new ProxyError('budget_unavailable', { close: 'tryAgainLater' });
  let held = true;
  return {
    held: true,
    token,
    release() {
      if (!held) return;
      held = false;
      rt.ledger.releaseSlot(tenant, token);
    },
    handOver() {
      held = false;
    },
  };
}

/**
 * What admission checks without holding a slot: the model's price, the tenant's caps and whether a
 * concurrency slot is free now (taken and given back at once). Used by the calls module before it
 * mints a client secret (no session exists yet, so nothing may stay reserved).
 */
export async function admissionProbe(rt: MeteringRuntime, req: AdmissionAsk): Promise<ProxyError | null> {
  const hold = await holdSessionSlot(rt, req);
  if (hold instanceof ProxyError) return hold;
  hold.release();
  return null;
}

export async function capsRefusal(rt: MeteringRuntime, req: AdmissionAsk): Promise<ProxyError | null> {
  const failOpen = ledgerFailsOpen(rt);
  if (isTranslationSession(req.query)) {
    // A translation session is billed by its input audio: its model needs an audio price (per minute).
    const refused = translationPriceProblem(rt.prices, req.model);
    if (refused) return refused;
  } else if (req.model !== '' && !pricedForSessions(rt, req.model)) {
    return unpricedError(req.model, rt, { param: 'model' });
  }
  const limits = rt.limitsOf(req.tenant);
  const wall = rt.wall();
  if (hasCaps(limits.caps)) {
    try {
      const s = await rt.ledger.status(req.tenant.id, limits.caps, wall);
      const hit = spentCap(s);
      if (hit) {
        // The refusal shows what is reserved in that period too (the check itself counts spend only).
        const p = hit.cap.startsWith('daily') ? s.day : s.month;
        return budgetError({ ...hit, reserved: hit.cap.endsWith('_usd') ? p.reserved.nanos : p.reserved.tokens }, { close: true });
      }
    } catch (err) {
      rt.log.warn({ err: err instanceof Error ? err.message : String(err), tenant: req.tenant.id }, 'metering: ledger status unavailable at admission');
      if (!failOpen) return new ProxyError('budget_unavailable', { close: 'tryAgainLater' });
    }
  }
  return null;
}
