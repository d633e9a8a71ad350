import type { Attributes, BatchObservableResult, Counter, Meter, ObservableCounter, UpDownCounter } from '@opentelemetry/api';
import type { HistogramProducer, HistogramTable } from './histograms.js';
import type { Report } from '../pipeline/reports.js';
import { turnLatencies, type ResponseRecord, type ToolRecord, type TurnRecord, type Usage } from './records.js';
import * as S from './semconv.js';
import { ErrorCatalogue } from '../protocol/errors.js';

/**
 * Keeps a label's value set bounded: the first `max` distinct values pass through, the rest are
 * folded into `other`. For labels whose values clients influence (model, tool name, error code).
 */
export class BoundedLabel {
  readonly #seen = new Set<string>();
  readonly #max: number;

  constructor(max: number) {
    this.#max = max;
  }

  get(value: string | null | undefined): string {
    if (!value) return 'unknown';
    const v = value.length > 64 ? value.slice(0, 64) : value;
    if (this.#seen.has(v)) return v;
    if (this.#seen.size >= this.#max) return 'other';
    this.#seen.add(v);
    return v;
  }
}

/**
 * A label whose values the client names (tool names: the client declares its tools, the model
 * calls them by name): bounded per tenant and in total, so one tenant's key cannot grow the
 * series without end nor use up a global allowance and fold every other tenant's tools into
 * `other` (a single global BoundedLabel, before 2026-12-05, let one session do both). Values
 * that are not identifier-shaped (OpenAI function names: letters, digits, `_`, `-`, up to 64)
 * are `other` too, not label text.
 */
export class TenantBoundedLabel {
  /** Identifier-shaped: OpenAI function names and error codes, as OpenAI and the catalogue spell them. */
  static readonly SHAPE = /^[A-Za-z0-9_.:-]{1,64}$/;
  readonly #seen = new Map<string, Set<string>>();
  readonly #perTenant: number;
  readonly #total: number;
  #count = 0;

  constructor(perTenant: number, total: number) {
    this.#perTenant = perTenant;
    this.#total = total;
  }

  get(tenant: string, value: string | null | undefined): string {
    if (!value) return 'unknown';
    if (!TenantBoundedLabel.SHAPE.test(value)) return 'other';
    let set = this.#seen.get(tenant);
    if (set?.has(value)) return value;
    if (this.#count >= this.#total || (set !== undefined && set.size >= this.#perTenant)) return 'other';
    if (!set) this.#seen.set(tenant, (set = new Set()));
    set.add(value);
    this.#count++;
    return value;
  }
}

/**
 * Monotonic sums kept as plain numbers, keyed by their label values, and reported by an observable
 * counter at collection time: recording costs a few map lookups instead of the SDK's per-call
 * attribute hashing. perf: the values are looked up level by level (no key string is built) and the
 * label set is built by the table's one function, the first time only, so a sum already seen
 * allocates nothing (a verdict is counted per transcript delta a guardrail rewrites). Every call of
 * one table passes as many values, in the order its label function takes them; values come from
 * bounded labels only.
 */
class SumTable {
  readonly #root: SumLevel = new Map();
  readonly #rows: SumRow[] = [];
  readonly #labels: SumLabels;

  constructor(labels: SumLabels) {
    this.#labels = labels;
  }

  add(n: number, a: string, b: string, c?: string, d?: string, e?: string): void {
    let at = level(this.#root, a);
    let last = b;
    if (c !== undefined) {
      at = level(at, b);
      last = c;
      if (d !== undefined) {
        at = level(at, c);
        last = d;
        if (e !== undefined) {
          at = level(at, d);
          last = e;
        }
      }
    }
    let row = at.get(last) as SumRow | undefined;
    if (row === undefined) {
      row = { attrs: this.#labels(a, b, c ?? '', d ?? '', e ?? ''), value: 0 };
      at.set(last, row);
      this.#rows.push(row);
    }
    row.value += n;
  }

  observe(result: BatchObservableResult, instrument: ObservableCounter): void {
    for (const row of this.#rows) result.observe(instrument, row.value, row.attrs);
  }
}

/** A SumTable's label set from its values (unused trailing values are ''). */
type SumLabels = (a: string, b: string, c: string, d: string, e: string) => Attributes;

/** One sum of a SumTable: its label set, built once, and its value. */
interface SumRow {
  readonly attrs: Attributes;
  value: number;
}

/** One level of a SumTable: the next value's map, or the rows at the last one. */
type SumLevel = Map<string, unknown>;

function level(parent: SumLevel, key: string): SumLevel {
  let next = parent.get(key) as SumLevel | undefined;
  if (next === undefined) {
    next = new Map();
    parent.set(key, next);
  }
  return next;
}

/** Hot-path counters of one live session: plain numbers, summed by the observable callback. */
export interface SessionMeters {
  readonly tenant: string;
  readonly clientFrames: number;
  readonly clientBytes: number;
  readonly serverFrames: number;
  readonly serverBytes: number;
  readonly audioInMs: number;
  readonly audioOutMs: number;
}

interface Totals {
  clientFrames: number;
  clientBytes: number;
  serverFrames: number;
  serverBytes: number;
  audioInMs: number;
  audioOutMs: number;
}

const zeroTotals = (): Totals => ({ clientFrames: 0, clientBytes: 0, serverFrames: 0, serverBytes: 0, audioInMs: 0, audioOutMs: 0 });

/**
 * Every instrument of the proxy, with bounded labels. Turn, response and session figures are
 * recorded at those boundaries; per-frame figures (frames, bytes, audio seconds) are observable
 * instruments read from the live sessions' plain counters at collection time. Histograms are
 * plain tables (histograms.ts), not SDK instruments: no attribute hashing per record.
 */
export class TelemetryMetrics {
  readonly tenants = new BoundedLabel(1000);
  /**
   * 20 models per tenant, 1000 (tenant, model) pairs in all. A client names the model in the URL,
   * and every `<priced model>-YYYY-MM-DD` is priced: a single global BoundedLabel(50), until
   * 2026-12-06, let one tenant's 50 sessions fold every other tenant's model into `other`. Values
   * go through modelLabel (only models the upstream accepted or that are priced).
   */
  readonly models = new TenantBoundedLabel(20, 1000);
  /** 20 tools per tenant, 2000 (tenant, tool) pairs in all: series = pairs × the histogram's buckets. */
  readonly tools = new TenantBoundedLabel(20, 2000);
  readonly codes = new BoundedLabel(200);
  readonly policies = new BoundedLabel(500);

  readonly #operationDuration: HistogramTable;
  readonly #tokenUsage: HistogramTable;
  readonly #invokeAgentDuration: HistogramTable;
  readonly #executeToolDuration: HistogramTable;
  readonly #responseLatency: HistogramTable;
  readonly #voiceToVoice: HistogramTable;
  readonly #timeToFirstText: HistogramTable;
  readonly #timeToFirstAudio: HistogramTable;
  readonly #turns: ObservableCounter;
  readonly #interruptions: ObservableCounter;
  readonly #tokens: ObservableCounter;
  readonly #cost: ObservableCounter;
  readonly #turnSums = new SumTable((tenant, model, reason, initiator) => ({ [S.ATTR_TENANT_ID]: tenant, [S.ATTR_GEN_AI_REQUEST_MODEL]: model, [S.ATTR_GEN_AI_AGENT_INVOCATION_END_REASON]: reason, [S.ATTR_TURN_INITIATOR]: initiator }));
  readonly #interruptionSums = new SumTable((tenant, kind) => ({ [S.ATTR_TENANT_ID]: tenant, [S.ATTR_INTERRUPTION_KIND]: kind }));
  readonly #tokenSums = new SumTable((tenant, model, type, modality, cached) => ({
    [S.ATTR_TENANT_ID]: tenant,
    [S.ATTR_GEN_AI_REQUEST_MODEL]: model,
    [S.ATTR_GEN_AI_TOKEN_TYPE]: type,
    [S.ATTR_GEN_AI_TOKEN_MODALITY]: modality,
    'rtproxy.token.cached': cached,
  }));
  readonly #costSums = new SumTable((tenant, model) => ({ [S.ATTR_TENANT_ID]: tenant, [S.ATTR_GEN_AI_REQUEST_MODEL]: model }));
  readonly #sessionsActive: UpDownCounter;
  readonly #sessionsStarted: Counter;
  readonly #sessionsEnded: Counter;
  readonly #sessionDuration: HistogramTable;
  readonly #upstreamConnect: HistogramTable;
  readonly #guardrails: Counter;
  /** Unknown content event types by tenant, direction and policy action (per frame: summed, observed at collection). */
  readonly #unknownContent: ObservableCounter;
  readonly #unknownContentSums = new SumTable((tenant, direction, action) => ({ [S.ATTR_TENANT_ID]: tenant, [S.ATTR_DIRECTION]: direction, [S.ATTR_GUARDRAIL_ACTION]: action }));
  readonly #budget: Counter;
  readonly #prunes: Counter;
  readonly #locks: Counter;
  /**
   * perf: verdicts can come once per frame (guardrails hold back streamed text): summed here and
   * observed at collection, so no per-frame attribute hashing in the SDK. Label sets are bounded:
   * configured tenants × filters × 4 verdicts × catalogue codes.
   */
  readonly #verdicts: ObservableCounter;
  readonly #verdictSums = new SumTable((tenant, filter, verdict, code) => ({ [S.ATTR_TENANT_ID]: tenant, [S.ATTR_VERDICT_FILTER]: filter, [S.ATTR_VERDICT]: verdict, [S.ATTR_VERDICT_CODE]: code }));
  readonly #errors: Counter;
  readonly #relayLatency: HistogramTable;
  readonly #backpressure: Counter;
  readonly #upgradesRefused: Counter;
  /** Reasons are error codes from the catalogue, bounded anyway. */
  readonly #refusalReasons = new BoundedLabel(50);
  readonly #httpRefused: Counter;
  /** Route templates are fixed strings of the modules, codes come from the catalogue: bounded anyway. */
  readonly #httpRoutes = new BoundedLabel(50);
  readonly #httpRefusalCodes = new BoundedLabel(100);
  readonly #callNotifications: Counter;
  /** Outcomes are the notifier's three words; anything else would be a bug, folded all the same. */
  readonly #notifyOutcomes = new BoundedLabel(8);
  readonly #callTransfers: Counter;
  /** Outcomes are the refer route's three words. */
  readonly #transferOutcomes = new BoundedLabel(8);
  readonly #frames: ObservableCounter;
  readonly #bytes: ObservableCounter;
  readonly #audio: ObservableCounter;

  readonly #live = new Set<SessionMeters>();
  readonly #retired = new Map<string, Totals>();

  constructor({ meter, histograms }: { readonly meter: Meter; readonly histograms: HistogramProducer }) {
    const T = S.ATTR_TENANT_ID;
    const M = S.ATTR_GEN_AI_REQUEST_MODEL;
    const inference = [S.ATTR_GEN_AI_OPERATION_NAME, S.ATTR_GEN_AI_PROVIDER_NAME, M, T];
    const anchored = [T, M, S.ATTR_TURN_ANCHOR];
    this.#operationDuration = histograms.histogram(S.METRIC_OPERATION_DURATION, 's', 'GenAI operation duration: one realtime response, request (or creation) to response.done.', S.DURATION_BUCKETS, [...inference, S.ATTR_ERROR_TYPE]);
    this.#tokenUsage = histograms.histogram(S.METRIC_TOKEN_USAGE, '{token}', 'Tokens per response, by input/output.', S.TOKEN_BUCKETS, [...inference, S.ATTR_GEN_AI_TOKEN_TYPE]);
    this.#invokeAgentDuration = histograms.histogram(S.METRIC_INVOKE_AGENT_DURATION, 's', 'Turn duration (the invoke_agent span).', S.DURATION_BUCKETS, [T, M, S.ATTR_GEN_AI_AGENT_INVOCATION_END_REASON]);
    this.#executeToolDuration = histograms.histogram(S.METRIC_EXECUTE_TOOL_DURATION, 's', 'Client tool round trip: function_call_arguments.done to function_call_output.', S.DURATION_BUCKETS, [T, S.ATTR_GEN_AI_TOOL_NAME]);
    this.#responseLatency = histograms.histogram(S.METRIC_TURN_RESPONSE_LATENCY, 's', 'End of the user turn as the proxy saw it to the first audio forwarded to the client.', S.LATENCY_BUCKETS, anchored);
    this.#voiceToVoice = histograms.histogram(S.METRIC_TURN_VOICE_TO_VOICE, 's', 'Estimated true end of speech (VAD silence window removed) to the first audio forwarded.', S.LATENCY_BUCKETS, anchored);
    this.#timeToFirstText = histograms.histogram(S.METRIC_TURN_TIME_TO_FIRST_TEXT, 's', 'End of the user turn to the first text or transcript delta forwarded.', S.LATENCY_BUCKETS, anchored);
    this.#timeToFirstAudio = histograms.histogram(S.METRIC_RESPONSE_TIME_TO_FIRST_AUDIO, 's', 'response.created to the first audio delta forwarded.', S.LATENCY_BUCKETS, [T, M, S.ATTR_RESPONSE_TRIGGER]);
    this.#turns = meter.createObservableCounter(S.METRIC_TURNS, { unit: '{turn}', description: 'Turns by end reason.' });
    this.#interruptions = meter.createObservableCounter(S.METRIC_INTERRUPTIONS, { unit: '{interruption}', description: 'Barge-ins and cancels, by kind (generation, playback).' });
    this.#tokens = meter.createObservableCounter(S.METRIC_USAGE_TOKENS, { unit: '{token}', description: 'Tokens by type, modality and cache.' });
    this.#cost = meter.createObservableCounter(S.METRIC_USAGE_COST, { unit: '{USD}', description: 'Cost in USD as metered by the proxy.' });
    this.#sessionsActive = meter.createUpDownCounter(S.METRIC_SESSIONS_ACTIVE, { unit: '{session}', description: 'Sessions open now.' });
    this.#sessionsStarted = meter.createCounter(S.METRIC_SESSIONS_STARTED, { unit: '{session}', description: 'Sessions accepted.' });
    this.#sessionsEnded = meter.createCounter(S.METRIC_SESSIONS_ENDED, { unit: '{session}', description: 'Sessions ended, by close reason.' });
    this.#sessionDuration = histograms.histogram(S.METRIC_SESSION_DURATION, 's', 'Session duration by close reason.', S.SESSION_BUCKETS, [T, S.ATTR_SESSION_CLOSE_REASON]);
    this.#upstreamConnect = histograms.histogram(S.METRIC_UPSTREAM_CONNECT, 's', 'Upstream WebSocket connect time (error.type set on failure).', S.CONNECT_BUCKETS, [S.ATTR_ERROR_TYPE]);
    this.#guardrails = meter.createCounter(S.METRIC_GUARDRAIL_TRIPS, { unit: '{trip}', description: 'Guardrail decisions by policy, rule and action.' });
    this.#unknownContent = meter.createObservableCounter(S.METRIC_UNKNOWN_CONTENT, { unit: '{event}', description: 'Events (or items, content parts) of a type the guardrails\' content-path table does not know, by direction and policy action (pass, block); the log names the first few types of each session.' });
    this.#budget = meter.createCounter(S.METRIC_BUDGET_EVENTS, { unit: '{event}', description: 'Budget enforcement (refused, cancelled, clamped, ended).' });
    this.#prunes = meter.createCounter(S.METRIC_PRUNES, { unit: '{prune}', description: 'Conversation prunes by the proxy.' });
    this.#locks = meter.createCounter(S.METRIC_LOCKS, { unit: '{event}', description: 'Locked session fields rewritten or rejected.' });
    this.#verdicts = meter.createObservableCounter(S.METRIC_VERDICTS, { unit: '{verdict}', description: 'Frames a filter replaced, dropped, rejected or closed on.' });
    this.#errors = meter.createCounter(S.METRIC_ERRORS, { unit: '{error}', description: 'Errors by type and origin (upstream, proxy).' });
    this.#relayLatency = histograms.histogram(S.METRIC_RELAY_LATENCY, 's', 'Proxy processing time per relayed frame (sampled).', S.RELAY_BUCKETS, [S.ATTR_DIRECTION]);
    this.#backpressure = meter.createCounter(S.METRIC_BACKPRESSURE, { unit: '{event}', description: 'Times the proxy paused a direction for backpressure.' });
    this.#upgradesRefused = meter.createCounter(S.METRIC_UPGRADES_REFUSED, { unit: '{upgrade}', description: 'WebSocket upgrades refused before a session existed, by reason (invalid_api_key, headers_too_large, overloaded, …).' });
    this.#httpRefused = meter.createCounter(S.METRIC_HTTP_REFUSED, { unit: '{request}', description: 'HTTP requests a route of the proxy refused with one of its error codes (calls: mint, offer, hangup, refer, accept and reject, SIP webhook), by route and code (calls_store_unavailable, invalid_api_key, …).' });
    this.#callNotifications = meter.createCounter(S.METRIC_CALL_NOTIFICATIONS, { unit: '{notification}', description: 'SIP calls announced to the tenant\'s app (calls.sip.routes[].notify), by tenant and outcome: delivered, failed (every attempt refused or unanswered), dropped (too many pending).' });
    this.#callTransfers = meter.createCounter(S.METRIC_CALL_TRANSFERS, { unit: '{transfer}', description: 'Call transfers (SIP REFER, POST /v1/realtime/calls/{id}/refer) tenants asked for, by tenant and outcome: transferred (the upstream answered 2xx), refused (the call\'s route does not allow the target: transfer_not_allowed), failed (the upstream refused it or did not answer).' });
    this.#frames = meter.createObservableCounter(S.METRIC_RELAY_FRAMES, { unit: '{frame}', description: 'Frames relayed (client = client to upstream).' });
    this.#bytes = meter.createObservableCounter(S.METRIC_RELAY_BYTES, { unit: 'By', description: 'Bytes relayed.' });
    this.#audio = meter.createObservableCounter(S.METRIC_AUDIO_DURATION, { unit: 's', description: 'Audio relayed, in seconds (from base64 sizes).' });
    meter.addBatchObservableCallback(
      (result) => {
        const totals = new Map<string, Totals>();
        for (const [tenant, t] of this.#retired) totals.set(tenant, { ...t });
        for (const s of this.#live) {
          let t = totals.get(s.tenant);
          if (!t) totals.set(s.tenant, (t = zeroTotals()));
          addInto(t, s);
        }
        for (const [tenant, t] of totals) {
          const c = { [S.ATTR_TENANT_ID]: tenant, [S.ATTR_DIRECTION]: 'client' };
          const u = { [S.ATTR_TENANT_ID]: tenant, [S.ATTR_DIRECTION]: 'server' };
          result.observe(this.#frames, t.clientFrames, c);
          result.observe(this.#frames, t.serverFrames, u);
          result.observe(this.#bytes, t.clientBytes, c);
          result.observe(this.#bytes, t.serverBytes, u);
          result.observe(this.#audio, t.audioInMs / 1000, { [S.ATTR_TENANT_ID]: tenant, [S.ATTR_DIRECTION]: 'input' });
          result.observe(this.#audio, t.audioOutMs / 1000, { [S.ATTR_TENANT_ID]: tenant, [S.ATTR_DIRECTION]: 'output' });
        }
        this.#turnSums.observe(result, this.#turns);
        this.#interruptionSums.observe(result, this.#interruptions);
        this.#tokenSums.observe(result, this.#tokens);
        this.#costSums.observe(result, this.#cost);
        this.#verdictSums.observe(result, this.#verdicts);
        this.#unknownContentSums.observe(result, this.#unknownContent);
      },
      [this.#frames, this.#bytes, this.#audio, this.#turns, this.#interruptions, this.#tokens, this.#cost, this.#verdicts, this.#unknownContent],
    );
  }

  // ---- sessions ----------------------------------------------------------------------------

  sessionStarted(meters: SessionMeters): void {
    this.#live.add(meters);
    const attrs = { [S.ATTR_TENANT_ID]: meters.tenant };
    this.#sessionsActive.add(1, attrs);
    this.#sessionsStarted.add(1, attrs);
  }

  sessionEnded(meters: SessionMeters, closeReason: string, initiator: string, durationS: number): void {
    if (!this.#live.delete(meters)) return;
    let t = this.#retired.get(meters.tenant);
    if (!t) this.#retired.set(meters.tenant, (t = zeroTotals()));
    addInto(t, meters);
    const tenant = { [S.ATTR_TENANT_ID]: meters.tenant };
    this.#sessionsActive.add(-1, tenant);
    this.#sessionsEnded.add(1, { ...tenant, [S.ATTR_SESSION_CLOSE_REASON]: closeReason, [S.ATTR_SESSION_CLOSE_INITIATOR]: initiator });
    this.#sessionDuration.record(durationS, [meters.tenant, closeReason]);
  }

  upgradeRefused(reason: string): void {
    this.#upgradesRefused.add(1, { [S.ATTR_REFUSAL_REASON]: this.#refusalReasons.get(reason) });
  }

  httpRefused(route: string, code: string): void {
    this.#httpRefused.add(1, { [S.ATTR_HTTP_ROUTE]: this.#httpRoutes.get(route), [S.ATTR_REFUSAL_REASON]: this.#httpRefusalCodes.get(code) });
  }

  callNotified(tenant: string, outcome: string): void {
    this.#callNotifications.add(1, { [S.ATTR_TENANT_ID]: this.tenants.get(tenant), [S.ATTR_NOTIFY_OUTCOME]: this.#notifyOutcomes.get(outcome) });
  }

  callTransferred(tenant: string, outcome: string): void {
    this.#callTransfers.add(1, { [S.ATTR_TENANT_ID]: this.tenants.get(tenant), [S.ATTR_TRANSFER_OUTCOME]: this.#transferOutcomes.get(outcome) });
  }

  upstreamConnect(seconds: number, errorType: string | null): void {
    this.#upstreamConnect.record(seconds, [errorType]);
  }

  // ---- turns and responses -----------------------------------------------------------------

  /**
   * The `gen_ai.request.model` label of a tenant's series: `unknown` without a model, `other` for
   * one neither `accepted` (the upstream confirmed it: session.created named it) nor priced (the
   * caller decides both), else the model, shape-checked and bounded per tenant. With
   * `metering.fallbackPrice` a model the upstream refused (`invalid_model`) used to become a label
   * value holding any text the client wrote in the URL.
   */
  modelLabel(tenant: string, model: string | null | undefined, accepted: boolean): string {
    if (!model) return 'unknown';
    return accepted ? this.models.get(tenant, model) : 'other';
  }

  responseDone(tenant: string, model: string, r: ResponseRecord): void {
    const end = r.doneAt;
    if (end !== null) {
      const errorType = r.errorType ? this.upstreamCode(r.errorType) : null;
      this.#operationDuration.record((end - (r.requestedAt ?? r.createdAt)) / 1000, [S.OP_REALTIME_INFERENCE, S.GEN_AI_PROVIDER_OPENAI, model, tenant, errorType]);
    }
    if (r.firstAudioAt !== null) this.#timeToFirstAudio.record((r.firstAudioAt - r.createdAt) / 1000, [tenant, model, r.trigger]);
    if (r.usage) this.#usage(tenant, model, r.usage);
  }

  #usage(tenant: string, model: string, u: Usage): void {
    this.#tokenUsage.record(u.input, [S.OP_REALTIME_INFERENCE, S.GEN_AI_PROVIDER_OPENAI, model, tenant, 'input']);
    this.#tokenUsage.record(u.output, [S.OP_REALTIME_INFERENCE, S.GEN_AI_PROVIDER_OPENAI, model, tenant, 'output']);
    const add = (n: number, type: string, modality: string, cached: boolean) => {
      if (n <= 0) return;
      this.#tokenSums.add(n, tenant, model, type, modality, cached ? 'true' : 'false');
    };
    add(u.inputText - u.cachedText, 'input', 'text', false);
    add(u.cachedText, 'input', 'text', true);
    add(u.inputAudio - u.cachedAudio, 'input', 'audio', false);
    add(u.cachedAudio, 'input', 'audio', true);
    add(u.inputImage - u.cachedImage, 'input', 'image', false);
    add(u.cachedImage, 'input', 'image', true);
    add(u.outputText, 'output', 'text', false);
    add(u.outputAudio, 'output', 'audio', false);
  }

  turnClosed(tenant: string, model: string, turn: TurnRecord): void {
    const reason = turn.endReason ?? 'completed';
    const initiator = turn.initiator;
    this.#turnSums.add(1, tenant, model, reason, initiator);
    const lat = turnLatencies(turn);
    this.#invokeAgentDuration.record(lat.durationMs / 1000, [tenant, model, reason]);
    const anchored = [tenant, model, turn.anchor];
    if (lat.responseLatencyMs !== null) this.#responseLatency.record(lat.responseLatencyMs / 1000, anchored);
    if (lat.voiceToVoiceMs !== null) this.#voiceToVoice.record(lat.voiceToVoiceMs / 1000, anchored);
    if (lat.timeToFirstTextMs !== null) this.#timeToFirstText.record(lat.timeToFirstTextMs / 1000, anchored);
    const kind = turn.interruption;
    if (kind) this.#interruptionSums.add(1, tenant, kind);
    for (const tool of turn.tools) this.#tool(tenant, tool);
  }

  #tool(tenant: string, tool: ToolRecord): void {
    if (tool.end === null) return;
    this.#executeToolDuration.record((tool.end - tool.start) / 1000, [tenant, this.tools.get(tenant, tool.name)]);
  }

  // ---- reports -----------------------------------------------------------------------------

  /** `usageModel`: the model label of a `usage` report (modelLabel), decided by the session. */
  report(tenant: string, report: Report, usageModel = 'other'): void {
    // Most reports record nothing here (relay timings, audio moments): no allocation for those.
    if (report.kind === 'relay_latency') {
      this.relayLatency(report.direction, report.ms);
      return;
    }
    if (report.kind === 'output_audio_started' || report.kind === 'input_audio_started' || report.kind === 'upstream_connected' || report.kind === 'injected' || report.kind === 'create_sent' || report.kind === 'stamped') return;
    // The tenant's label set for the rarer reports below (built per call: they are not per frame).
    const t = (): Attributes => ({ [S.ATTR_TENANT_ID]: tenant });
    switch (report.kind) {
      case 'usage': {
        const model = usageModel;
        this.#costSums.add(report.costMicros / 1e6, tenant, model);
        if (report.source === 'transcription') {
          if (report.inputTokens > 0) this.#tokenSums.add(report.inputTokens, tenant, model, 'input', 'audio', 'false');
          if (report.outputTokens > 0) this.#tokenSums.add(report.outputTokens, tenant, model, 'output', 'text', 'false');
        }
        return;
      }
      case 'guardrail':
        this.#guardrails.add(1, {
          ...t(),
          [S.ATTR_GEN_AI_GUARDRAIL_POLICY_ID]: this.policies.get(report.policyId),
          [S.ATTR_GUARDRAIL_RULE_ID]: this.policies.get(report.ruleId),
          [S.ATTR_GUARDRAIL_ACTION]: report.action,
          [S.ATTR_GEN_AI_GUARDRAIL_SOURCE]: report.source,
        });
        return;
      case 'unknown_content': {
        const { direction, action } = report;
        this.#unknownContentSums.add(1, tenant, direction, action);
        return;
      }
      case 'budget':
        this.#budget.add(1, { ...t(), [S.ATTR_BUDGET_ACTION]: report.action, [S.ATTR_BUDGET_SCOPE]: report.scope });
        return;
      case 'prune':
        this.#prunes.add(1, t());
        return;
      case 'lock':
        this.#locks.add(1, { ...t(), 'rtproxy.lock.field': this.policies.get(report.field), 'rtproxy.lock.action': report.action });
        return;
      case 'verdict': {
        const code = report.code ?? 'none';
        this.#verdictSums.add(1, tenant, report.filter, report.verdict, code);
        return;
      }
      case 'filter_error':
        this.#errors.add(1, { ...t(), [S.ATTR_ERROR_TYPE]: 'filter_error', [S.ATTR_ERROR_ORIGIN]: 'proxy' });
        return;
      case 'injected_error':
        // The upstream refused an event the proxy sent to enforce a policy or limit.
        this.#errors.add(1, { ...t(), [S.ATTR_ERROR_TYPE]: 'governance_failed', [S.ATTR_ERROR_ORIGIN]: 'upstream' });
        return;
      case 'backpressure':
        if (report.state === 'paused') this.#backpressure.add(1, { ...t(), [S.ATTR_DIRECTION]: report.direction });
        return;
      default:
        return;
    }
  }

  error(tenant: string, code: string, origin: 'upstream' | 'proxy' | 'client'): void {
    this.#errors.add(1, { [S.ATTR_TENANT_ID]: tenant, [S.ATTR_ERROR_TYPE]: origin === 'proxy' ? proxyCode(code) : this.upstreamCode(code), [S.ATTR_ERROR_ORIGIN]: origin });
  }

  /**
   * An error code the upstream named: identifier-shaped ones share a bounded set, anything else
   * (a message, a megabyte) is `other`. The proxy's own codes never compete for that set: an
   * upstream sending 200 made-up codes folded `invalid_json`, `budget_exceeded`, … into `other`.
   */
  upstreamCode(code: string | null): string {
    if (code && !TenantBoundedLabel.SHAPE.test(code)) return 'other';
    return this.codes.get(code);
  }

  relayLatency(direction: 'client' | 'server', ms: number): void {
    this.#relayLatency.record(ms / 1000, [direction]);
  }
}


/** The proxy's own codes come from the catalogue (plus `rejected`, a verdict without one): an exact set. */
function proxyCode(code: string): string {
  return code === 'rejected' || Object.prototype.hasOwnProperty.call(ErrorCatalogue, code) ? code : 'other';
}

function addInto(t: Totals, s: SessionMeters): void {
  t.clientFrames += s.clientFrames;
  t.clientBytes += s.clientBytes;
  t.serverFrames += s.serverFrames;
  t.serverBytes += s.serverBytes;
  t.audioInMs += s.audioInMs;
  t.audioOutMs += s.audioOutMs;
}
