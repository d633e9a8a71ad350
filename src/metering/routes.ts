import { z } from 'zod';
import { json, type HttpReply, type HttpRequestInfo, type HttpRoute } from '../app/module.js';
import type { Tenant } from '../tenants/tenant.js';
import { decodeUsageCursor, encodeUsageCursor, type Ledger, type PeriodStatus, type TenantStatus, type UsageCursor } from './ledger.js';
import type { EffectiveLimits } from './limits.js';
import { formatUsd, usdToNanos } from './money.js';
import { usageLine } from './usage-sink.js';

export interface RoutesDeps {
  readonly ledger: Ledger;
  readonly tenants: ReadonlyMap<string, Tenant>;
  limitsOf(tenant: Tenant): EffectiveLimits;
  readonly wall: () => number;
  readonly log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

/** The admin bodies' schemas, built per request (admin calls are rare; zod schemas are heavy to keep). */
const period = () => z.enum(['day', 'month']);

function capsBody() {
  return z
    .object({
      period: period(),
      // New cost cap for the period; null restores the configured cap.
      usd: z
        .union([z.number().nonnegative(), z.string().regex(/^\d+(\.\d+)?$/)])
        .nullable()
        .optional(),
      tokens: z.number().int().nonnegative().nullable().optional(),
    })
    .strict();
}

function resetBody() {
  return z.object({ period: period() }).strict();
}

const MAX_USAGE = 100_000;

function periodJson(p: PeriodStatus): Record<string, unknown> {
  const usd = (n: number | null) => (n === null ? null : formatUsd(n));
  return {
    period: p.period.key.slice(2),
    resetsAt: new Date(p.period.resetsAt).toISOString(),
    spentUsd: formatUsd(p.spent.nanos),
    spentNanos: p.spent.nanos,
    spentTokens: p.spent.tokens,
    reservedUsd: formatUsd(p.reserved.nanos),
    reservedTokens: p.reserved.tokens,
    capUsd: usd(p.capNanos),
    capTokens: p.capTokens,
    remainingUsd: p.capNanos === null ? null : formatUsd(Math.max(0, p.capNanos - p.spent.nanos)),
    override: { usd: usd(p.override.nanos), tokens: p.override.tokens },
  };
}

function statusJson(s: TenantStatus, ledger: Ledger, limits: EffectiveLimits, tenant: Tenant): Record<string, unknown> {
  return {
    tenant: s.tenant,
    plan: tenant.plan,
    ledger: ledger.kind,
    day: periodJson(s.day),
    month: periodJson(s.month),
    limits: {
      maxSessionTokens: limits.maxSessionTokens,
      maxResponseOutputTokens: limits.maxResponseOutputTokens,
      maxSessionDurationSec: limits.maxSessionDurationMs === null ? null : limits.maxSessionDurationMs / 1000,
      maxConcurrentSessions: limits.maxConcurrentSessions,
    },
  };
}

function parseBody<T>(req: HttpRequestInfo, schema: z.ZodType<T>): { ok: true; value: T } | { ok: false; reply: HttpReply } {
  let raw: unknown;
  try {
    raw = req.body.length === 0 ? {} : JSON.parse(req.body.toString('utf8'));
  } catch {
    return { ok: false, reply: json(400, { error: { code: 'invalid_json', message: 'The body is not valid JSON.' } }) };
  }
  const r = schema.safeParse(raw);
  if (!r.success) {
    return { ok: false, reply: json(400, { error: { code: 'invalid_request', message: r.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ') } }) };
  }
  return { ok: true, value: r.data };
}

function parseSince(v: string | null): number | null {
  if (v === null || v === '') return 0;
  if (/^\d+$/.test(v)) return Number(v);
  const t = Date.parse(v);
  return Number.isNaN(t) ? null : t;
}

/**
 * A ledger failure: a fixed reason outward; the ledger's own error text (the Redis socket error
 * names the ledger's internal address) goes to the log only, as for /readyz and the sessions' errors.
 */
const UNAVAILABLE = { error: { code: 'budget_unavailable', message: 'The ledger is unavailable.' } };

/** Query parameters GET /admin/usage reads: each may be given once (as the upgrade's `model`, `intent`, `call_id`). */
const USAGE_PARAMS = ['tenant', 'since', 'limit', 'cursor'] as const;

/** Admin API of the metering concern (bearer admin key; absent when no admin key is configured). */
export function meteringRoutes(d: RoutesDeps): HttpRoute[] {
  const tenantOr404 = (id: string): Tenant | HttpReply =>
    d.tenants.get(id) ?? json(404, { error: { code: 'unknown_tenant', message: `No tenant "${id}".` } });
  const isReply = (v: Tenant | HttpReply): v is HttpReply => 'status' in v;
  const unavailable = (route: string, err: unknown): HttpReply => {
    d.log.warn({ event: 'admin_ledger_unavailable', route, ledger: d.ledger.kind, err: err instanceof Error ? err.message : String(err) }, 'admin API: ledger unavailable');
    return json(503, UNAVAILABLE);
  };
  const status = async (t: Tenant): Promise<HttpReply> => {
    const limits = d.limitsOf(t);
    const s = await d.ledger.status(t.id, limits.caps, d.wall());
    return json(200, statusJson(s, d.ledger, limits, t));
  };

  return [
    {
      method: 'GET',
      path: '/admin/tenants/:id/spend',
      auth: 'admin',
      async handle(_req, params) {
        const t = tenantOr404(params['id'] ?? '');
        if (isReply(t)) return t;
        try {
          return await status(t);
        } catch (err) {
          return unavailable('/admin/tenants/:id/spend', err);
        }
      },
    },
    {
      method: 'PUT',
      path: '/admin/tenants/:id/caps',
      auth: 'admin',
      async handle(req, params) {
        const t = tenantOr404(params['id'] ?? '');
        if (isReply(t)) return t;
        const body = parseBody(req, capsBody());
        if (!body.ok) return body.reply;
        const { period, usd, tokens } = body.value;
        let nanos: number | null | undefined;
        if (usd === undefined || usd === null) nanos = usd;
        else {
          nanos = usdToNanos(usd);
          if (nanos === null) return json(400, { error: { code: 'invalid_request', message: 'usd: at most 9 decimals' } });
        }
        try {
          await d.ledger.setOverride(t.id, period, { nanos, tokens });
          d.log.info({ event: 'cap_override', tenant: t.id, period, usd: usd ?? null, tokens: tokens ?? null }, 'metering cap override');
          return await status(t);
        } catch (err) {
          return unavailable('/admin/tenants/:id/caps', err);
        }
      },
    },
    {
      method: 'POST',
      path: '/admin/tenants/:id/reset',
      auth: 'admin',
      async handle(req, params) {
        const t = tenantOr404(params['id'] ?? '');
        if (isReply(t)) return t;
        const body = parseBody(req, resetBody());
        if (!body.ok) return body.reply;
        try {
          await d.ledger.resetSpend(t.id, body.value.period, d.wall());
          d.log.info({ event: 'spend_reset', tenant: t.id, period: body.value.period }, 'metering spend reset');
          return await status(t);
        } catch (err) {
          return unavailable('/admin/tenants/:id/reset', err);
        }
      },
    },
    {
      method: 'GET',
      path: '/admin/usage',
      auth: 'admin',
      async handle(req) {
        // A repeated parameter is ambiguous (a gateway in front may read another value than the first): refused.
        const repeated = USAGE_PARAMS.find((name) => req.query.getAll(name).length > 1);
        if (repeated) return json(400, { error: { code: 'invalid_request', message: `The query parameter '${repeated}' is given more than once.` } });
        const tenant = req.query.get('tenant');
        if (tenant !== null && tenant !== '' && !d.tenants.has(tenant)) return json(404, { error: { code: 'unknown_tenant', message: `No tenant "${tenant}".` } });
        const cursorToken = req.query.get('cursor');
        let from: number | UsageCursor;
        if (cursorToken !== null) {
          // The cursor is a position already: a `since` beside it would be a second, contradicting one.
          if (req.query.has('since')) return json(400, { error: { code: 'invalid_request', message: 'Give since or cursor, not both.' } });
          const cursor = decodeUsageCursor(cursorToken);
          if (cursor === null) return json(400, { error: { code: 'invalid_request', message: 'cursor: not a value x-next-cursor gave' } });
          from = cursor;
        } else {
          const since = parseSince(req.query.get('since'));
          if (since === null) return json(400, { error: { code: 'invalid_request', message: 'since: epoch ms or an ISO 8601 time' } });
          from = since;
        }
        // Absent: Number(null) is 0, which takes the default below.
        const limitRaw = Number(req.query.get('limit'));
        const limit = Number.isInteger(limitRaw) && limitRaw > 0 ? Math.min(limitRaw, MAX_USAGE) : 10_000;
        try {
          const { records, next } = await d.ledger.usagePage(tenant || null, from, limit);
          const body = records.map(usageLine).join('');
          const headers: Record<string, string> = { 'content-type': 'application/x-ndjson' };
          // Paging: `cursor=<x-next-cursor>` returns each record once. `x-next-since` (the last record's
          // time) is kept for older callers: records at that ms repeat, and a page of one ms never advances.
          if (records.length === limit && next !== null) {
            headers['x-next-cursor'] = encodeUsageCursor(next);
            headers['x-next-since'] = String(records[records.length - 1]!.ts);
          }
          return { status: 200, headers, body };
        } catch (err) {
          return unavailable('/admin/usage', err);
        }
      },
    },
  ];
}
