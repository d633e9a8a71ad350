import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { HoldReceivers, tenantHoldOf, type HoldLink, type HoldReceiver, type TenantHold } from './hold-link.js';

/*
 * Over-cap audio holds across the instances sharing a Redis ledger: Redis pub/sub on one channel
 * under the ledger's key prefix (`<prefix>tenant-holds`). Pub/sub rather than a `hold` key each
 * instance polls: a message reaches the other instances in about a round trip, with no Redis reads
 * per tenant per instance per poll, and a poll would leave a window as wide as its period in which a
 * session still starts (and pays) a cancelled VAD response. What pub/sub does not give (delivery
 * to an instance that is disconnected at that moment) only leaves that instance's sessions with the
 * bound they had before: one such response each; it never holds audio that should flow, since each
 * session lifts its own hold by asking the ledger (AUDIO_RECHECK_MS in src/metering/tenant-holds.ts).
 * Redis down: publishing fails silently, the subscriber reconnects and subscribes again by itself.
 */

/** Bigger than any message this module writes: anything longer on the channel is not ours. */
const MAX_MESSAGE = 4096;

export interface RedisHoldLinkOptions {
  /** `<keyPrefix>tenant-holds`. */
  readonly channel: string;
  /** Publishes on the ledger's connection (a connection in subscriber mode cannot). */
  readonly publish: (channel: string, message: string) => Promise<unknown>;
  /** A new connection of the ledger's (not connected yet), for the subscriber; made at the first subscribe. */
  readonly connection: () => Redis;
  readonly log: Logger;
}

export class RedisHoldLink implements HoldLink {
  readonly #o: RedisHoldLinkOptions;
  /** This instance's messages come back on the channel: they are told apart by this. */
  readonly #origin = randomUUID();
  readonly #receivers = new HoldReceivers();
  #subscriber: Redis | null = null;
  #closed = false;

  constructor(options: RedisHoldLinkOptions) {
    this.#o = options;
  }

  publish(hold: TenantHold): void {
    if (this.#closed) return;
    const message = JSON.stringify({ origin: this.#origin, tenant: hold.tenant, hit: hold.hit });
    // Redis down: the other instances keep the bound they had (one cancelled VAD response per session).
    this.#o.publish(this.#o.channel, message).catch(() => undefined);
  }

  subscribe(receiver: HoldReceiver): () => void {
    const off = this.#receivers.add(receiver);
    this.#listen();
    return off;
  }

  #listen(): void {
    if (this.#subscriber || this.#closed) return;
    const sub = this.#o.connection();
    this.#subscriber = sub;
    // Subscribed again at every (re)connection: ioredis's own resubscribe misses a first subscribe that failed.
    sub.on('ready', () => {
      sub.subscribe(this.#o.channel).catch((err: unknown) => this.#o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'metering redis: tenant holds channel not subscribed'));
    });
    // The ledger's own connection logs the outage; without a listener ioredis prints every error.
    sub.on('error', () => undefined);
    sub.on('message', (channel: string, message: string) => {
      if (channel === this.#o.channel) this.#receive(message);
    });
    sub.connect().catch(() => undefined);
  }

  #receive(message: string): void {
    if (message.length > MAX_MESSAGE) return;
    let value: unknown;
    try {
      value = JSON.parse(message);
    } catch {
      return;
    }
    if (typeof value !== 'object' || value === null || (value as { origin?: unknown }).origin === this.#origin) return;
    const hold = tenantHoldOf(value);
    if (hold) this.#receivers.deliver(hold);
  }

  close(): void {
    this.#closed = true;
    this.#subscriber?.disconnect();
    this.#subscriber = null;
  }
}
