import { afterEach, describe, expect, it } from 'vitest';
import type { HttpReply, HttpRequestInfo, HttpRoute } from '../app/module.js';
import type { Tenant } from '../tenants/tenant.js';
import { nextUtcMidnight, utcDate } from '../../test/support/clock.js';
import { caps, NEXT_DAY, record, T0 } from '../../test/metering/ledger-contract.js';
import type { Ledger, UsageCursor } from './ledger.js';
import { NO_CAPS, type EffectiveLimits } from './limits.js';
import { SqliteLedger } from './sqlite-ledger.js';

/*
 * The admin API of metering, called directly (the HTTP listener and its bearer check are tested in
 * test/metering/caps.test.ts and src/server/admin-key.test.ts): what an operator reads and changes.
 */

const tenant = (id: string, plan: string | null = null): Tenant => ({ id, name: id, policy: null, plan, limits: null });
const TENANTS = new Map<string, Tenant>([
  ['acme', tenant('acme', 'starter')],
  ['beta', tenant('beta')],
]);
const ACME_LIMITS: EffectiveLimits = {
  caps: caps({ dayNanos: 2_000_000_000, monthNanos: 50_000_000_000 }),
  maxSessionTokens: 30_000,
  maxResponseOutputTokens: 4096,
  maxSessionDurationMs: 1_800_000,
  maxConcurrentSessions: 3,
};
const BETA_LIMITS: EffectiveLimits = { caps: NO_CAPS, maxSessionTokens: null, maxResponseOutputTokens: null, maxSessionDurationMs: null, maxConcurrentSessions: null };

const open: SqliteLedger[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((l) => l.close()));
});

/**
 * Imported per test, not at collection: a mutant that breaks the module at import (a schema zod
 * refuses) then fails the tests instead of the file's collection.
 */
async function setup(ledgerOverride?: Ledger) {
  const { meteringRoutes } = await import('./routes.js');
  const sqlite = new SqliteLedger(':memory:', { wall: () => T0 });
  open.push(sqlite);
  const ledger = ledgerOverride ?? sqlite;
  const logs: Array<{ obj: object; msg: string }> = [];
  const warnings: Array<{ obj: object; msg: string }> = [];
  const routes = meteringRoutes({
    ledger,
    tenants: TENANTS,
    limitsOf: (t) => (t.id === 'acme' ? ACME_LIMITS : BETA_LIMITS),
    wall: () => T0,
    log: { info: (obj, msg) => logs.push({ obj, msg }), warn: (obj, msg) => warnings.push({ obj, msg }) },
  });
  const route = (method: string, path: string): HttpRoute => {
    const r = routes.find((x) => x.method === method && x.path === path);
    if (!r) throw new Error(`no route ${method} ${path}`);
    return r;
  };
  const call = async (method: string, path: string, params: Record<string, string>, opts: { body?: string; query?: string } = {}) => {
    const req: HttpRequestInfo = { method, path, query: new URLSearchParams(opts.query ?? ''), headers: new Map(), body: Buffer.from(opts.body ?? '') };
    const reply: HttpReply = await route(method, path).handle(req, params);
    const text = reply.body.toString();
    return { reply, status: reply.status, text, json: reply.headers?.['content-type'] === 'application/json' ? (JSON.parse(text) as Record<string, unknown>) : null };
  };
  return { sqlite, routes, logs, warnings, call };
}

const SPEND = '/admin/tenants/:id/spend';
const CAPS = '/admin/tenants/:id/caps';
const RESET = '/admin/tenants/:id/reset';
const USAGE = '/admin/usage';

/** A ledger that is down (Redis unreachable): every read and write the admin API makes throws. */
function downLedger(base: Ledger): Ledger {
  const fail = () => {
    throw new Error('connection refused');
  };
  return Object.assign(Object.create(base) as Ledger, { status: fail, setOverride: fail, resetSpend: fail, usagePage: fail });
}

const day = utcDate(T0);
const month = day.slice(0, 7);
const dayResets = new Date(nextUtcMidnight(T0)).toISOString();
const monthResets = new Date(Date.UTC(new Date(T0).getUTCFullYear(), new Date(T0).getUTCMonth() + 1, 1)).toISOString();

describe('admin API: metering routes', () => {
  it('serves exactly the four admin routes, every one behind the admin key', async () => {
    const { routes } = await setup();
    expect(routes.map((r) => [r.method, r.path, r.auth])).toEqual([
      ['GET', SPEND, 'admin'],
      ['PUT', CAPS, 'admin'],
      ['POST', RESET, 'admin'],
      ['GET', USAGE, 'admin'],
    ]);
  });

  it('GET spend: the day and month, spent, reserved, caps, remaining, overrides and limits, exactly', async () => {
    const { sqlite, call } = await setup();
    sqlite.settle(null, record({ costNanos: 1_250_000_000, totalTokens: 900 }));
    // Tomorrow (the same month: see recentNoon): the month's spend, not today's.
    sqlite.settle(null, record({ ref: 'resp_next', ts: NEXT_DAY + 3_600_000, costNanos: 5, totalTokens: 1 }));
    sqlite.reserve({ tenant: 'acme', id: 'r1', amount: { nanos: 300_000_000, tokens: 40 }, caps: NO_CAPS, wallMs: T0, mode: 'remaining' });
    sqlite.setOverride('acme', 'month', { tokens: 1_000_000 });
    const r = await call('GET', SPEND, { id: 'acme' });
    expect(r.status).toBe(200);
    expect(r.reply.headers).toEqual({ 'content-type': 'application/json' });
    expect(r.json).toEqual({
      tenant: 'acme',
      plan: 'starter',
      ledger: 'sqlite',
      day: {
        period: day,
        resetsAt: dayResets,
        spentUsd: '1.25',
        spentNanos: 1_250_000_000,
        spentTokens: 900,
        reservedUsd: '0.30',
        reservedTokens: 40,
        capUsd: '2.00',
        capTokens: null,
        remainingUsd: '0.75',
        override: { usd: null, tokens: null },
      },
      month: expect.objectContaining({
        period: month,
        resetsAt: monthResets,
        reservedUsd: '0.30',
        capUsd: '50.00',
        capTokens: 1_000_000,
        override: { usd: null, tokens: 1_000_000 },
      }),
      limits: { maxSessionTokens: 30_000, maxResponseOutputTokens: 4096, maxSessionDurationSec: 1800, maxConcurrentSessions: 3 },
    });
    const m = r.json!['month'] as Record<string, unknown>;
    expect(m['spentNanos']).toBe(1_250_000_005);
    expect(m['spentTokens']).toBe(901);
    expect(m['spentUsd']).toBe('1.250000005');
    expect(m['remainingUsd']).toBe('48.749999995');
  });

  it('GET spend: no caps and no limits read as null; spend beyond the cap leaves nothing remaining (never negative)', async () => {
    const { sqlite, call } = await setup();
    expect((await call('GET', SPEND, { id: 'beta' })).json).toMatchObject({
      tenant: 'beta',
      plan: null,
      day: { capUsd: null, capTokens: null, remainingUsd: null, spentUsd: '0.00', reservedUsd: '0.00' },
      month: { capUsd: null, remainingUsd: null },
      limits: { maxSessionTokens: null, maxResponseOutputTokens: null, maxSessionDurationSec: null, maxConcurrentSessions: null },
    });
    // One response overshoots the day's cap (remaining mode allows that once).
    sqlite.settle(null, record({ costNanos: 2_500_000_000 }));
    expect((await call('GET', SPEND, { id: 'acme' })).json).toMatchObject({ day: { spentUsd: '2.50', capUsd: '2.00', remainingUsd: '0.00' }, month: { remainingUsd: '47.50' } });
  });

  it('every tenant route answers 404 unknown_tenant for a tenant that is not configured', async () => {
    const { call } = await setup();
    for (const [method, path, body] of [
      ['GET', SPEND, undefined],
      ['PUT', CAPS, '{"period":"day","usd":1}'],
      ['POST', RESET, '{"period":"day"}'],
    ] as const) {
      const r = await call(method, path, { id: 'nobody' }, body === undefined ? {} : { body });
      expect([r.status, r.json], `${method} ${path}`).toEqual([404, { error: { code: 'unknown_tenant', message: 'No tenant "nobody".' } }]);
    }
    // A prototype key is not a tenant.
    expect((await call('GET', SPEND, { id: 'constructor' })).status).toBe(404);
    // No id captured at all.
    expect((await call('GET', SPEND, {})).json).toEqual({ error: { code: 'unknown_tenant', message: 'No tenant "".' } });
    expect((await call('PUT', CAPS, {}, { body: '{"period":"day"}' })).json).toEqual({ error: { code: 'unknown_tenant', message: 'No tenant "".' } });
    expect((await call('POST', RESET, {}, { body: '{"period":"day"}' })).json).toEqual({ error: { code: 'unknown_tenant', message: 'No tenant "".' } });
    expect((await call('GET', USAGE, {}, { query: 'tenant=nobody' })).json).toEqual({ error: { code: 'unknown_tenant', message: 'No tenant "nobody".' } });
  });

  it('PUT caps: raises a cap (string or number USD, tokens), clears it with null, leaves what is absent', async () => {
    const { sqlite, call, logs } = await setup();
    let r = await call('PUT', CAPS, { id: 'acme' }, { body: JSON.stringify({ period: 'day', usd: '7.5', tokens: 1234 }) });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ tenant: 'acme', day: { capUsd: '7.50', capTokens: 1234, override: { usd: '7.50', tokens: 1234 } }, month: { capUsd: '50.00', override: { usd: null, tokens: null } } });
    expect(logs).toEqual([{ obj: { event: 'cap_override', tenant: 'acme', period: 'day', usd: '7.5', tokens: 1234 }, msg: 'metering cap override' }]);
    // The ledger enforces it: 7 USD reserved fits under 7.5 (it would not under the configured 2).
    expect(sqlite.reserve({ tenant: 'acme', id: 'x', amount: { nanos: 7_000_000_000, tokens: 0 }, caps: ACME_LIMITS.caps, wallMs: T0, mode: 'worst_case' }).kind).toBe('ok');
    sqlite.release('acme', 'x');

    // usd absent: the cost override stays; tokens null: cleared.
    r = await call('PUT', CAPS, { id: 'acme' }, { body: JSON.stringify({ period: 'day', tokens: null }) });
    expect(r.json).toMatchObject({ day: { capUsd: '7.50', capTokens: null, override: { usd: '7.50', tokens: null } } });
    expect(logs[1]!.obj).toEqual({ event: 'cap_override', tenant: 'acme', period: 'day', usd: null, tokens: null });
    // tokens absent: stays; a number of USD.
    await call('PUT', CAPS, { id: 'acme' }, { body: JSON.stringify({ period: 'day', tokens: 10 }) });
    r = await call('PUT', CAPS, { id: 'acme' }, { body: JSON.stringify({ period: 'day', usd: 0.25 }) });
    expect(r.json).toMatchObject({ day: { capUsd: '0.25', capTokens: 10, override: { usd: '0.25', tokens: 10 } } });
    // null restores the configured cap.
    r = await call('PUT', CAPS, { id: 'acme' }, { body: JSON.stringify({ period: 'day', usd: null }) });
    expect(r.json).toMatchObject({ day: { capUsd: '2.00', capTokens: 10, override: { usd: null, tokens: 10 } } });
    // Month overrides land on the month only; zero is a cap (everything refused), not "none".
    r = await call('PUT', CAPS, { id: 'acme' }, { body: JSON.stringify({ period: 'month', usd: 0, tokens: 0 }) });
    expect(r.json).toMatchObject({ day: { capUsd: '2.00' }, month: { capUsd: '0.00', capTokens: 0, remainingUsd: '0.00', override: { usd: '0.00', tokens: 0 } } });
    expect(sqlite.reserve({ tenant: 'acme', id: 'y', amount: { nanos: 1, tokens: 0 }, caps: ACME_LIMITS.caps, wallMs: T0, mode: 'remaining' })).toMatchObject({ kind: 'over', hit: { cap: 'monthly_usd', limit: 0 } });
  });

  it('PUT caps: a body that is not exactly {period, usd?, tokens?} is refused with 400 and changes nothing', async () => {
    const { call, logs } = await setup();
    const bad = async (body: string) => {
      const r = await call('PUT', CAPS, { id: 'acme' }, { body });
      expect(r.status, body).toBe(400);
      return (r.json!['error'] as { code: string; message: string });
    };
    expect(await bad('{"period":')).toEqual({ code: 'invalid_json', message: 'The body is not valid JSON.' });
    expect(await bad('')).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/^period: /) });
    expect(await bad('[]')).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/^\(body\): /) });
    expect(await bad('{"period":"week","usd":1}')).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/^period: /) });
    expect(await bad('{"period":"day","usd":-1}')).toMatchObject({ message: expect.stringMatching(/^usd: /) });
    expect(await bad('{"period":"day","usd":"1e3"}')).toMatchObject({ message: expect.stringMatching(/^usd: /) });
    expect(await bad('{"period":"day","usd":"-1"}')).toMatchObject({ message: expect.stringMatching(/^usd: /) });
    expect(await bad('{"period":"day","usd":"1."}')).toMatchObject({ message: expect.stringMatching(/^usd: /) });
    expect(await bad('{"period":"day","usd":"x1.5"}')).toMatchObject({ message: expect.stringMatching(/^usd: /) });
    expect(await bad('{"period":"day","usd":"1.5x"}')).toMatchObject({ message: expect.stringMatching(/^usd: /) });
    // Digits only: no blanks around them (the decimal parser would trim them), no bare fraction.
    for (const usd of [' 1.5', '1.5 ', '.5', '1.5.5']) expect(await bad(JSON.stringify({ period: 'day', usd })), usd).toMatchObject({ message: expect.stringMatching(/^usd: Invalid/) });
    expect(await bad('{"period":"day","tokens":1.5}')).toMatchObject({ message: expect.stringMatching(/^tokens: /) });
    expect(await bad('{"period":"day","tokens":-1}')).toMatchObject({ message: expect.stringMatching(/^tokens: /) });
    expect(await bad('{"period":"day","dailyUsd":1}')).toMatchObject({ code: 'invalid_request' });
    // Two problems: both named, separated.
    expect(await bad('{"period":"week","tokens":-1}')).toMatchObject({ message: expect.stringMatching(/^period: .+; tokens: /) });
    expect(await bad('{"period":"day","usd":"0.0000000001"}')).toEqual({ code: 'invalid_request', message: 'usd: at most 9 decimals' });
    expect(await bad('{"period":"day","usd":0.0000000001}')).toEqual({ code: 'invalid_request', message: 'usd: at most 9 decimals' });
    expect(logs).toEqual([]);
    expect((await call('GET', SPEND, { id: 'acme' })).json).toMatchObject({ day: { capUsd: '2.00', override: { usd: null, tokens: null } } });
    // Nine decimals are fine; so are whole dollars and several digits each side.
    expect((await call('PUT', CAPS, { id: 'acme' }, { body: '{"period":"day","usd":"0.000000001"}' })).json).toMatchObject({ day: { capUsd: '0.000000001' } });
    expect((await call('PUT', CAPS, { id: 'acme' }, { body: '{"period":"day","usd":"12"}' })).json).toMatchObject({ day: { capUsd: '12.00' } });
    expect((await call('PUT', CAPS, { id: 'acme' }, { body: '{"period":"day","usd":"12.25"}' })).json).toMatchObject({ day: { capUsd: '12.25' } });
  });

  it('POST reset: zeroes the spend of the period asked for only, logs it, and answers the new status', async () => {
    const { sqlite, call, logs } = await setup();
    sqlite.settle(null, record({ costNanos: 3_000_000_000 }));
    let r = await call('POST', RESET, { id: 'acme' }, { body: '{"period":"day"}' });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ day: { spentUsd: '0.00', spentTokens: 0 }, month: { spentUsd: '3.00', spentTokens: 150 } });
    expect(logs).toEqual([{ obj: { event: 'spend_reset', tenant: 'acme', period: 'day' }, msg: 'metering spend reset' }]);
    r = await call('POST', RESET, { id: 'acme' }, { body: '{"period":"month"}' });
    expect(r.json).toMatchObject({ month: { spentUsd: '0.00' } });
    // Usage records are kept.
    expect((await call('GET', USAGE, {})).text.split('\n').filter(Boolean)).toHaveLength(1);
    for (const body of ['', '{"period":"year"}', '{"period":"day","x":1}', 'nope']) {
      expect((await call('POST', RESET, { id: 'acme' }, { body })).status, body).toBe(400);
    }
    expect(logs).toHaveLength(2);
  });

  it('GET usage: JSON lines, per tenant or all, since epoch ms or ISO time, bounded and paged', async () => {
    const { sqlite, call } = await setup();
    sqlite.settle(null, record({ ref: 'a1', ts: T0 - 86_400_000 }));
    sqlite.settle(null, record({ ref: 'b1', tenant: 'beta', ts: T0 - 1000 }));
    sqlite.settle(null, record({ ref: 'a2', ts: T0 }));
    sqlite.settle(null, record({ ref: 'a3', ts: T0 + 1000, costNanos: 1_500_000_000 }));
    const refs = async (query: string) => {
      const r = await call('GET', USAGE, {}, { query });
      expect(r.status, query).toBe(200);
      expect(r.reply.headers?.['content-type']).toBe('application/x-ndjson');
      return r.text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { ref: string }).ref);
    };
    expect(await refs('')).toEqual(['a1', 'b1', 'a2', 'a3']);
    expect(await refs('tenant=')).toEqual(['a1', 'b1', 'a2', 'a3']);
    expect(await refs('tenant=acme')).toEqual(['a1', 'a2', 'a3']);
    expect(await refs('tenant=beta')).toEqual(['b1']);
    expect(await refs('since=')).toEqual(['a1', 'b1', 'a2', 'a3']);
    expect(await refs(`since=${T0}`)).toEqual(['a2', 'a3']);
    expect(await refs(`since=${T0 + 1}`)).toEqual(['a3']);
    expect(await refs(`tenant=acme&since=${encodeURIComponent(new Date(T0 - 1000).toISOString())}`)).toEqual(['a2', 'a3']);
    // A date alone is its UTC midnight.
    expect(await refs(`since=${day}`)).toEqual(['b1', 'a2', 'a3']);
    // Each line is the record with an ISO time and the cost in USD.
    const line = (await call('GET', USAGE, {}, { query: `since=${T0 + 1}` })).text;
    expect(line.endsWith('\n')).toBe(true);
    expect(JSON.parse(line)).toMatchObject({ ref: 'a3', tenant: 'acme', ts: new Date(T0 + 1000).toISOString(), costUsd: '1.50', costNanos: 1_500_000_000 });

    for (const since of ['yesterday', '12abc', 'abc12']) {
      expect((await call('GET', USAGE, {}, { query: `since=${since}` })).json, since).toEqual({ error: { code: 'invalid_request', message: 'since: epoch ms or an ISO 8601 time' } });
    }

    // Paging: a full page names where the next one starts; a short page does not.
    let r = await call('GET', USAGE, {}, { query: 'limit=2' });
    expect(r.text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { ref: string }).ref)).toEqual(['a1', 'b1']);
    expect(r.reply.headers?.['x-next-since']).toBe(String(T0 - 1000));
    r = await call('GET', USAGE, {}, { query: 'limit=4' });
    expect(r.reply.headers?.['x-next-since']).toBe(String(T0 + 1000));
    r = await call('GET', USAGE, {}, { query: 'limit=5' });
    expect(r.reply.headers).toEqual({ 'content-type': 'application/x-ndjson' });
    // A limit that is not a positive integer falls back to the default.
    for (const limit of ['0', '-1', '1.5', 'x', '']) expect(await refs(`limit=${limit}`), limit).toHaveLength(4);
  });

  it('GET usage: the page size asked of the ledger is bounded (default 10000, at most 100000)', async () => {
    const { sqlite } = await setup();
    const asked: Array<[string | null, number | UsageCursor, number]> = [];
    const spy: Ledger = Object.assign(Object.create(sqlite) as Ledger, {
      usagePage: (t: string | null, from: number | UsageCursor, limit: number) => {
        asked.push([t, from, limit]);
        return { records: [], next: null };
      },
    });
    const { call } = await setup(spy);
    for (const q of ['', 'limit=7', 'limit=100000', 'limit=100001', 'limit=1e9', 'limit=0', 'limit=2.5', 'tenant=beta&since=5']) await call('GET', USAGE, {}, { query: q });
    expect(asked).toEqual([
      [null, 0, 10_000],
      [null, 0, 7],
      [null, 0, 100_000],
      [null, 0, 100_000],
      [null, 0, 100_000],
      [null, 0, 10_000],
      [null, 0, 10_000],
      ['beta', 5, 10_000],
    ]);
  });

  it('a ledger that is down: every route answers 503 budget_unavailable with a fixed message, the ledger\'s error text in the log only, and nothing is logged as done', async () => {
    // Regression (2026-12-06 HTTP review): the message carried the ledger library's error text
    // ("The ledger is unavailable: Stream isn't writeable…", a socket error naming the ledger's address).
    const { sqlite } = await setup();
    const { call, logs, warnings } = await setup(downLedger(sqlite));
    const expected = { error: { code: 'budget_unavailable', message: 'The ledger is unavailable.' } };
    expect((await call('GET', SPEND, { id: 'acme' })).json).toEqual(expected);
    expect((await call('PUT', CAPS, { id: 'acme' }, { body: '{"period":"day","usd":1}' })).json).toEqual(expected);
    expect((await call('POST', RESET, { id: 'acme' }, { body: '{"period":"day"}' })).json).toEqual(expected);
    expect((await call('GET', USAGE, {})).json).toEqual(expected);
    for (const [m, p, b] of [['GET', SPEND, ''], ['PUT', CAPS, '{"period":"day"}'], ['POST', RESET, '{"period":"day"}'], ['GET', USAGE, '']] as const) {
      const r = await call(m, p, { id: 'acme' }, { body: b });
      expect(r.status).toBe(503);
      expect(r.text).not.toContain('connection refused');
    }
    expect(logs).toEqual([]);
    // The detail is in the log, once per refused call, with the route.
    const entry = (route: string) => ({ obj: { event: 'admin_ledger_unavailable', route, ledger: 'sqlite', err: 'connection refused' }, msg: 'admin API: ledger unavailable' });
    expect(warnings).toEqual([SPEND, CAPS, RESET, USAGE, SPEND, CAPS, RESET, USAGE].map(entry));
    // A thrown non-Error is handled (and logged) too.
    const odd: Ledger = Object.assign(Object.create(sqlite) as Ledger, {
      status: () => {
        throw 'socket closed'; // eslint-disable-line no-throw-literal
      },
    });
    const oddSetup = await setup(odd);
    expect((await oddSetup.call('GET', SPEND, { id: 'acme' })).json).toEqual(expected);
    expect(oddSetup.warnings.map((w) => w.obj)).toEqual([{ event: 'admin_ledger_unavailable', route: SPEND, ledger: 'sqlite', err: 'socket closed' }]);
  });

  it('GET usage: a repeated tenant, since or limit is refused 400 invalid_request, the ledger not asked', async () => {
    // Regression (2026-12-06 HTTP review): the first value won silently, so a gateway that checks the
    // last tenant= (or joins repeated values) and the proxy could read different tenants.
    const { sqlite } = await setup();
    let asked = 0;
    const spy: Ledger = Object.assign(Object.create(sqlite) as Ledger, {
      usagePage: () => {
        asked++;
        return { records: [], next: null };
      },
    });
    const { call } = await setup(spy);
    for (const [query, name] of [
      ['tenant=acme&tenant=beta', 'tenant'],
      ['tenant=acme&tenant=acme', 'tenant'],
      ['tenant=&tenant=beta', 'tenant'],
      ['since=0&since=5', 'since'],
      ['tenant=acme&limit=1&limit=100000', 'limit'],
      ['limit=1&since=0&limit=1', 'limit'],
      ['cursor=a&cursor=b', 'cursor'],
    ] as const) {
      const r = await call('GET', USAGE, {}, { query });
      expect([r.status, r.json], query).toEqual([400, { error: { code: 'invalid_request', message: `The query parameter '${name}' is given more than once.` } }]);
    }
    expect(asked).toBe(0);
    // Each once, and parameters the route does not read, repeated: answered.
    for (const query of ['tenant=acme&since=0&limit=10', 'x=1&x=2', 'tenant=acme&tenants=beta']) expect((await call('GET', USAGE, {}, { query })).status, query).toBe(200);
    expect(asked).toBe(3);
  });

  it('GET usage: following x-next-cursor returns every record once, more than a page of them in one millisecond; since still works, beside it is refused', async () => {
    // Regression (2026-12-07): x-next-since alone repeated the boundary millisecond's records, and a
    // millisecond holding more than `limit` never advanced (a client following it looped forever).
    const { sqlite, call } = await setup();
    sqlite.settle(null, record({ ref: 'before', ts: T0 - 1 }));
    for (let i = 0; i < 5; i++) sqlite.settle(null, record({ ref: `same_${i}`, tenant: i % 2 === 0 ? 'acme' : 'beta', ts: T0 }));
    sqlite.settle(null, record({ ref: 'after', ts: T0 + 1 }));
    const page = async (query: string) => {
      const r = await call('GET', USAGE, {}, { query });
      expect(r.status, query).toBe(200);
      return { refs: r.text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { ref: string }).ref), next: r.reply.headers?.['x-next-cursor'] ?? null };
    };
    const follow = async (first: string): Promise<string[]> => {
      const seen: string[] = [];
      let p = await page(first);
      for (let pages = 0; pages < 20; pages++) {
        seen.push(...p.refs);
        if (p.next === null) return seen;
        p = await page(`limit=2&cursor=${p.next}`);
      }
      throw new Error(`x-next-cursor did not advance: ${seen.join(',')}`);
    };
    expect(await follow(`limit=2&since=${T0}`)).toEqual(['same_0', 'same_1', 'same_2', 'same_3', 'same_4', 'after']);
    expect(await follow('limit=2')).toEqual(['before', 'same_0', 'same_1', 'same_2', 'same_3', 'same_4', 'after']);
    // The old header is still given: the last record's time.
    expect((await call('GET', USAGE, {}, { query: `limit=2&since=${T0}` })).reply.headers?.['x-next-since']).toBe(String(T0));
    // A short page names no next page.
    expect((await page('limit=8')).next).toBeNull();
    const bad = (message: string) => [400, { error: { code: 'invalid_request', message } }];
    const first = await page('limit=2');
    for (const cursor of ['x', 'not-base64!', Buffer.from('[1,2]').toString('base64url'), Buffer.from('[-1,2,""]').toString('base64url'), Buffer.from('{"ts":1}').toString('base64url')]) {
      const r = await call('GET', USAGE, {}, { query: `cursor=${encodeURIComponent(cursor)}` });
      expect([r.status, r.json], cursor).toEqual(bad('cursor: not a value x-next-cursor gave'));
    }
    for (const query of [`since=0&cursor=${first.next!}`, `since=&cursor=${first.next!}`]) {
      const r = await call('GET', USAGE, {}, { query });
      expect([r.status, r.json], query).toEqual(bad('Give since or cursor, not both.'));
    }
  });
});
