import { describe, expect, it } from 'vitest';
import { meteringSchema, type TenantLimitsConfig } from './config.js';
import { hasCaps, LimitsConfigError, NO_CAPS, resolveLimits, validatePlans } from './limits.js';

const metering = (plans: Record<string, TenantLimitsConfig> = {}, defaultPlan: string | null = null) => meteringSchema().parse({ plans, defaultPlan });
const tenant = (limits: TenantLimitsConfig | null, plan: string | null = null) => ({ id: 'acme', plan, limits });

describe('limits: what a tenant is held to', () => {
  it('each configured limit lands on its own cap: day vs month, cost vs tokens, never swapped', () => {
    const l = resolveLimits(
      tenant({
        dailyUsd: '1',
        monthlyUsd: '20',
        dailyTokens: 3,
        monthlyTokens: 40,
        maxSessionTokens: 500,
        maxResponseOutputTokens: 600,
        maxSessionDurationSec: 7,
        maxConcurrentSessions: 8,
      }),
      metering(),
    );
    expect(l).toEqual({
      caps: { dayNanos: 1_000_000_000, monthNanos: 20_000_000_000, dayTokens: 3, monthTokens: 40 },
      maxSessionTokens: 500,
      maxResponseOutputTokens: 600,
      maxSessionDurationMs: 7000,
      maxConcurrentSessions: 8,
    });
    expect(hasCaps(l.caps)).toBe(true);
  });

  it('a tenant without limits and without a plan has no caps at all', () => {
    const l = resolveLimits(tenant(null), metering());
    expect(l).toEqual({ caps: NO_CAPS, maxSessionTokens: null, maxResponseOutputTokens: null, maxSessionDurationMs: null, maxConcurrentSessions: null });
    expect(hasCaps(l.caps)).toBe(false);
    expect(hasCaps(resolveLimits(tenant({}), metering()).caps)).toBe(false);
  });

  it('any one cap alone makes the tenant capped (each period and each kind)', () => {
    for (const only of [{ dailyUsd: '0' }, { monthlyUsd: '5' }, { dailyTokens: 0 }, { monthlyTokens: 9 }] as TenantLimitsConfig[]) {
      expect(hasCaps(resolveLimits(tenant(only), metering()).caps), JSON.stringify(only)).toBe(true);
    }
    // Session limits are not period caps: no ledger check is needed for them.
    expect(hasCaps(resolveLimits(tenant({ maxSessionTokens: 10, maxConcurrentSessions: 1 }), metering()).caps)).toBe(false);
  });

  it('a zero cap is a cap (refuse everything), not "no cap"', () => {
    expect(resolveLimits(tenant({ dailyUsd: 0, monthlyTokens: 0 }), metering()).caps).toEqual({ dayNanos: 0, monthNanos: null, dayTokens: null, monthTokens: 0 });
  });

  it('the tenant\'s own limits override its plan field by field; null removes the plan\'s limit', () => {
    const m = metering({ pro: { dailyUsd: '5', monthlyUsd: '50', dailyTokens: 1000, maxSessionDurationSec: 60, maxConcurrentSessions: 3 } });
    const l = resolveLimits(tenant({ dailyUsd: '0.25', dailyTokens: null, maxConcurrentSessions: null }, 'pro'), m);
    expect(l.caps).toEqual({ dayNanos: 250_000_000, monthNanos: 50_000_000_000, dayTokens: null, monthTokens: null });
    expect(resolveLimits(tenant({ dailyUsd: null, monthlyUsd: null }, 'pro'), m).caps).toEqual({ dayNanos: null, monthNanos: null, dayTokens: 1000, monthTokens: null });
    expect(l.maxSessionDurationMs).toBe(60_000);
    expect(l.maxConcurrentSessions).toBeNull();
  });

  it('tenants without a plan get the default plan; a named plan wins over it', () => {
    const m = metering({ starter: { monthlyUsd: '5' }, pro: { monthlyUsd: '50' } }, 'starter');
    expect(resolveLimits(tenant(null), m).caps.monthNanos).toBe(5_000_000_000);
    expect(resolveLimits(tenant(null, 'pro'), m).caps.monthNanos).toBe(50_000_000_000);
  });

  it('an unknown plan (including Object.prototype names) is a configuration error naming the tenant', () => {
    for (const plan of ['gold', 'constructor', 'toString']) {
      expect(() => resolveLimits(tenant(null, plan), metering({ pro: {} }))).toThrow(LimitsConfigError);
      expect(() => resolveLimits(tenant(null, plan), metering({ pro: {} }))).toThrow(`tenants.acme: plan "${plan}" is not defined in metering.plans`);
    }
  });

  it('a USD amount that is not exact to the nano-dollar is refused with where it is written', () => {
    expect(() => resolveLimits(tenant({ dailyUsd: '0.0000000001' }), metering())).toThrow('tenants.acme.limits.dailyUsd: 0.0000000001 is not a USD amount with at most 9 decimals');
    expect(() => resolveLimits(tenant({ monthlyUsd: '0.0000000001' }), metering())).toThrow('tenants.acme.limits.monthlyUsd: 0.0000000001 is not a USD amount with at most 9 decimals');
    try {
      resolveLimits(tenant({ monthlyUsd: '1.0000000001' }), metering());
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(LimitsConfigError);
      expect((err as Error).name).toBe('LimitsConfigError');
    }
  });
});

describe('limits: config-time plan validation', () => {
  it('accepts valid plans and no default plan', () => {
    expect(() => validatePlans(metering({ a: { dailyUsd: '1.5', monthlyUsd: 30 } }))).not.toThrow();
    expect(() => validatePlans(metering({ a: {} }, 'a'))).not.toThrow();
  });

  it('refuses a default plan that does not exist (also an Object.prototype name)', () => {
    expect(() => validatePlans(metering({}, 'x'))).toThrow('metering.defaultPlan: "x" is not defined in metering.plans');
    expect(() => validatePlans(metering({}, 'constructor'))).toThrow(LimitsConfigError);
  });

  it('refuses an inexact amount in any plan, even one no tenant uses, naming the plan and field', () => {
    expect(() => validatePlans(metering({ ok: {}, p: { dailyUsd: '0.0000000001' } }))).toThrow('metering.plans.p.dailyUsd');
    expect(() => validatePlans(metering({ q: { monthlyUsd: '0.0000000001' } }))).toThrow('metering.plans.q.monthlyUsd');
  });
});
