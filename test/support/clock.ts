/**
 * Test clocks that never depend on the calendar. A clock whose instants a real server compares with
 * its own time (Redis EXPIREAT, TTLs) must be near `Date.now()`; these helpers pick such instants.
 */
const DAY_MS = 86_400_000;

const startOfUtcDay = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;

const isLastDayOfMonth = (ms: number): boolean => new Date(ms + DAY_MS).getUTCDate() === 1;

/**
 * Noon UTC of today or of yesterday, whichever is not the last day of its month, so that
 * `T0 + 13 h` (01:00 the next day) is the next day but still the same month. Always in the past
 * or near present, so every period key written for it expires in the future.
 */
export function recentNoon(now: number = Date.now()): number {
  const today = startOfUtcDay(now) + 12 * 3_600_000;
  return isLastDayOfMonth(today) ? today - DAY_MS : today;
}

/** 00:00 UTC of the day after `ms`. */
export const nextUtcMidnight = (ms: number): number => startOfUtcDay(ms) + DAY_MS;

/** `YYYY-MM-DD` of `ms` in UTC. */
export const utcDate = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/**
 * A proxy clock (`StartOptions.clock`) for tests that bill "today": its wall time runs at real speed
 * from noon UTC of `recentNoon()`, so a test cannot see its day (or month) roll over at midnight
 * while it runs, and every instant stays near the present for servers that compare (Redis TTLs).
 */
export function noonClock(now: number = Date.now()): { now(): number; wall(): number } {
  const offset = recentNoon(now) - now;
  return { now: () => performance.now(), wall: () => Date.now() + offset };
}
