import { checkedMembers } from '../../src/protocol/checked-members.js';

/**
 * The two readings of a frame's top-level members the delta walk must agree on (src/protocol/
 * checked-members.ts): what the walk read and what JSON.parse reads, each as plain values
 * (strings and numbers; null for an absent member or another kind), or undefined when it does not answer.
 */
export const DELTA_KEYS: readonly string[] = ['response_id', 'item_id', 'content_index', 'delta'];

export type MemberReading = Record<string, string | number | null>;

/** What the walk read, or undefined (the caller would parse). */
export function walkedMembers(text: string | Buffer, keys: readonly string[] = DELTA_KEYS): MemberReading | undefined {
  const buf = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const m = checkedMembers(buf, keys);
  if (m === undefined) return undefined;
  const out: MemberReading = {};
  keys.forEach((k, i) => {
    out[k] = m.stringStart[i]! >= 0 ? buf.toString('utf8', m.stringStart[i], m.stringEnd[i]) : Number.isNaN(m.numbers[i]!) ? null : m.numbers[i]!;
  });
  return out;
}

/** What JSON.parse reads for the same keys, or undefined when it throws or the frame is no object. */
export function parsedMembers(text: string | Buffer, keys: readonly string[] = DELTA_KEYS): MemberReading | undefined {
  let ev: unknown;
  try {
    ev = JSON.parse(typeof text === 'string' ? text : text.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof ev !== 'object' || ev === null || Array.isArray(ev)) return undefined;
  const out: MemberReading = {};
  for (const k of keys) {
    const v = (ev as Record<string, unknown>)[k];
    out[k] = typeof v === 'string' || typeof v === 'number' ? v : null;
  }
  return out;
}
