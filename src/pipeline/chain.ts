import { CloseCode, ProxyError } from '../protocol/errors.js';
import { memberProblemError } from '../protocol/strict-json.js';
import { AdmissionTicket, type Admission, type AdmissionAsk, type AdmissionRequest, type CloseInfo, type Direction, type Filter, type FilterFactory, type SessionContext, type Verdict } from './filter.js';
import { DuplicateMemberFrameError, MalformedFrameError, type Frame } from './frame.js';
import type { Report } from './reports.js';

/** Where a session's chain delivers its outcomes. Implemented by the relay, which owns the sockets. */
export interface ChainSink {
  forward(direction: Direction, frame: Frame): void;
  /** A client event filter `by` made (SessionChain.inject), through the filters after it: it leaves as the proxy's. */
  forwardInjected(frame: Frame, by: string): void;
  /** A frame was refused: the client gets `error`, the session goes on. */
  reject(direction: Direction, error: ProxyError): void;
  /** The session must end: the client gets `error`, then both sockets close. */
  close(error: ProxyError): void;
  /**
   * A frame stopped in the chain (dropped, refused, or the session ended on it), after the verdict's
   * own outcome above: what an earlier filter let go never leaves (the conversation view reads it).
   * `refusal`: the error the client got for it (null: dropped). `injectedBy`: the filter that made
   * it (SessionChain.inject), null for the client's own.
   */
  stopped(direction: Direction, frame: Frame, refusal: ProxyError | null, injectedBy: string | null): void;
}

type Handler = 'onClient' | 'onServer';

/**
 * The name verdicts on frames the relay's JSON parser refused are reported under (a frame that is
 * not JSON, or an event with two readings). Parsing is lazy and shared, so the parse fails in
 * whichever filter reads the frame first; until 2026-12-06 the refusal was charged to that filter
 * (`rtproxy_verdicts_total{rtproxy_verdict_filter="telemetry"}`, a fail-open observer that refuses nothing).
 */
export const PARSER_VERDICT_FILTER = 'relay';

/** Per event type, the indices of the filters that want it, in run order. Built once. */
class DispatchTable {
  readonly #byType = new Map<string, readonly number[]>();
  readonly #anyType: readonly number[];
  /** Run order of the filters in this direction. */
  readonly #order: readonly number[];
  readonly #onRequest: readonly (readonly string[])[];

  constructor(factories: readonly FilterFactory[], direction: Direction) {
    const order = factories.map((_, i) => i);
    // Client → upstream runs in declared order, upstream → client in reverse (Envoy's encoder order).
    if (direction === 'server') order.reverse();
    this.#order = order;
    this.#onRequest = factories.map((f) => f.wants.onRequest?.[direction] ?? []);
    const wants = (i: number) => factories[i]!.wants[direction];
    const wantsType = (i: number, type: string | null): boolean => {
      const w = wants(i);
      if (w === undefined) return false;
      if (w === '*') return true;
      if (Array.isArray(w)) return type !== null && w.includes(type);
      // `{ allBut }`: every type not listed (and every type nobody names).
      return type === null || !(w as { readonly allBut: readonly string[] }).allBut.includes(type);
    };
    this.#anyType = order.filter((i) => wantsType(i, null));
    const types = new Set<string>();
    for (const i of order) {
      const w = wants(i);
      if (Array.isArray(w)) for (const t of w) types.add(t);
      else if (w !== undefined && w !== '*') for (const t of (w as { readonly allBut: readonly string[] }).allBut) types.add(t);
    }
    for (const type of types) this.#byType.set(type, order.filter((i) => wantsType(i, type)));
  }

  lookup(type: string): readonly number[] {
    return this.#byType.get(type) ?? this.#anyType;
  }

  /** True when filter `i` declared `type` in `wants.onRequest` for this direction. */
  mayRequest(i: number, type: string): boolean {
    return this.#onRequest[i]!.includes(type);
  }

  /** The filters for `type` when the filters in `asked` asked for it too, in run order. */
  withRequested(type: string, asked: ReadonlySet<number>): readonly number[] {
    const wanted = this.lookup(type);
    return this.#order.filter((i) => wanted.includes(i) || asked.has(i));
  }
}

/** The compiled filter chain shared by every session: factories plus dispatch tables. */
export class ChainTemplate {
  readonly factories: readonly FilterFactory[];
  readonly client: DispatchTable;
  readonly server: DispatchTable;

  constructor(factories: readonly FilterFactory[]) {
    const names = new Set<string>();
    for (const f of factories) {
      if (names.has(f.name)) throw new Error(`filter "${f.name}" is registered twice`);
      names.add(f.name);
    }
    this.factories = factories;
    this.client = new DispatchTable(factories, 'client');
    this.server = new DispatchTable(factories, 'server');
  }

  /**
   * Runs every factory's admission check in order; the first refusal wins. A model rewrite is
   * passed on to the factories after it and returned (with the query's `model` updated).
   * Synchronous while every factory answers synchronously: the server then upgrades inside uWS's
   * own upgrade callback, which avoids uWS's asynchronous-upgrade path (see ProxyServer#upgrade).
   *
   * The admission gets a fresh ticket (AdmissionTicket), returned with the admitted request: the
   * caller hands it to the session it opens (SessionContext.admission) or back to `withdraw`. A
   * refusal, or a factory that throws, gives back here what the factories before it took (until
   * 2026-12-07 a slot taken before a later factory's refusal stayed parked for 30 s).
   */
  admit(ask: AdmissionAsk): ProxyError | AdmissionRequest | Promise<ProxyError | AdmissionRequest> {
    const request: AdmissionRequest = { tenant: ask.tenant, model: ask.model, query: ask.query, ...(ask.holdsSlot !== undefined ? { holdsSlot: ask.holdsSlot } : {}), ticket: new AdmissionTicket() };
    let answer: ProxyError | AdmissionRequest | Promise<ProxyError | AdmissionRequest>;
    try {
      answer = this.#admitFrom(0, request);
    } catch (err) {
      this.withdraw(request);
      throw err;
    }
    if (!isThenable(answer)) return this.#givenBackIfRefused(request, answer);
    return answer.then(
      (settled) => this.#givenBackIfRefused(request, settled),
      (err: unknown) => {
        this.withdraw(request);
        throw err;
      },
    );
  }

  /**
   * An admitted request that did not open a session: each factory gives back what its `admit` took
   * for `request.ticket` (a ticket given back or claimed already: nothing).
   */
  withdraw(request: AdmissionRequest): void {
    for (const f of this.factories) f.withdraw?.(request);
  }

  #givenBackIfRefused(request: AdmissionRequest, answer: ProxyError | AdmissionRequest): ProxyError | AdmissionRequest {
    if (answer instanceof ProxyError) this.withdraw(request);
    return answer;
  }

  #admitFrom(start: number, request: AdmissionRequest): ProxyError | AdmissionRequest | Promise<ProxyError | AdmissionRequest> {
    let current = request;
    for (let i = start; i < this.factories.length; i++) {
      const f = this.factories[i]!;
      if (!f.admit) continue;
      const decision = f.admit(current);
      if (isThenable(decision)) {
        const at = current;
        return decision.then((d) => {
          const next = applyAdmission(at, d);
          return next instanceof ProxyError ? next : this.#admitFrom(i + 1, next);
        });
      }
      const next = applyAdmission(current, decision);
      if (next instanceof ProxyError) return next;
      current = next;
    }
    return current;
  }

  instantiate(ctx: SessionContext, sink: ChainSink): SessionChain {
    return new SessionChain(this, ctx, sink);
  }
}

function isThenable<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as Promise<T>)?.then === 'function';
}

/** One factory's admission answer applied to the request: a refusal, or the request (model rewritten). */
function applyAdmission(current: AdmissionRequest, decision: Admission): ProxyError | AdmissionRequest {
  if (decision instanceof ProxyError) return decision;
  if (!decision || decision.model === current.model) return current;
  const query = new Map(current.query);
  query.set('model', decision.model);
  return { ...current, model: decision.model, query };
}

/**
 * One filter per factory. A create that throws ends the session before it starts: the filters made
 * before it are closed first, so what they took (a concurrent-session slot metering claimed from the
 * admission) goes back instead of being held by a filter nobody will close.
 */
function createFilters(factories: readonly FilterFactory[], ctx: SessionContext): Filter[] {
  const filters: Filter[] = [];
  try {
    for (const f of factories) filters.push(f.create(ctx));
  } catch (err) {
    for (const made of filters) {
      try {
        made.onClose?.({ initiator: 'proxy', code: CloseCode.internalError, reason: 'internal_error' });
      } catch (closeErr) {
        ctx.log.error({ err: closeErr }, 'filter close failed after another filter could not be created');
      }
    }
    throw err;
  }
  // A pushed-to array keeps room for 17 (152 bytes per session); its copy holds what it has.
  return filters.slice();
}

function isPromise(v: Verdict | Promise<Verdict>): v is Promise<Verdict> {
  return typeof (v as Promise<Verdict>).then === 'function';
}

/**
 * What a queued frame holds besides its payload (its Frame, its slice of the frame slab, its queue
 * slot: ~190 bytes measured), counted with its bytes. Until 2026-12-06 only the payload counted: a
 * client queueing 12-byte frames held ~16 times what the queue's limit and the memory budget saw
 * (test/security/redteam-15-queued-frames.test.ts).
 */
export const QUEUED_FRAME_OVERHEAD_BYTES = 256;

/** What one queued frame counts in `queuedBytes`. */
const queuedCost = (frame: Frame): number => frame.bytes.length + QUEUED_FRAME_OVERHEAD_BYTES;

/** One direction of one session: runs frames through filters, queueing behind an async verdict. */
class DirectionRunner {
  readonly #direction: Direction;
  readonly #handler: Handler;
  readonly #table: DispatchTable;
  readonly #chain: SessionChain;
  /** Frames behind an async verdict: the client's (from the first filter), or one a filter made (from the filter after it). */
  readonly #queue: { readonly frame: Frame; readonly from: number; readonly injectedBy: string | null }[] = [];
  #queuedBytes = 0;
  #busy = false;
  /** The frame an async verdict is awaited for (null while not busy). */
  #paused: Frame | null = null;
  /** Per type, the filters that asked for it (`watch`) and the resulting filter list; null: none asked. */
  #requested: Map<string, { readonly asked: Set<number>; indices: readonly number[] }> | null = null;

  constructor(chain: SessionChain, direction: Direction, table: DispatchTable) {
    this.#chain = chain;
    this.#direction = direction;
    this.#handler = direction === 'client' ? 'onClient' : 'onServer';
    this.#table = table;
  }

  get queued(): number {
    return this.#queue.length;
  }

  /** Bytes of the frames waiting behind an async verdict, their overhead included (counted into the session's held bytes). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Frames of `type` waiting here: the one an async verdict is awaited for, and those queued behind it (a scan of the queue, bounded by its bytes). */
  waiting(type: string): number {
    let n = this.#paused?.type === type ? 1 : 0;
    for (const q of this.#queue) if (q.frame.type === type) n++;
    return n;
  }

  /** Not waiting on an async verdict and nothing queued. */
  get idle(): boolean {
    return !this.#busy && this.#queue.length === 0;
  }

  /** The filters a frame of `type` runs through in this session. */
  lookup(type: string): readonly number[] {
    const requested = this.#requested?.get(type);
    return requested !== undefined ? requested.indices : this.#table.lookup(type);
  }

  watch(i: number, type: string, on: boolean): void {
    const requested = (this.#requested ??= new Map());
    let entry = requested.get(type);
    if (!entry) {
      if (!on) return;
      entry = { asked: new Set(), indices: [] };
      requested.set(type, entry);
    }
    if (on) entry.asked.add(i);
    else entry.asked.delete(i);
    if (entry.asked.size === 0) {
      requested.delete(type);
      if (requested.size === 0) this.#requested = null;
      return;
    }
    entry.indices = this.#table.withRequested(type, entry.asked);
  }

  push(frame: Frame): void {
    this.#enter(frame, 0, null);
  }

  /** A frame filter `by` (factory index `byIndex`) made: it runs through the filters after that one. */
  inject(frame: Frame, byIndex: number, by: string): void {
    const indices = this.lookup(frame.type);
    let from = indices.findIndex((i) => i > byIndex);
    if (from < 0) from = indices.length;
    this.#enter(frame, from, by);
  }

  #enter(frame: Frame, from: number, injectedBy: string | null): void {
    if (this.#busy) {
      this.#queue.push({ frame, from, injectedBy });
      this.#queuedBytes += queuedCost(frame);
      return;
    }
    this.#run(frame, from, injectedBy);
  }

  #run(frame: Frame, from: number, injectedBy: string | null, indices: readonly number[] = this.lookup(frame.type)): void {
    // A replaced frame continues along the same filter list (Envoy semantics), whatever its type.
    for (let k = from; k < indices.length; k++) {
      const i = indices[k]!;
      const verdict = this.#chain.invoke(i, this.#handler, frame, this.#direction, injectedBy);
      if (verdict === null) continue;
      if (isPromise(verdict)) {
        this.#busy = true;
        const paused = frame;
        this.#paused = paused;
        verdict.then(
          (v) => this.#resume(paused, k, indices, injectedBy, v),
          (err: unknown) => this.#resume(paused, k, indices, injectedBy, this.#chain.onFilterFailure(i, this.#direction, paused, err)),
        );
        return;
      }
      const next = this.#apply(i, frame, verdict, injectedBy);
      if (next === null) return;
      frame = next;
    }
    if (injectedBy === null) this.#chain.sink.forward(this.#direction, frame);
    else this.#chain.sink.forwardInjected(frame, injectedBy);
  }

  #resume(frame: Frame, k: number, indices: readonly number[], injectedBy: string | null, verdict: Verdict): void {
    this.#busy = false;
    this.#paused = null;
    if (this.#chain.closed) return;
    const next = this.#apply(indices[k]!, frame, verdict, injectedBy);
    if (next !== null) this.#run(next, k + 1, injectedBy, indices);
    while (!this.#busy && this.#queue.length > 0 && !this.#chain.closed) {
      const next = this.#queue.shift()!;
      this.#queuedBytes -= queuedCost(next.frame);
      this.#run(next.frame, next.from, next.injectedBy);
    }
  }

  /** Applies a verdict; returns the frame to continue with, or null when the frame stops here. */
  #apply(i: number, frame: Frame, verdict: Verdict, injectedBy: string | null): Frame | null {
    switch (verdict.kind) {
      case 'continue':
        return frame;
      case 'replace':
        this.#chain.noteVerdict(i, this.#direction, frame, 'replace', null, verdict);
        return verdict.frame;
      case 'drop':
        this.#chain.noteVerdict(i, this.#direction, frame, 'drop', null, verdict);
        this.#chain.sink.stopped(this.#direction, frame, null, injectedBy);
        return null;
      case 'reject':
        this.#chain.noteVerdict(i, this.#direction, frame, 'reject', verdict.error.code, verdict);
        if (verdict.error.closesSession) this.#chain.sink.close(verdict.error);
        else this.#chain.sink.reject(this.#direction, verdict.error);
        this.#chain.sink.stopped(this.#direction, frame, verdict.error, injectedBy);
        return null;
      case 'close':
        this.#chain.noteVerdict(i, this.#direction, frame, 'close', verdict.error.code, verdict);
        this.#chain.sink.close(verdict.error);
        this.#chain.sink.stopped(this.#direction, frame, verdict.error, injectedBy);
        return null;
      default: {
        const unreachable: never = verdict;
        return unreachable;
      }
    }
  }
}

/** The per-session instance: one Filter per factory, two direction runners. */
export class SessionChain {
  readonly sink: ChainSink;
  readonly #template: ChainTemplate;
  readonly #ctx: SessionContext;
  readonly #filters: Filter[];
  readonly #client: DirectionRunner;
  readonly #server: DirectionRunner;
  readonly #reporting: Filter[];
  /** Verdicts the chain made for the parser (#malformed): reported as the relay's, not the filter's (made with the first malformed frame). */
  #parserVerdicts: WeakSet<Verdict> | null = null;
  #closed = false;

  constructor(template: ChainTemplate, ctx: SessionContext, sink: ChainSink) {
    this.#template = template;
    this.#ctx = ctx;
    this.sink = sink;
    this.#filters = createFilters(template.factories, ctx);
    this.#reporting = this.#filters.filter((f) => typeof f.onReport === 'function').slice(); // exact length: see createFilters
    this.#client = new DirectionRunner(this, 'client', template.client);
    this.#server = new DirectionRunner(this, 'server', template.server);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Frames waiting behind an async verdict, per direction (for watermarks). */
  queued(direction: Direction): number {
    return direction === 'client' ? this.#client.queued : this.#server.queued;
  }

  /** No frame of `direction` is with a filter deciding on it (async) or waiting behind one. */
  idle(direction: Direction): boolean {
    return direction === 'client' ? this.#client.idle : this.#server.idle;
  }

  /** Frames of `type` waiting behind an async verdict in `direction` (DirectionRunner.waiting). */
  waiting(direction: Direction, type: string): number {
    return direction === 'client' ? this.#client.waiting(type) : this.#server.waiting(type);
  }

  /** Bytes waiting behind an async verdict, per direction (bounded by the relay, summed into the memory budget). */
  queuedBytes(direction: Direction): number {
    return direction === 'client' ? this.#client.queuedBytes : this.#server.queuedBytes;
  }

  fromClient(frame: Frame): void {
    if (!this.#closed) this.#client.push(frame);
  }

  /**
   * True when a frame of `type` would reach no filter and nothing waits in `direction`: the relay
   * may then forward its bytes at once without building a Frame (audio frames, in practice).
   */
  bypasses(direction: Direction, type: string): boolean {
    const runner = direction === 'client' ? this.#client : this.#server;
    return !this.#closed && runner.idle && runner.lookup(type).length === 0;
  }

  /** See SessionContext.watch. */
  watch(filter: string, direction: Direction, type: string, on: boolean): void {
    const i = this.#template.factories.findIndex((f) => f.name === filter);
    const table = direction === 'client' ? this.#template.client : this.#template.server;
    if (i < 0 || !table.mayRequest(i, type)) throw new Error(`filter "${filter}" did not declare ${direction} ${type} in wants.onRequest`);
    (direction === 'client' ? this.#client : this.#server).watch(i, type, on);
  }

  fromServer(frame: Frame): void {
    if (!this.#closed) this.#server.push(frame);
  }

  /**
   * A client event filter `by` made: it runs through the client filters after `by`, as the client's
   * own would (a response.create the spoken-turn hold owes meets metering's reservation, which may
   * refuse it; a session.update counts in metering and truncation before it leaves), then leaves as
   * the proxy's (`ChainSink.forwardInjected`). Each filter is told who made it (Filter.onClient's
   * `injectedBy`) and decides whether it is subject to it. Behind frames waiting on an async verdict,
   * in order. From a sender that is no filter here (the relay's client secret config, a SIP call's
   * first update), through every filter.
   */
  inject(frame: Frame, by: string): void {
    if (this.#closed) return;
    // A sender that is no filter of this chain: every filter decides on it.
    this.#client.inject(frame, this.#template.factories.findIndex((f) => f.name === by), by);
  }

  /** Calls one filter; returns null for "continue" so the hot loop does no extra work. `injectedBy`: see Filter.onClient. */
  invoke(i: number, handler: Handler, frame: Frame, direction: Direction, injectedBy: string | null): Verdict | Promise<Verdict> | null {
    const filter = this.#filters[i]!;
    const fn = filter[handler];
    if (!fn) return null;
    let verdict: Verdict | Promise<Verdict>;
    try {
      verdict = fn.call(filter, frame, injectedBy);
    } catch (err) {
      return this.onFilterFailure(i, direction, frame, err);
    }
    return !isPromise(verdict) && verdict.kind === 'continue' ? null : verdict;
  }

  /** A frame a filter needed to read is not JSON: the client is told; an upstream frame is dropped. */
  #malformed(direction: Direction, frame: Frame, err: MalformedFrameError): Verdict {
    let verdict: Verdict;
    // Two readings of one event (or one too deep to re-serialise safely): refuse rather than guess.
    if (err instanceof DuplicateMemberFrameError) verdict = { kind: 'reject', error: memberProblemError(frame.type, err) };
    else if (direction === 'client') verdict = { kind: 'reject', error: new ProxyError('invalid_json', { message: `The ${frame.type} event is not valid JSON.` }) };
    else {
      this.#ctx.log.warn({ eventType: frame.type }, 'malformed upstream frame dropped');
      verdict = { kind: 'drop' };
    }
    (this.#parserVerdicts ??= new WeakSet()).add(verdict);
    return verdict;
  }

  onFilterFailure(i: number, direction: Direction, frame: Frame, err: unknown): Verdict {
    if (err instanceof MalformedFrameError) return this.#malformed(direction, frame, err);
    const factory = this.#template.factories[i]!;
    this.#ctx.log.error({ err, filter: factory.name, eventType: frame.type }, 'filter failed');
    this.report({ kind: 'filter_error', filter: factory.name, direction, eventType: frame.type });
    if (factory.failMode === 'open') return { kind: 'continue' };
    return { kind: 'reject', error: new ProxyError('internal_error', { eventId: frame.parsed ? eventIdOf(frame) : null }) };
  }


  /** Reports a verdict under the filter that returned it, or PARSER_VERDICT_FILTER for the parser's (`decided`). */
  noteVerdict(i: number, direction: Direction, frame: Frame, verdict: 'replace' | 'drop' | 'reject' | 'close', code: string | null, decided?: Verdict): void {
    this.report({
      kind: 'verdict',
      filter: decided !== undefined && this.#parserVerdicts?.has(decided) === true ? PARSER_VERDICT_FILTER : this.#template.factories[i]!.name,
      direction,
      eventType: frame.type,
      verdict,
      code,
    });
  }

  report(report: Report): void {
    for (const f of this.#reporting) {
      try {
        f.onReport!(report);
      } catch (err) {
        this.#ctx.log.error({ err, report: report.kind }, 'onReport threw');
      }
    }
  }

  /** Every filter's `summary()` merged, for the session-end log line. */
  summaries(): Record<string, string | number | boolean | null> {
    const out: Record<string, string | number | boolean | null> = {};
    for (const f of this.#filters) {
      if (!f.summary) continue;
      try {
        Object.assign(out, f.summary());
      } catch (err) {
        this.#ctx.log.error({ err }, 'summary threw');
      }
    }
    return out;
  }

  /** Runs every filter's onStart once, in chain order; a failure ends the session unless the filter fails open. */
  start(): void {
    for (let i = 0; i < this.#filters.length && !this.#closed; i++) {
      const f = this.#filters[i]!;
      if (!f.onStart) continue;
      try {
        f.onStart();
      } catch (err) {
        const factory = this.#template.factories[i]!;
        this.#ctx.log.error({ err, filter: factory.name }, 'filter start failed');
        this.report({ kind: 'filter_error', filter: factory.name, direction: 'client', eventType: 'session.start' });
        if (factory.failMode !== 'open') this.sink.close(new ProxyError('internal_error'));
      }
    }
  }

  /** The client left (see `Filter.onClientGone`): every filter is told, in chain order. */
  clientGone(): void {
    this.#eachFilter('onClientGone', (f) => f.onClientGone?.());
  }

  /**
   * The upstream ended (see `Filter.onUpstreamEnd`): every filter settles what it holds, in the order
   * upstream frames reach them, until one answers with the error the session ends with (returned).
   */
  upstreamEnded(): ProxyError | null {
    if (this.#closed) return null;
    // A server frame still with a filter deciding on it (a blocking custom guardrail judging a
    // transcript delta) or waiting behind one: what the filters hold came with or before it, and its
    // verdict would never come (the end discards it). Settled now, the held text would leave ahead of
    // that verdict and unjudged by it: it stays withheld, as a cut-off response's. Until 2026-12-07 it
    // was sent (test/relay/redteam-20-translation-end-race.test.ts).
    if (!this.#server.idle) return null;
    for (let k = this.#filters.length - 1; k >= 0; k--) {
      const f = this.#filters[k]!;
      try {
        const error = f.onUpstreamEnd?.() ?? null;
        if (error !== null) return error;
      } catch (err) {
        // What it held stays held (never sent): the end goes on.
        this.#ctx.log.error({ err, filter: this.#template.factories[k]!.name }, 'onUpstreamEnd threw');
      }
    }
    return null;
  }

  /** Why the upstream closed with `code`, if a filter can learn it (see `Filter.onUpstreamClosed`); null: nobody asks. */
  upstreamClosed(code: number): Promise<ProxyError | null> | null {
    if (this.#closed) return null;
    for (let k = 0; k < this.#filters.length; k++) {
      try {
        const why = this.#filters[k]!.onUpstreamClosed?.(code) ?? null;
        if (why !== null) {
          return why.catch((err: unknown) => {
            this.#ctx.log.error({ err, filter: this.#template.factories[k]!.name }, 'onUpstreamClosed failed');
            return null;
          });
        }
      } catch (err) {
        this.#ctx.log.error({ err, filter: this.#template.factories[k]!.name }, 'onUpstreamClosed threw');
      }
    }
    return null;
  }

  /** A filter still awaits upstream events about what the gone client sent (see `Filter.awaitingUpstream`). */
  awaitingUpstream(): boolean {
    if (this.#closed) return false;
    for (const f of this.#filters) {
      try {
        if (f.awaitingUpstream?.() === true) return true;
      } catch (err) {
        this.#ctx.log.error({ err }, 'awaitingUpstream threw');
      }
    }
    return false;
  }

  /** Runs every filter's onClose once. */
  close(info: CloseInfo): void {
    if (this.#closed) return;
    // Closed first: a hook that ends the session from here does not run the hooks twice.
    this.#closed = true;
    this.#eachFilter('onClose', (f) => f.onClose?.(info), true);
  }

  /**
   * Calls a hook of every filter in chain order; one that throws is logged and the next is still
   * called. Stops once the chain closed, unless `evenClosed` (close's own hooks).
   */
  #eachFilter(hook: string, call: (f: Filter) => void, evenClosed = false): void {
    for (const f of this.#filters) {
      if (this.#closed && !evenClosed) return;
      try {
        call(f);
      } catch (err) {
        this.#ctx.log.error({ err }, `${hook} threw`);
      }
    }
  }
}

function eventIdOf(frame: Frame): string | null {
  const id = frame.json()['event_id'];
  return typeof id === 'string' ? id : null;
}
