import type { CapHit } from './ledger.js';

/**
 * Why input audio is held: a tenant cap spent, the ledger not answering, what is in flight at the
 * session's token limit, or (null) the session's settled tokens at its token limit.
 */
export type HoldReason = CapHit | 'ledger' | 'in_flight' | null;

/** A hold on a session's input audio (AudioHold.blocked). */
export interface HeldAudio {
  hit: HoldReason;
  since: number;
  checking: boolean;
  notified: boolean;
  peer?: boolean;
  toldPeers?: boolean;
  inFlight?: boolean;
}

/** What a hold needs of its session. */
export interface AudioHoldHost {
  /** Wall-clock ms (MeteringRuntime.wall). */
  wall(): number;
  /** Input audio frames come to the filter from now (true), or pass it by again (false). */
  watchAudio(on: boolean): void;
  /** The session is open and its settled tokens plus what its transcriptions and responses in flight hold reach its token limit. */
  inFlightOverLimit(): boolean;
  /** Tells the tenant's other sessions on this instance that `hit` is spent (TenantAudioHolds.overCap). */
  tellPeers(hit: CapHit): void;
}

/**
 * A session's hold on its input audio: why it holds (the reason that outlasts the others), since
 * when, and whether the client and the tenant's other sessions were told. When to hold and when to
 * ask the ledger again are the filter's (MeteringFilter.#onBlockedAudio).
 */
export class AudioHold {
  /**
   * Over a cap (refuse policy) in a session with input transcription, or after a server-started
   * response had to be cancelled over a cap: input audio is dropped, so no further turn is
   * transcribed or started (both cost money a reservation cannot cover). `hit` null: the session's
   * settled tokens reached its token limit (refuse policy), for the rest of the session (session
   * tokens never go down); until 2026-12-05 that limit never held audio back, so every spoken turn
   * was started upstream, cancelled at `response.created` and billed, and every one transcribed.
   * `peer`: held because another session of the tenant found a cap spent (no response of this
   * session cancelled yet). `hit` 'in_flight': a turn server VAD committed on its own brought the
   * session's settled tokens plus what its transcriptions and responses in flight hold to its token
   * limit (MeteringFilter.#holdInFlight), until their settles bring it under again. `inFlight`: a hold of a cap or
   * of the ledger that outlasts such a hold (began before or after it): lifted, it leaves that hold
   * while what is in flight still reaches the limit (release).
   * A field, not an accessor: the filter reads it for every input audio frame it sees.
   */
  blocked: HeldAudio | null = null;
  readonly #host: AudioHoldHost;

  constructor(host: AudioHoldHost) {
    this.#host = host;
  }

  /**
   * Over a cap, input audio is held back: a transcribed session would otherwise keep paying for
   * transcription, and a VAD session for the input of every response the proxy has to cancel at
   * `response.created` (at most one such response per session, then). `shared` false: held for this
   * session's own reason, not told to the tenant's other sessions (see MeteringFilter.#ownSizeOver).
   */
  hold(hit: HoldReason, fromPeer = false, shared = true): void {
    if (this.blocked !== null) {
      if (!fromPeer) this.blocked.peer = false;
      if (hit === 'in_flight' || this.blocked.hit === 'in_flight') this.blocked.inFlight = true;
      // The session limit outlasts a cap: the hold becomes the session's for good (told once more);
      // a cap known outlasts the ledger being down; both outlast what is in flight (the ledger is asked again).
      if (hit === null && this.blocked.hit !== null) this.blocked = { hit: null, since: this.#host.wall(), checking: false, notified: false };
      else if (hit !== null && hit !== 'ledger' && hit !== 'in_flight' && (this.blocked.hit === 'ledger' || this.blocked.hit === 'in_flight')) this.blocked.hit = hit;
      else if (hit === 'ledger' && this.blocked.hit === 'in_flight') this.blocked.hit = hit;
    } else {
      // Held by a peer's hold: the tenant's sessions were told by that peer.
      this.blocked = { hit, since: this.#host.wall(), checking: false, notified: false, peer: fromPeer, toldPeers: fromPeer };
      this.#host.watchAudio(true);
    }
    // A tenant cap is the tenant's: its other sessions would each start (and pay) one more server-VAD
    // response before learning it on their own. Told once per hold, also when the hold began for this
    // session's own reason (its transcription's size, the ledger down) and a tenant cap comes after:
    // until 2026-12-07 (later that day) that cap stayed unheard by the peers.
    const blocked = this.blocked;
    if (!fromPeer && shared && hit !== null && hit !== 'ledger' && hit !== 'in_flight' && blocked.hit !== null && blocked.toldPeers !== true) {
      blocked.toldPeers = true;
      this.#host.tellPeers(hit);
    }
  }

  /** Lifts a hold over a tenant cap (never the session token limit's: session tokens never go down). */
  release(): void {
    const blocked = this.blocked;
    if (blocked === null || blocked.hit === null) return;
    // A cap's (or the ledger's) hold lifted while what is in flight still reaches the session's token
    // limit leaves the hold of what is in flight it outlasted (MeteringFilter.#holdInFlight), told once. Until
    // 2026-12-07 the cap's recheck lifted both: a second session's create filled the cap so that the
    // turn's reservation was refused, and 5 s later audio flowed with that turn still in flight
    // (test/metering/redteam-19m-in-flight-lift.test.ts).
    if ((blocked.hit === 'in_flight' || blocked.inFlight === true) && this.#host.inFlightOverLimit()) {
      if (blocked.hit !== 'in_flight') this.blocked = { hit: 'in_flight', since: this.#host.wall(), checking: false, notified: false };
      return;
    }
    this.blocked = null;
    this.#host.watchAudio(false);
  }
}
