import { keptId } from '../protocol/json.js';

/** Model item ids a session remembers (UpstreamItemIds); past it every id may be the model's. */
export const MAX_UPSTREAM_ITEM_IDS = 10_000;
/** Slots of the full table: a power of two, load at most MAX_UPSTREAM_ITEM_IDS / this (0.61). */
const MAX_SLOTS = 16_384;
const FIRST_SLOTS = 64;

/**
 * The ids of items the upstream made (the model's output items), as 32-bit fingerprints in an
 * open-addressed table: at most MAX_SLOTS × 4 bytes (64 KiB) per session whatever the ids' length.
 * Until 2026-12-07 the ids were kept whole, up to 10,000 of up to 256 characters (about 5 MiB a
 * session; src/metering/upstream-item-ids.test.ts).
 *
 * Only ever asked "may this id be the model's?", and every wrong "yes" is safe: the client's create
 * reusing it is then not taken as that id's estimate, so references to it count the whole
 * conversation (over-reserve, never under). A fingerprint never gives a wrong "no" (an id added is
 * always found), and once MAX_UPSTREAM_ITEM_IDS are kept every id answers "yes". So a fingerprint
 * match suffices: one client id in about 430,000 (10,000 / 2³²) is taken for the model's at most.
 * The ids added are the upstream's, never the client's, so no client can lengthen the probes.
 */
export class UpstreamItemIds {
  /** Fingerprints, 0 for an empty slot (a fingerprint is never 0); null until the first id. */
  #slots: Uint32Array | null = null;
  #size = 0;
  #full = false;

  get size(): number {
    return this.#size;
  }

  /** Bytes the table holds (its byte budget is MAX_SLOTS × 4). */
  get bytes(): number {
    return this.#slots === null ? 0 : this.#slots.byteLength;
  }

  /** Whether `id` may be an item the upstream made: true for every id once full. */
  mayHave(id: string): boolean {
    if (this.#full) return true;
    return this.#slots !== null && this.#slots[this.#find(this.#slots, fingerprint(id))] !== 0;
  }

  add(id: string): void {
    if (this.#full) return;
    const print = fingerprint(id);
    this.#slots ??= new Uint32Array(FIRST_SLOTS);
    const at = this.#find(this.#slots, print);
    if (this.#slots[at] !== 0) return;
    if (this.#size >= MAX_UPSTREAM_ITEM_IDS) {
      // No room: from now on every id may be the model's (see the class comment).
      this.#full = true;
      this.#slots = null;
      return;
    }
    this.#slots[at] = print;
    this.#size++;
    // Grown at three quarters full (never past MAX_SLOTS: MAX_UPSTREAM_ITEM_IDS keeps its load under that).
    if (this.#size * 4 > this.#slots.length * 3) this.#grow();
  }

  /** The slot holding `print`, or the empty slot where it would go (linear probing; never a full table). */
  #find(slots: Uint32Array, print: number): number {
    const mask = slots.length - 1;
    let at = spread(print) & mask;
    while (slots[at] !== 0 && slots[at] !== print) at = (at + 1) & mask;
    return at;
  }

  #grow(): void {
    const old = this.#slots!;
    const slots = new Uint32Array(Math.min(MAX_SLOTS, old.length * 2));
    if (slots.length === old.length) return;
    for (const print of old) if (print !== 0) slots[this.#find(slots, print)] = print;
    this.#slots = slots;
  }
}

/**
 * 32-bit FNV-1a of the id as a session keeps it (keptId: an over-long one as its hash, so no id costs
 * more than 256 characters to read), never 0.
 */
function fingerprint(id: string): number {
  const kept = keptId(id);
  let h = 0x811c9dc5;
  for (let i = 0; i < kept.length; i++) h = Math.imul(h ^ kept.charCodeAt(i), 0x01000193);
  return h >>> 0 || 1;
}

/** The fingerprint's bits mixed (murmur3's finaliser) so the slot index depends on all of them. */
function spread(print: number): number {
  let h = print;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}
