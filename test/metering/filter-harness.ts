/**
 * Drives the metering filter without sockets: a real in-memory SQLite ledger, the real price book
 * and limits, and a FakeSession whose conversation view learns every frame as the relay core's
 * would. Used by the filter's fast unit tests (src/metering/filter*.test.ts), which Stryker runs.
 */
import pino, { type Logger } from 'pino';
import { afterEach, expect, vi } from 'vitest';
import type { AdmissionTicket, Filter, FilterFactory, Verdict } from '../../src/pipeline/filter.js';
import { Frame } from '../../src/pipeline/frame.js';
import { meteringSchema, type TenantLimitsConfig } from '../../src/metering/config.js';
import { createMeteringFilterFactory } from '../../src/metering/filter-factory.js';
import type { MeteringRuntime } from '../../src/metering/runtime.js';
import type { CapHit, Ledger, ReserveRequest, ReserveResult, UsageCursor, UsageRecord } from '../../src/metering/ledger.js';
import type { CapSet } from '../../src/metering/limits.js';
import type { PeriodKind } from '../../src/metering/periods.js';
import { NO_CAPS, resolveLimits } from '../../src/metering/limits.js';
import { PriceBook } from '../../src/metering/pricing.js';
import { SqliteLedger } from '../../src/metering/sqlite-ledger.js';
import { recentNoon } from '../support/clock.js';
import { FakeSession } from '../support/fake-session.js';
import type { Tenant } from '../../src/tenants/tenant.js';

/** Noon UTC of a recent day that is not the last of its month: `T0 + 13 h` is the next day, same month. */
export const T0 = recentNoon();
export const NEXT_DAY = T0 + 13 * 3_600_000;

export interface Setup {
  readonly factory: FilterFactory;
  readonly ledger: SqliteLedger;
  readonly records: UsageRecord[];
  readonly rt: MeteringRuntime;
  /** What the runtime logged at warn level and above (message and bindings). */
  readonly logs: { level: string; msg: string; [k: string]: unknown }[];
  /** The logger sessions of this setup get (their logs land in `logs` too). */
  readonly log: Logger;
}

const ledgers: SqliteLedger[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const l of ledgers.splice(0)) await l.close();
});

/**
 * `wrap` puts another ledger in front of the SQLite one (e.g. `AsyncLedger`, which answers like
 * Redis); `Setup.ledger` stays the SQLite ledger underneath, for assertions.
 */
export function setup(config: Record<string, unknown> = {}, wall: () => number = () => T0, wrap?: (l: SqliteLedger) => Ledger): Setup {
  const cfg = meteringSchema().parse({ ledger: { path: ':memory:' }, ...config });
  const ledger = new SqliteLedger(':memory:');
  ledgers.push(ledger);
  const records: UsageRecord[] = [];
  const logs: Setup['logs'] = [];
  const log = pino(
    { level: 'debug' },
    {
      write(line: string) {
        const o = JSON.parse(line) as Record<string, unknown>;
        logs.push({ ...o, level: pino.levels.labels[o['level'] as number] ?? String(o['level']), msg: String(o['msg']) });
      },
    },
  );
  const rt: MeteringRuntime = {
    config: cfg,
    prices: new PriceBook({ prices: cfg.prices, aliases: cfg.aliases, fallbackPrice: cfg.fallbackPrice }),
    ledger: wrap ? wrap(ledger) : ledger,
    limitsOf: (t) => resolveLimits(t, cfg),
    onRecord: (r) => records.push(r),
    log,
    wall,
  };
  return { factory: createMeteringFilterFactory(rt), ledger, records, rt, logs, log };
}

/** The session of each filter: the helpers below feed its conversation view as the relay core would. */
const sessions = new WeakMap<Filter, FakeSession>();

/** `admission`: the ticket the session's admission took its slot with (FakeSession.admission). */
export function session(s: Setup, limits: TenantLimitsConfig | null = null, model = 'gpt-realtime', query?: Record<string, string>, admission?: AdmissionTicket): { ctx: FakeSession; f: Filter } {
  const ctx = new FakeSession({ tenant: { limits }, model, log: s.log, ...(query ? { query } : {}), ...(admission ? { admission } : {}) });
  const f = s.factory.create(ctx);
  // As the relay's chain does: every report (the relay's `create_sent` included) reaches the filter's onReport.
  const record = ctx.report.bind(ctx);
  ctx.report = (r) => {
    record(r);
    f.onReport?.(r);
  };
  sessions.set(f, ctx);
  return { ctx, f };
}

export type Event = { type: string; [k: string]: unknown };

/** The event ids the relay stamped on the creates it sent for `f`'s session (its `create_sent` reports), in order. */
export const sentCreates = (f: Filter): string[] => sessions.get(f)!.reports.flatMap((r) => (r.kind === 'create_sent' ? [r.eventId] : []));
export const lastSent = (f: Filter): string => sentCreates(f).at(-1)!;

/** Caps that make every create reserve, so what it reserved can be read back (`reservedNow`, `probe`). */
const RESERVING_CAPS = { ...NO_CAPS, dayNanos: 1 };
export const reservedNow = (s: Setup) => s.ledger.status('acme', RESERVING_CAPS, T0).day.reserved;
let probes = 0;

/** What a response.create would reserve now (then refused upstream, which frees it). The session needs a cap (any). */
export function probe(s: Setup, f: Filter, response: Record<string, unknown>): { nanos: number; tokens: number } {
  const before = reservedNow(s);
  client(f, { type: 'response.create', event_id: `probe_${++probes}`, response: { output_modalities: ['text'], max_output_tokens: 1, ...response } });
  const after = reservedNow(s);
  server(f, { type: 'error', error: { type: 'invalid_request_error', code: 'x', message: 'x', event_id: lastSent(f) } });
  expect(reservedNow(s)).toEqual(before);
  return { nanos: after.nanos - before.nanos, tokens: after.tokens - before.tokens };
}

/** An out-of-band response input of `item_reference`s. */
export const references = (...ids: string[]) => ({ conversation: 'none', input: ids.map((id) => ({ type: 'item_reference', id })) });
/** The upstream adding an assistant message `id` to response `responseId`, still in progress. */
export const outputItemAdded = (responseId: string, id: string) => ({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: { id, type: 'message', role: 'assistant', status: 'in_progress', content: [] } });
/** A client create (`c_<id>`) let through and its response.created (`id`), `echo` merged into the response. */
export function startResponse(f: Filter, id: string, response: Record<string, unknown>, echo: Record<string, unknown> = {}): void {
  expect(client(f, { type: 'response.create', event_id: `c_${id}`, response }).kind).toBe('continue');
  server(f, created(id, { max_output_tokens: response['max_output_tokens'] ?? 'inf', ...echo }));
}
export const ev = (e: Event) => Frame.fromEvent(e);
export const client = (f: Filter, e: Event) => sessions.get(f)!.fromClient(f, ev(e)) as Verdict;
export const server = (f: Filter, e: Event) => sessions.get(f)!.fromServer(f, ev(e)) as Verdict;
export const clientAsync = (f: Filter, e: Event) => Promise.resolve(sessions.get(f)!.fromClient(f, ev(e)));
export const serverAsync = (f: Filter, e: Event) => Promise.resolve(sessions.get(f)!.fromServer(f, ev(e)));

export function usage(textIn: number, audioIn: number, textOut: number, audioOut: number) {
  return {
    total_tokens: textIn + audioIn + textOut + audioOut,
    input_tokens: textIn + audioIn,
    output_tokens: textOut + audioOut,
    input_token_details: { text_tokens: textIn, audio_tokens: audioIn, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
    output_token_details: { text_tokens: textOut, audio_tokens: audioOut },
  };
}

/** Earlier spend of the tenant (another session), at `ts` (default T0). */
export const spent = (costNanos: number, totalTokens = 0, ts = T0): UsageRecord => ({
  ts, tenant: 'acme', session: 'rps_other', source: 'response', ref: 'resp_old', model: 'gpt-realtime', status: 'completed', costNanos,
  inputTokens: 0, outputTokens: 0, cachedTokens: 0, totalTokens, input: null, cached: null, output: null, seconds: null, estimated: false, settledBy: 'response.done', fallbackPrice: false,
});

export const created = (id: string, extra: Record<string, unknown> = {}) => ({ type: 'response.created', response: { id, status: 'in_progress', conversation_id: 'conv_1', max_output_tokens: 'inf', usage: null, ...extra } });
export const done = (id: string, u: unknown, status = 'completed', extra: Record<string, unknown> = {}) => ({ type: 'response.done', response: { id, status, conversation_id: 'conv_1', usage: u, ...extra } });

export function json(v: Verdict): Record<string, unknown> {
  if (v.kind !== 'replace') throw new Error(`expected replace, got ${v.kind}`);
  return v.frame.json();
}

export const tenant = (limits: TenantLimitsConfig | null = null): Tenant => ({ id: 'acme', name: 'Acme', policy: null, plan: null, limits });

export const transcriptionSession = (model = 'whisper-1') => ({ type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { transcription: { model } } } } });

export const transcribed = (itemId: string, u: unknown) => ({ type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, content_index: 0, transcript: 'x', usage: u });

/** An input audio frame as the relay delivers it (raw bytes, never parsed by metering). */
export const appendFrame = (base64 = 'AAAA') => new Frame('input_audio_buffer.append', Buffer.from(`{"type":"input_audio_buffer.append","audio":"${base64}"}`));

type Fault = 'reject' | 'throw';

/**
 * The SQLite ledger behind an asynchronous interface, as the Redis ledger answers: every call
 * returns a promise. Faults make a call reject (Redis down) or throw synchronously (a bug or a
 * closed ledger); `reserveUnavailable` makes reserve answer `unavailable`; `knownOverHit` is what
 * `knownOver` answers (Redis keeps a recent "over a cap" flag per tenant).
 */
export class AsyncLedger implements Ledger {
  readonly kind = 'redis' as const;
  readonly synchronous = false;
  readonly faults = new Map<'reserve' | 'status' | 'settle' | 'release' | 'acquireSlot', Fault>();
  reserveUnavailable: string | null = null;
  /** With reserveUnavailable: answered as a relay worker's RemoteLedger does when the primary is silent. */
  ownerSilent = false;
  /** With reserveUnavailable: answered as the Redis ledger does when its settle queue is full. */
  queueFull = false;
  slotUnavailable = false;
  knownOverHit: CapHit | null = null;
  readonly calls: string[] = [];

  constructor(readonly inner: SqliteLedger) {}

  #run<T>(name: 'reserve' | 'status' | 'settle' | 'release' | 'acquireSlot', f: () => T): Promise<T> {
    this.calls.push(name);
    const fault = this.faults.get(name);
    if (fault === 'throw') throw new Error(`${name}: ledger broken`);
    if (fault === 'reject') return Promise.reject(new Error(`${name}: redis down`));
    return Promise.resolve().then(f);
  }

  reserve(req: ReserveRequest): Promise<ReserveResult> {
    return this.#run('reserve', () => (this.reserveUnavailable !== null ? { kind: 'unavailable' as const, reason: this.reserveUnavailable, ...(this.ownerSilent ? { ownerSilent: true as const } : {}), ...(this.queueFull ? { queueFull: true as const } : {}) } : this.inner.reserve(req)));
  }
  settle(reservationId: string | null, record: UsageRecord): Promise<void> {
    return this.#run('settle', () => this.inner.settle(reservationId, record));
  }
  release(tenant: string, reservationId: string): Promise<void> {
    return this.#run('release', () => this.inner.release(tenant, reservationId));
  }
  status(tenant: string, caps: CapSet, wallMs: number) {
    return this.#run('status', () => this.inner.status(tenant, caps, wallMs));
  }
  setOverride(tenant: string, kind: PeriodKind, change: { nanos?: number | null; tokens?: number | null }) {
    return Promise.resolve(this.inner.setOverride(tenant, kind, change));
  }
  resetSpend(tenant: string, kind: PeriodKind, wallMs: number) {
    return Promise.resolve(this.inner.resetSpend(tenant, kind, wallMs));
  }
  usagePage(tenant: string | null, from: number | UsageCursor, limit: number) {
    return Promise.resolve(this.inner.usagePage(tenant, from, limit));
  }
  acquireSlot(tenant: string, token: string, max: number, wallMs: number): Promise<boolean | 'unavailable'> {
    return this.#run('acquireSlot', () => (this.slotUnavailable ? ('unavailable' as const) : this.inner.acquireSlot(tenant, token, max)));
  }
  releaseSlot(tenant: string, token: string): void {
    this.calls.push('releaseSlot');
    this.inner.releaseSlot(tenant, token);
  }
  knownOver(): CapHit | null {
    return this.knownOverHit;
  }
  readiness(): string | null {
    return null;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
