import type { MeteringConfig, TenantLimitsConfig } from './config.js';
import { usdToNanos, type Nanos } from './money.js';

/** Per-period caps of a tenant; null means no cap. */
export interface CapSet {
  readonly dayNanos: Nanos | null;
  readonly monthNanos: Nanos | null;
  readonly dayTokens: number | null;
  readonly monthTokens: number | null;
}

export const NO_CAPS: CapSet = Object.freeze({ dayNanos: null, monthNanos: null, dayTokens: null, monthTokens: null });

export interface EffectiveLimits {
  readonly caps: CapSet;
  readonly maxSessionTokens: number | null;
  readonly maxResponseOutputTokens: number | null;
  readonly maxSessionDurationMs: number | null;
  readonly maxConcurrentSessions: number | null;
}

export type CapName = 'daily_usd' | 'monthly_usd' | 'daily_tokens' | 'monthly_tokens';

export function hasCaps(c: CapSet): boolean {
  return c.dayNanos !== null || c.monthNanos !== null || c.dayTokens !== null || c.monthTokens !== null;
}

export class LimitsConfigError extends Error {
  override readonly name = 'LimitsConfigError';
}

type LimitKey = keyof TenantLimitsConfig;
const KEYS: readonly LimitKey[] = [
  'dailyUsd',
  'monthlyUsd',
  'dailyTokens',
  'monthlyTokens',
  'maxSessionTokens',
  'maxResponseOutputTokens',
  'maxSessionDurationSec',
  'maxConcurrentSessions',
];

function money(where: string, v: number | string | null | undefined): Nanos | null {
  if (v === null || v === undefined) return null;
  const n = usdToNanos(v);
  if (n === null) throw new LimitsConfigError(`${where}: ${String(v)} is not a USD amount with at most 9 decimals`);
  return n;
}

/**
 * A tenant's limits: the tenant's own `limits` over its plan (or `metering.defaultPlan`). A field
 * the tenant sets to null removes the plan's limit.
 */
export function resolveLimits(
  tenant: { readonly id: string; readonly plan: string | null; readonly limits: TenantLimitsConfig | null },
  metering: Pick<MeteringConfig, 'plans' | 'defaultPlan'>,
): EffectiveLimits {
  const planName = tenant.plan ?? metering.defaultPlan;
  let plan: TenantLimitsConfig = {};
  if (planName !== null) {
    // Own entries only: a plan named `constructor` must not resolve to Object's.
    const p = Object.hasOwn(metering.plans, planName) ? metering.plans[planName] : undefined;
    if (!p) throw new LimitsConfigError(`tenants.${tenant.id}: plan "${planName}" is not defined in metering.plans`);
    plan = p;
  }
  const merged: Record<string, unknown> = {};
  for (const k of KEYS) {
    const own = tenant.limits?.[k];
    merged[k] = own !== undefined ? own : plan[k];
  }
  const m = merged as TenantLimitsConfig;
  const where = `tenants.${tenant.id}.limits`;
  return {
    caps: {
      dayNanos: money(`${where}.dailyUsd`, m.dailyUsd),
      monthNanos: money(`${where}.monthlyUsd`, m.monthlyUsd),
      dayTokens: m.dailyTokens ?? null,
      monthTokens: m.monthlyTokens ?? null,
    },
    maxSessionTokens: m.maxSessionTokens ?? null,
    maxResponseOutputTokens: m.maxResponseOutputTokens ?? null,
    maxSessionDurationMs: m.maxSessionDurationSec == null ? null : m.maxSessionDurationSec * 1000,
    maxConcurrentSessions: m.maxConcurrentSessions ?? null,
  };
}

/** Config-time check of every plan (catches bad amounts in plans no tenant uses yet). */
export function validatePlans(metering: Pick<MeteringConfig, 'plans' | 'defaultPlan'>): void {
  if (metering.defaultPlan !== null && !Object.hasOwn(metering.plans, metering.defaultPlan)) {
    throw new LimitsConfigError(`metering.defaultPlan: "${metering.defaultPlan}" is not defined in metering.plans`);
  }
  for (const [name, p] of Object.entries(metering.plans)) {
    money(`metering.plans.${name}.dailyUsd`, p.dailyUsd);
    money(`metering.plans.${name}.monthlyUsd`, p.monthlyUsd);
  }
}
