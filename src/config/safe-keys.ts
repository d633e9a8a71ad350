import { RESERVED_KEYS } from './schema.js';

/**
 * Paths of mapping keys that would address `Object.prototype` (`__proto__`, `constructor`,
 * `prototype`) anywhere in a raw config document. Checked before anything copies the document:
 * assigning such a key sets a prototype (the entry vanishes) or shadows a built-in (a plan named
 * `constructor` resolves to a function with no limits).
 */
export function reservedKeyProblems(value: unknown, path = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => reservedKeyProblems(v, `${path}[${i}]`));
  if (value === null || typeof value !== 'object') return [];
  const problems: string[] = [];
  for (const key of Object.keys(value)) {
    const at = path ? `${path}.${key}` : key;
    if (RESERVED_KEYS.has(key)) problems.push(`${at}: "${key}" is reserved and cannot be used as a name`);
    else problems.push(...reservedKeyProblems((value as Record<string, unknown>)[key], at));
  }
  return problems;
}
