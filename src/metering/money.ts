/**
 * Money is integer nano-dollars (1 USD = 1e9). Every price in the shipped table is a whole number
 * of nano-dollars per token, so a response's cost is an exact integer and sums never drift. The
 * safe-integer range holds 9,007,199 USD per tenant and period.
 */
export type Nanos = number;

export const NANOS_PER_USD = 1_000_000_000;

/** Parses a non-negative decimal with at most `scale` fraction digits into an integer of 10^-scale units. */
export function parseDecimal(value: number | string, scale: number): number | null {
  let text: string;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) return null;
    text = value.toFixed(Math.min(scale + 2, 20));
    // A number carrying more precision than the scale allows is refused, not rounded.
    if (Number(text) !== value) return null;
  } else {
    text = value.trim();
  }
  const m = /^(\d+)(?:\.(\d+))?$/.exec(text);
  if (!m) return null;
  let frac = (m[2] ?? '').replace(/0+$/, '');
  if (frac.length > scale) return null;
  frac = frac.padEnd(scale, '0');
  const out = Number(m[1]!) * 10 ** scale + Number(frac || '0');
  return Number.isSafeInteger(out) ? out : null;
}

/** USD (number or decimal string, ≤ 9 decimals) → nano-dollars, or null when not exact. */
export function usdToNanos(value: number | string): Nanos | null {
  return parseDecimal(value, 9);
}

/** Exact decimal USD string: at least two decimals, trailing zeros trimmed beyond them. */
export function formatUsd(nanos: Nanos): string {
  const sign = nanos < 0 ? '-' : '';
  const abs = Math.abs(nanos);
  const whole = Math.floor(abs / NANOS_PER_USD);
  let frac = String(abs % NANOS_PER_USD).padStart(9, '0').replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${sign}${whole}.${frac}`;
}

/** USD per 1M tokens → nano-dollars per token (exact only for multiples of $0.001 per 1M). */
export function perMillionToNanosPerToken(value: number | string): number | null {
  return parseDecimal(value, 3);
}

/** Rounds a non-negative rational a/b to the nearest integer, halves up, without floats. */
export function divRound(a: number, b: number): number {
  const q = Math.floor(a / b);
  const r = a - q * b;
  return r * 2 >= b ? q + 1 : q;
}
