/** Narrowing reads of parsed JSON (events are `unknown` below the top level). */

export type Obj = { readonly [key: string]: unknown };

export function asObj(v: unknown): Obj | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : null;
}

export function str(o: Obj | null, key: string): string | null {
  const v = o?.[key];
  return typeof v === 'string' ? v : null;
}

export function num(o: Obj | null, key: string): number | null {
  const v = o?.[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

export function bool(o: Obj | null, key: string): boolean | null {
  const v = o?.[key];
  return typeof v === 'boolean' ? v : null;
}

export function obj(o: Obj | null, key: string): Obj | null {
  return asObj(o?.[key]);
}

export function arr(o: Obj | null, key: string): readonly unknown[] {
  const v = o?.[key];
  return Array.isArray(v) ? v : [];
}

export function has(o: Obj | null, key: string): boolean {
  return o !== null && Object.prototype.hasOwnProperty.call(o, key);
}
