import { createHash } from 'node:crypto';
import type { JsonObject } from '../pipeline/frame.js';

/*
 * The one set of JSON-narrowing helpers for parsed events (events are hostile until narrowed).
 */

export function asObject(v: unknown): JsonObject | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : null;
}

/** An object's members, or none: for reading optional nested fields where absent means 0 or null. */
export function asObjectOrEmpty(v: unknown): JsonObject {
  return asObject(v) ?? {};
}

export function asString(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

export function asArray(v: unknown): readonly unknown[] | null {
  return Array.isArray(v) ? v : null;
}

/** A finite number, or null (NaN and the infinities are not numbers a JSON event can carry). */
export function asNumber(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function asBoolean(v: unknown): boolean | null {
  return typeof v === 'boolean' ? v : null;
}

/**
 * Longest client-chosen id (an item's, an event's) kept whole for matching later events. The
 * Realtime API refuses item ids over 32 characters; a longer id is kept as its SHA-256 (`keptId`).
 */
export const MAX_KEPT_ID_CHARS = 256;

/**
 * A client-chosen id as a session keeps it, and as an id it is compared with is mapped first:
 * itself up to MAX_KEPT_ID_CHARS, else `\u0000sha256:` and its hash (exact, 52 characters).
 * Until 2026-12-07 ids were kept whole: one session's creates with 1 MiB item ids, refused upstream,
 * stayed in metering's conversation estimate (up to 10,000 of them) and the conversation view,
 * outside the memory budget (test/metering/redteam-16-long-item-ids.test.ts).
 */
export function keptId(id: string): string {
  return id.length <= MAX_KEPT_ID_CHARS ? id : `\u0000sha256:${createHash('sha256').update(id).digest('base64')}`;
}
