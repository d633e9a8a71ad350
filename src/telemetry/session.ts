import pino from 'pino';
import { CONTINUE, type CloseInfo, type Filter, type FilterFactory, type SessionContext, type Verdict } from '../pipeline/filter.js';
import type { Frame } from '../pipeline/frame.js';
import type { Report } from '../pipeline/reports.js';
import { ErrorCatalogue } from '../protocol/errors.js';
import { AUDIO_CLIENT_TYPES, AUDIO_SERVER_TYPES, isTranslationSession } from '../protocol/events.js';
import type { SessionMeters, TelemetryMetrics } from './metrics.js';
import { turnLatencies, type ResponseRecord, type SessionView, type TurnRecord } from './records.js';
import { captureWith } from './redact.js';
import type { TelemetrySettings } from './settings.js';
import type { SpanSink } from './span-records.js';
import * as S from './semconv.js';
import { SessionSpans } from './spans.js';
import { guardrailAttributes, realScheduler, TurnTracker, type Scheduler, type TurnSink } from './turns.js';

/** What every session of one proxy shares: instruments, where spans go, settings. Built once at boot. */
export interface TelemetryShared {
  readonly settings: TelemetrySettings;
  readonly metrics: TelemetryMetrics;
  /** Null when traces are off. */
  readonly spans: SpanSink | null;
  readonly serverAddress: string | null;
  readonly serverPort: number | null;
  readonly scheduler?: Scheduler;
  /**
   * True when metering prices the model itself (alias, exact id, or a dated snapshot of a priced
   * id; not through `metering.fallbackPrice`). Absent: no model counts as priced.
   */
  readonly priced?: (model: string) => boolean;
  /** The configured credentials, whatever their shape (redact.literalSecrets): captured text never keeps them. */
  readonly secrets?: RegExp | null;
}

/** Deterministic per-session sampling: FNV-1a of the session id mapped onto [0, 1). */
export function sessionSampled(sessionId: string, ratio: number): boolean {
  if (ratio >= 1) return true;
  if (ratio <= 0) return false;
  let h = 0x811c9dc5;
  for (let i = 0; i < sessionId.length; i++) {
    h ^= sessionId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 0x100000000 < ratio;
}

const CHINDINGS = pino.symbols.chindingsSym;

type BindingsHolder = Record<symbol, unknown>;
/** A trace or span id as span-records.ts writes them. */
const HEX_ID = /^[0-9a-f]{16,32}$/;

function closeReasonOf(info: CloseInfo): string {
  if (info.initiator === 'client') return 'client_close';
  if (info.initiator === 'upstream') return 'upstream_close';
  // Proxy closes carry the error code as reason: a bounded set.
  return Object.prototype.hasOwnProperty.call(ErrorCatalogue, info.reason) ? info.reason : 'other';
}

/**
 * The telemetry filter of one session. Per frame it counts bytes and feeds the turn tracker (a
 * few field updates); spans, metrics and log lines are produced at turn and session boundaries.
 */
export class TelemetrySession implements Filter, TurnSink, SessionMeters {
  readonly #ctx: SessionContext;
  readonly #shared: TelemetryShared;
  readonly #tracker: TurnTracker;
  readonly tenant: string;
  /** Non-audio frames this filter saw; audio frames are counted by the relay (ctx.audio). */
  #clientFrames = 0;
  #clientBytes = 0;
  #serverFrames = 0;
  #serverBytes = 0;
  readonly #now: () => number;
  readonly #spans: SessionSpans | null;
  readonly #tenant: string;
  readonly #sampleEvery: number;
  #clientSample = 0;
  #serverSample = 0;
  /** The relay reports its own (exact) per-frame timings: stop estimating them here. */
  #relayReported = false;
  #upstreamConnected = false;
  #turns = 0;
  /** The session's model label once it is a model (not `other`/`unknown`): decided once. */
  #modelValue: string | null = null;
  /** Log bindings of the session without trace ids (pino appends on setBindings; we restore). */
  readonly #baseBindings: unknown;
  #boundTurn: TurnRecord | null = null;
  /**
   * A client's socket attached to a governed call: every socket on a call gets every server event,
   * and the proxy's sideband records the call's turns, responses and usage (metering bills it
   * there). Counted here too, each response of the call was counted once more per attached socket
   * in the operation, token, turn and latency metrics and had a trace per socket (until
   * 2026-12-06; cost was counted once). Such a session records its own session figures only.
   */
  readonly #onCall: boolean;
  /**
   * A translation session (`…/realtime/translations`): one continuous stream with no turns (no
   * responses, no speech boundaries), so its span covers the session and carries how it ended;
   * its audio is counted by the relay like a realtime session's, its spend by the usage reports.
   */
  readonly #translation: boolean;
  /** Spend the session's usage reports named (the translation span's `rtproxy.session.cost_usd`). */
  #costMicros = 0;

  constructor(ctx: SessionContext, shared: TelemetryShared) {
    this.#ctx = ctx;
    this.#shared = shared;
    const s = shared.settings;
    this.#tenant = shared.metrics.tenants.get(ctx.tenant.id);
    this.#onCall = ctx.watchesGovernedCall === true;
    this.#translation = isTranslationSession(ctx.query);
    this.#sampleEvery = s.relaySampleEvery;
    const capture = s.capture.enabled && (s.capture.tenants === null || s.capture.tenants.has(ctx.tenant.id)) ? captureWith(s.capture.maxChars, shared.secrets ?? null) : null;
    const base = shared.scheduler ?? realScheduler;
    // Timer callbacks run outside the chain's error handling: a throw must not reach the process.
    const scheduler: Scheduler = {
      set: (ms, fn) =>
        base.set(ms, () => {
          try {
            fn();
          } catch (err) {
            ctx.log.error({ err }, 'telemetry timer failed');
          }
        }),
      clear: (h) => base.clear(h),
    };
    this.#tracker = new TurnTracker(
      this,
      ctx.conversation,
      { maxTurnMs: s.turns.maxTurnMs, waitForPlayback: s.turns.waitForPlayback, truncateGraceMs: s.turns.truncateGraceMs, capture },
      () => ctx.clock.now(),
      scheduler,
      ctx.audio,
    );
    this.tenant = this.#tenant;
    this.#now = ctx.clock.now.bind(ctx.clock);
    shared.metrics.sessionStarted(this);
    this.#baseBindings = (ctx.log as unknown as BindingsHolder)[CHINDINGS];
    if (shared.spans && sessionSampled(ctx.id, s.traces.sampleRatio)) {
      this.#spans = new SessionSpans(shared.spans, {
        sessionId: ctx.id,
        tenantId: ctx.tenant.id,
        model: ctx.model,
        serverAddress: shared.serverAddress,
        serverPort: shared.serverPort,
        wallOffset: ctx.clock.wall() - ctx.clock.now(),
        translation: this.#translation,
      });
      this.#spans.startConnect(ctx.startedAt);
    } else {
      this.#spans = null;
    }
  }

  get tracker(): TurnTracker {
    return this.#tracker;
  }

  get clientFrames(): number {
    return this.#clientFrames + this.#ctx.audio.inputFrames;
  }

  get clientBytes(): number {
    return this.#clientBytes + this.#ctx.audio.inputWireBytes;
  }

  get serverFrames(): number {
    return this.#serverFrames + this.#ctx.audio.outputFrames;
  }

  get serverBytes(): number {
    return this.#serverBytes + this.#ctx.audio.outputWireBytes;
  }

  get audioInMs(): number {
    return this.#tracker.audioInMs;
  }

  get audioOutMs(): number {
    return this.#tracker.audioOutMs;
  }

  // ---- Filter ------------------------------------------------------------------------------

  onClient(frame: Frame, injectedBy: string | null = null): Verdict {
    // The proxy's own (a client secret's config, a SIP call's first update): no client frame; reported as injected.
    if (injectedBy !== null) return CONTINUE;
    const now = this.#now();
    this.#clientFrames++;
    this.#clientBytes += frame.bytes.length;
    if (++this.#clientSample >= this.#sampleEvery) {
      this.#clientSample = 0;
      if (!this.#relayReported) this.#measureClient(now);
    }
    this.#tracker.onClient(frame, now);
    return CONTINUE;
  }

  onServer(frame: Frame): Verdict {
    const now = this.#now();
    this.#serverFrames++;
    this.#serverBytes += frame.bytes.length;
    if (++this.#serverSample >= this.#sampleEvery) {
      this.#serverSample = 0;
      if (!this.#relayReported) this.#measureServer(now);
    }
    this.#tracker.onServer(frame, now);
    return CONTINUE;
  }

  /**
   * Estimated proxy overhead until the relay reports exact figures: this filter runs first for
   * client frames, so a microtask measures the rest of the chain and the upstream write; it runs
   * last for server frames, so the second microtask lands after the relay's corked flush.
   */
  #measureClient(t0: number): void {
    queueMicrotask(() => this.#shared.metrics.relayLatency('client', this.#ctx.clock.now() - t0));
  }

  #measureServer(t0: number): void {
    queueMicrotask(() => queueMicrotask(() => this.#shared.metrics.relayLatency('server', this.#ctx.clock.now() - t0)));
  }

  onReport(report: Report): void {
    const now = this.#ctx.clock.now();
    const metrics = this.#shared.metrics;
    // On a socket attached to a governed call, a trip, a lock or a verdict on an upstream event is the
    // sideband's too (it reads the same events with the same policy): counted there, once per call.
    // Until 2026-12-07 each attached socket counted them again (test/calls/attached-guardrail-trips.test.ts,
    // test/calls/attached-locks-verdicts.test.ts). One on this socket's own client event is seen
    // nowhere else: counted here.
    const countedOnSideband = this.#onCall && (report.kind === 'guardrail' || report.kind === 'lock' || report.kind === 'verdict') && report.direction === 'server';
    if (!countedOnSideband) metrics.report(this.#tenant, report, report.kind === 'usage' ? this.#usageModel(report.model) : undefined);
    switch (report.kind) {
      case 'upstream_connected':
        this.#upstreamConnected = true;
        metrics.upstreamConnect(report.ms / 1000, null);
        this.#spans?.upstreamConnected(report.ms, now);
        return;
      case 'relay_latency':
        this.#relayReported = true;
        return;
      case 'verdict':
        if (report.verdict === 'reject' || report.verdict === 'close') metrics.error(this.#tenant, report.code ?? 'rejected', 'proxy');
        break;
      case 'usage':
        this.#costMicros += report.costMicros;
        break;
      case 'guardrail':
        // No turn to carry it: a translation session's verdicts are events of its span.
        if (this.#translation) this.#spans?.sessionEvent(S.EVENT_GUARDRAIL, now, guardrailAttributes(report));
        break;
      default:
        break;
    }
    this.#tracker.onReport(report, now);
  }

  onClose(info: CloseInfo): void {
    const now = this.#ctx.clock.now();
    this.#tracker.close(now);
    const reason = closeReasonOf(info);
    if (!this.#upstreamConnected && info.initiator === 'proxy' && reason.startsWith('upstream_')) {
      this.#shared.metrics.upstreamConnect((now - this.#ctx.startedAt) / 1000, reason);
    }
    const errorType = info.initiator === 'proxy' ? reason : null;
    const spans = this.#spans;
    if (spans && this.#translation) {
      const inputAudioMs = this.audioInMs;
      const outputAudioMs = this.audioOutMs;
      // Metering runs after this filter and bills the audio's last block in its own onClose: the
      // span ends once every filter's onClose has run, with that spend in its cost.
      queueMicrotask(() => {
        spans.endSession(now, { closeReason: reason, initiator: info.initiator, closeCode: info.code, errorType, inputAudioMs, outputAudioMs, costMicros: this.#costMicros });
        spans.close(now);
      });
    } else {
      spans?.endConnect(now, errorType);
      spans?.close(now);
    }
    this.#shared.metrics.sessionEnded(this, reason, info.initiator, (now - this.#ctx.startedAt) / 1000);
    this.#restoreBindings();
  }

  summary(): Readonly<Record<string, string | number | boolean | null>> {
    return { turns: this.#turns, traced: this.#spans !== null };
  }

  // ---- TurnSink ----------------------------------------------------------------------------

  turnOpened(turn: TurnRecord): void {
    if (!this.#spans || this.#onCall) return;
    const sc = this.#spans.startTurn(turn);
    if (turn.outOfBand) return;
    this.#bind(turn, sc.traceId, sc.spanId);
  }

  responseDone(r: ResponseRecord): void {
    if (this.#onCall) return;
    this.#shared.metrics.responseDone(this.#tenant, this.#modelLabel(), r);
  }

  turnClosed(turn: TurnRecord): void {
    if (this.#onCall) return;
    this.#turns++;
    this.#shared.metrics.turnClosed(this.#tenant, this.#modelLabel(), turn);
    // The turn-end line carries this turn's ids even when a newer turn is already current.
    const sc = this.#spans?.contextOf(turn) ?? null;
    if (sc && this.#boundTurn !== turn) this.#bind(turn, sc.traceId, sc.spanId);
    this.#logTurn(turn);
    this.#spans?.finishTurn(turn);
    const next = this.#tracker.current;
    const nextSc = next && next !== turn && this.#spans ? this.#spans.contextOf(next) : null;
    if (next && nextSc) this.#bind(next, nextSc.traceId, nextSc.spanId);
    else this.#restoreBindings();
  }

  sessionConfigured(view: Readonly<SessionView>, first: boolean, at: number): void {
    if (first) this.#spans?.sessionCreated(view, at);
  }

  upstreamError(code: string): void {
    this.#shared.metrics.error(this.#tenant, code, 'upstream');
  }

  // ---- helpers -----------------------------------------------------------------------------

  /**
   * The session's `gen_ai.request.model` label: the URL's model (or, without one, the model the
   * upstream named), when the upstream accepted it (session.created named it) or it is priced;
   * else `other` (metrics.modelLabel).
   */
  #modelLabel(): string {
    if (this.#modelValue !== null) return this.#modelValue;
    const model = this.#ctx.model || this.#tracker.session.model;
    const label = this.#shared.metrics.modelLabel(this.#tenant, model, this.#accepted(model));
    if (label !== 'other' && label !== 'unknown') this.#modelValue = label;
    return label;
  }

  /** A usage report's model: the session's, or another one (a transcription model) if priced. */
  #usageModel(model: string): string {
    if (model === (this.#ctx.model || this.#tracker.session.model)) return this.#modelLabel();
    return this.#shared.metrics.modelLabel(this.#tenant, model, this.#accepted(model));
  }

  #accepted(model: string | null): boolean {
    if (!model) return false;
    return model === this.#tracker.session.model || this.#shared.priced?.(model) === true;
  }

  /** Every line the session logs while the turn is current carries the turn's trace and span id. */
  #bind(turn: TurnRecord, traceId: string, spanId: string): void {
    const holder = this.#ctx.log as unknown as BindingsHolder;
    const base = this.#baseBindings;
    if (typeof base !== 'string' || typeof holder[CHINDINGS] !== 'string') return;
    // perf: the ids are written into pino's bindings string directly. `setBindings` ran every
    // binding through the redaction serializer and JSON.stringify, twice per turn for every
    // session (~40 % of a turn's opening in the profile at 500 sessions); ids are lowercase hex
    // (span-records.ts), nothing to escape or redact. Anything else goes the slow way.
    if (HEX_ID.test(traceId) && HEX_ID.test(spanId)) holder[CHINDINGS] = `${base},"trace_id":"${traceId}","span_id":"${spanId}"`;
    else {
      holder[CHINDINGS] = base;
      this.#ctx.log.setBindings({ trace_id: traceId, span_id: spanId });
    }
    this.#boundTurn = turn;
  }

  #restoreBindings(): void {
    if (this.#boundTurn === null) return;
    (this.#ctx.log as unknown as BindingsHolder)[CHINDINGS] = this.#baseBindings;
    this.#boundTurn = null;
  }

  #logTurn(turn: TurnRecord): void {
    const level = this.#shared.settings.logTurns;
    if (level === 'off' || !this.#ctx.log.isLevelEnabled(level)) return;
    const lat = turnLatencies(turn);
    const ms = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
    let input = 0;
    let output = 0;
    for (const r of turn.responses) {
      input += r.usage?.input ?? 0;
      output += r.usage?.output ?? 0;
    }
    const record: Record<string, unknown> = {
      event: 'turn_end',
      turn: turn.number,
      endReason: turn.endReason,
      initiator: turn.initiator,
      anchor: turn.anchor,
      responses: turn.responses.length,
      tools: turn.tools.length,
      responseLatencyMs: ms(lat.responseLatencyMs),
      voiceToVoiceMs: ms(lat.voiceToVoiceMs),
      timeToFirstTextMs: ms(lat.timeToFirstTextMs),
      durationMs: ms(lat.durationMs),
      inputTokens: input,
      outputTokens: output,
      costUsd: turn.costMicros / 1e6,
    };
    if (turn.interruption) record['interruption'] = turn.interruption;
    if (turn.errorType) record['errorType'] = turn.errorType;
    if (turn.guardrailAction) record['guardrailAction'] = turn.guardrailAction;
    // Captured content is already redacted and capped (capture is opt-in per tenant).
    if (turn.inputText !== null) record['inputTranscript'] = turn.inputText;
    const out = turn.responses.map((r) => r.outputText).filter((t): t is string => t !== null);
    if (out.length > 0) record['outputTranscript'] = out.join('\n');
    this.#ctx.log[level](record, 'turn end');
  }
}

export class TelemetryFilterFactory implements FilterFactory {
  readonly name = 'telemetry';
  /**
   * Every frame but audio: turn boundaries come from many types. Audio frames are the bulk of the
   * traffic; the relay counts them and reports first audio per response (SessionContext.audio).
   */
  readonly wants = { client: { allBut: AUDIO_CLIENT_TYPES }, server: { allBut: AUDIO_SERVER_TYPES } } as const;
  readonly failMode = 'open' as const;
  readonly #shared: TelemetryShared;

  constructor(shared: TelemetryShared) {
    this.#shared = shared;
  }

  create(ctx: SessionContext): TelemetrySession {
    return new TelemetrySession(ctx, this.#shared);
  }
}
