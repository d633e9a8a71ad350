import { randomBytes } from 'node:crypto';
import type { RealtimeServerEvent } from 'openai/resources/realtime/realtime';

/**
 * The SDK types mark unset fields optional, but the live API sends `null` for many of them
 * (`transcription: null`, `status_details: null`, `usage: null` …). `Wire<T>` is the SDK type with
 * `null` allowed wherever a field is optional, so every emitted event is still checked against the
 * SDK shape while carrying the nulls real clients see.
 */
export type Wire<T> = T extends string | number | boolean | null | undefined
  ? T
  : T extends readonly (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: undefined extends T[K] ? Wire<T[K]> | null : Wire<T[K]> }
      : T;

export type ServerEvent = Wire<RealtimeServerEvent>;
export type ServerEventType = RealtimeServerEvent['type'];
export type WireEvent<T extends ServerEventType> = Wire<Extract<RealtimeServerEvent, { type: T }>>;

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const POOL_SIZE = 4096;
let pool = randomBytes(POOL_SIZE);
let poolOffset = 0;

/** OpenAI-looking random id (`event_…`, `item_…`): prefix + 21 alphanumerics. Pooled for speed. */
export function newId(prefix: string, length = 21): string {
  if (poolOffset + length > POOL_SIZE) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  let out = prefix + '_';
  for (let i = 0; i < length; i++) out += ALPHABET[pool[poolOffset++]! % 62];
  return out;
}
