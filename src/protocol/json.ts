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
