import type { GuardrailEvent } from './api.js';
import { CONTINUE, DROP, closeWith, reject, replace, type Filter, type FilterFactory, type SessionContext, type Verdict } from '../pipeline/filter.js';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import type { Report } from '../pipeline/reports.js';
import { ProxyError } from '../protocol/errors.js';
import type { CompiledCustom, CompiledPolicy } from './compile.js';
import { isThenable, runCustom, type CustomSessionInfo, type CustomVerdict } from './custom.js';
import { ACTION_RANK, scanText, TextScanner, type Action, type CompiledRule, type Source } from './matchers.js';
import type { PolicyEntry, PolicyRegistry } from './registry.js';
import { asArray, asObject, asString, clientEventId, notifyClient, toFrame } from './util.js';

export const GUARDRAILS_FILTER = 'policies.guardrails';

const OUT_TRANSCRIPT_DELTA = 'response.output_audio_transcript.delta';
const OUT_TEXT_DELTA = 'response.output_text.delta';
/** The rule id reported for texts over the policy's `maxScanChars`. */
export const SCAN_LIMIT_RULE = 'scan_limit';
const OUT_TRANSCRIPT_DONE = 'response.output_audio_transcript.done';
const OUT_TEXT_DONE = 'response.output_text.done';
const IN_DELTA = 'conversation.item.input_audio_transcription.delta';
const IN_DONE = 'conversation.item.input_audio_transcription.completed';
const TOOL_DONE = 'response.function_call_arguments.done';

const SERVER_TYPES = [
  OUT_TRANSCRIPT_DELTA,
  OUT_TEXT_DELTA,
  OUT_TRANSCRIPT_DONE,
  OUT_TEXT_DONE,
  IN_DELTA,
  IN_DONE,
  TOOL_DONE,
  'response.created',
  'response.done',
  'response.content_part.done',
  'response.output_item.done',
  'conversation.item.done',
] as const;

/** Sources a client event can carry. */
const CLIENT_SOURCES: readonly Source[] = ['input', 'tool_output', 'image'];

type ReportSource = Extract<Report, { kind: 'guardrail' }>['source'];
const REPORT_SOURCE: Readonly<Record<Source, ReportSource>> = {
  input: 'input',
  output: 'output',
  tool_call: 'tool_input',
  tool_output: 'tool_output',
  image: 'input',
};

/** One rule or custom guardrail that tripped on an event. */
interface Finding {
  readonly id: string;
  readonly action: Action;
  readonly label: string;
  readonly excerpt: string | null;
}

/** What the rules and custom guardrails found in one text. */
class Evaluation {
  readonly findings: Finding[] = [];
  text: string;
  redacted = false;

  constructor(text: string) {
    this.text = text;
  }

  get strongest(): Action | null {
    let best: Action | null = null;
    for (const f of this.findings) if (best === null || ACTION_RANK[f.action] > ACTION_RANK[best]) best = f.action;
    return best;
  }

  addHits(hits: readonly { rule: CompiledRule; label: string; excerpt: string | null }[]): void {
    for (const h of hits) this.findings.push({ id: h.rule.id, action: h.rule.action, label: h.label, excerpt: h.excerpt });
  }

  addCustom(c: CompiledCustom, v: CustomVerdict): void {
    if (v.action === 'allow') return;
    if (v.action === 'redact' && v.text !== null) {
      this.text = v.text;
      this.redacted = true;
    }
    this.findings.push({ id: c.id, action: v.action, label: `custom:${v.via}`, excerpt: null });
  }
}

/** A text being streamed (an output content part, or an input transcript), scanned incrementally. */
interface Stream {
  readonly source: Source;
  readonly policy: CompiledPolicy;
  readonly scanner: TextScanner;
  readonly customs: readonly CompiledCustom[];
  readonly responseId: string | null;
  readonly itemId: string;
}

const ruleCache = new WeakMap<CompiledPolicy, Map<string, readonly CompiledRule[]>>();

/** The policy's rules for a source, limited to those that apply to `eventType`. Cached per policy. */
function rulesFor(policy: CompiledPolicy, source: Source, eventType: string): readonly CompiledRule[] {
  let byKey = ruleCache.get(policy);
  if (!byKey) ruleCache.set(policy, (byKey = new Map()));
  const key = `${source}\u0000${eventType}`;
  let rules = byKey.get(key);
  if (!rules) {
    rules = (policy.rulesBySource.get(source) ?? []).filter((r) => r.events === null || r.events.has(eventType));
    byKey.set(key, rules);
  }
  return rules;
}

function redactRules(policy: CompiledPolicy, source: Source, eventType: string): readonly CompiledRule[] {
  return rulesFor(policy, source, eventType).filter((r) => r.action === 'redact');
}

/** Texts inside a client-created item, with where each one goes back. */
interface ItemText {
  readonly source: Source;
  readonly text: string;
  set(item: JsonObject, text: string): void;
}

function itemTexts(item: JsonObject): ItemText[] {
  const out: ItemText[] = [];
  const type = item['type'];
  if (type === 'function_call_output') {
    const output = asString(item['output']);
    if (output !== null) out.push({ source: 'tool_output', text: output, set: (it, t) => void (it['output'] = t) });
    return out;
  }
  if (type !== 'message') return out;
  const content = asArray(item['content']) ?? [];
  content.forEach((p, i) => {
    const part = asObject(p);
    if (!part) return;
    const partType = part['type'];
    const setPart = (key: string) => (it: JsonObject, t: string) => {
      const c = asArray(it['content']);
      const target = c ? asObject(c[i]) : null;
      if (target) target[key] = t;
    };
    if ((partType === 'input_text' || partType === 'output_text' || partType === 'text') && typeof part['text'] === 'string') {
      out.push({ source: 'input', text: part['text'], set: setPart('text') });
    } else if (partType === 'input_image' && typeof part['image_url'] === 'string') {
      out.push({ source: 'image', text: part['image_url'], set: setPart('image_url') });
    }
  });
  return out;
}

export function guardrailsFactory(registry: PolicyRegistry): FilterFactory {
  return {
    name: GUARDRAILS_FILTER,
    wants: { client: ['conversation.item.create', 'response.create'], server: SERVER_TYPES },
    failMode: 'closed',
    create: (ctx) => new GuardrailFilter(ctx, registry.resolve(ctx.tenant.policy)),
  };
}

/**
 * Guardrails on both directions: client text / tool outputs / images, input transcripts, output
 * transcripts and text (incrementally, per response), and function calls. Rule verdicts are
 * synchronous; custom guardrails may be async only where the policy says so.
 */
export class GuardrailFilter implements Filter {
  readonly #ctx: SessionContext;
  readonly #entry: PolicyEntry;
  readonly #info: CustomSessionInfo;
  readonly #streams = new Map<string, Stream>();
  readonly #active = new Set<string>();
  readonly #blockedItems = new Set<string>();
  /** Function-call items of cancelled responses, deleted upstream once their response is done. */
  readonly #deleteOnDone = new Map<string, string[]>();
  readonly #customState = new Map<string, Map<string, unknown>>();
  /** An input trip came before its response existed: cancel the next one the server starts. */
  #cancelNext: { action: Action; ruleId: string } | null = null;
  #trips = 0;
  #closed = false;

  constructor(ctx: SessionContext, entry: PolicyEntry) {
    this.#ctx = ctx;
    this.#entry = entry;
    this.#info = { sessionId: ctx.id, tenantId: ctx.tenant.id, model: ctx.model, policy: entry.name, log: ctx.log };
  }

  /** The policy for stateless evaluations: the latest loaded version (hot reload applies live). */
  get #policy(): CompiledPolicy {
    return this.#entry.current;
  }

  // ---- client → upstream -------------------------------------------------------------------

  onClient(frame: Frame): Verdict | Promise<Verdict> {
    const policy = this.#policy;
    if (!CLIENT_SOURCES.some((s) => policy.rulesBySource.has(s) || policy.customBySource.has(s))) return CONTINUE;
    const t0 = this.#ctx.clock.now();
    const ev = frame.json();
    let items: { item: JsonObject; set: (copy: JsonObject, item: JsonObject) => void }[];
    if (frame.type === 'conversation.item.create') {
      const item = asObject(ev['item']);
      if (!item) return CONTINUE;
      items = [{ item, set: (copy, it) => void (copy['item'] = it) }];
    } else {
      const response = asObject(ev['response']);
      const input = asArray(response?.['input']);
      if (!input) return CONTINUE;
      items = [];
      input.forEach((raw, i) => {
        const item = asObject(raw);
        if (item) {
          items.push({
            item,
            set: (copy, it) => {
              const r = asObject(copy['response'])!;
              const list = [...(asArray(r['input']) ?? [])];
              list[i] = it;
              copy['response'] = { ...r, input: list };
            },
          });
        }
      });
    }
    const evaluations: { entry: (typeof items)[number]; texts: { t: ItemText; e: Evaluation }[] }[] = [];
    const pending: Promise<void>[] = [];
    for (const entry of items) {
      const texts: { t: ItemText; e: Evaluation }[] = [];
      for (const t of itemTexts(entry.item)) {
        const e = this.#scanFinal(policy, t.source, frame.type, t.text, null, null);
        const p = this.#runCustoms(policy, t.source, e, this.#event(t.source, frame.type, t.text, null, true, null, asString(entry.item['id']), null), (c, v) =>
          this.#late(c, v, t.source, frame.type, null),
        );
        if (p) pending.push(p);
        texts.push({ t, e });
      }
      evaluations.push({ entry, texts });
    }
    const finish = (): Verdict => {
      let copy: JsonObject | null = null;
      const all = new Evaluation('');
      for (const { entry, texts } of evaluations) {
        let itemCopy: JsonObject | null = null;
        for (const { t, e } of texts) {
          all.findings.push(...e.findings);
          if (e.redacted) {
            itemCopy ??= structuredClone(entry.item);
            t.set(itemCopy, e.text);
          }
        }
        if (itemCopy) {
          copy ??= { ...ev };
          entry.set(copy, itemCopy);
        }
      }
      const action = all.strongest;
      if (action === null && copy === null) return CONTINUE;
      const source = evaluations.flatMap((x) => x.texts).find((x) => x.e.findings.length > 0)?.t.source ?? 'input';
      let verdict: Verdict;
      const details = this.#details(policy, all.findings);
      switch (action) {
        case 'end_session':
          verdict = closeWith(new ProxyError('policy_violation', { eventId: clientEventId(ev), details }));
          break;
        case 'cancel_response':
          this.#cancelActive('cancel_response', all.findings[0]?.id ?? '');
          verdict = reject(new ProxyError('guardrail_blocked', { eventId: clientEventId(ev), details }));
          break;
        case 'block':
          verdict = reject(new ProxyError('guardrail_blocked', { eventId: clientEventId(ev), details }));
          break;
        default:
          if (copy) {
            verdict = replace(toFrame(copy));
            notifyClient(this.#ctx, new ProxyError('guardrail_redacted', { eventId: clientEventId(ev), details }), GUARDRAILS_FILTER);
          } else verdict = CONTINUE;
      }
      this.#reportAll(policy, all.findings, source, frame.type, null, t0);
      return verdict;
    };
    if (pending.length > 0) return Promise.all(pending).then(finish);
    return finish();
  }

  // ---- upstream → client -------------------------------------------------------------------

  onServer(frame: Frame): Verdict | Promise<Verdict> {
    switch (frame.type) {
      case OUT_TRANSCRIPT_DELTA:
      case OUT_TEXT_DELTA:
        return this.#outputDelta(frame);
      case OUT_TRANSCRIPT_DONE:
        return this.#outputDone(frame, 'transcript');
      case OUT_TEXT_DONE:
        return this.#outputDone(frame, 'text');
      case IN_DELTA:
        return this.#inputDelta(frame);
      case IN_DONE:
        return this.#inputDone(frame);
      case TOOL_DONE:
        return this.#toolCall(frame);
      case 'response.created':
        return this.#responseCreated(frame);
      case 'response.done':
        return this.#responseDone(frame);
      default:
        return this.#redactItemEvent(frame);
    }
  }

  #responseCreated(frame: Frame): Verdict {
    const id = asString(asObject(frame.json()['response'])?.['id']);
    if (id === null) return CONTINUE;
    this.#active.add(id);
    if (this.#cancelNext) {
      const { action, ruleId } = this.#cancelNext;
      this.#cancelNext = null;
      this.#cancel(id, action, ruleId);
    }
    return CONTINUE;
  }

  #responseDone(frame: Frame): Verdict {
    const ev = frame.json();
    const response = asObject(ev['response']);
    const id = asString(response?.['id']);
    if (id === null) return CONTINUE;
    this.#active.delete(id);
    for (const [key, s] of this.#streams) if (s.responseId === id) this.#streams.delete(key);
    const toDelete = this.#deleteOnDone.get(id);
    if (toDelete) {
      this.#deleteOnDone.delete(id);
      for (const itemId of toDelete) this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: itemId } as { type: string }, GUARDRAILS_FILTER);
    }
    const output = asArray(response?.['output']);
    if (!output || this.#ctx.isSuppressed(id)) return CONTINUE;
    let changed = false;
    const items = output.map((o) => {
      const item = asObject(o);
      const r = item ? this.#redactItem(item, frame.type) : null;
      if (r) changed = true;
      return r ?? o;
    });
    if (!changed) return CONTINUE;
    return replace(toFrame({ ...ev, response: { ...response, output: items } }));
  }

  /** Redaction of complete model texts repeated in item events (rules already reported on `.done`). */
  #redactItemEvent(frame: Frame): Verdict {
    const policy = this.#policy;
    if (policy.rules.length === 0) return CONTINUE;
    const ev = frame.json();
    if (frame.type === 'response.content_part.done') {
      const part = asObject(ev['part']);
      const key = typeof part?.['transcript'] === 'string' ? 'transcript' : typeof part?.['text'] === 'string' ? 'text' : null;
      if (!part || !key) return CONTINUE;
      const rules = redactRules(policy, 'output', frame.type);
      if (rules.length === 0) return CONTINUE;
      const r = scanText(rules, part[key] as string, policy.windowChars, policy.maxInputChars);
      return r.redacted ? replace(toFrame({ ...ev, part: { ...part, [key]: r.text } })) : CONTINUE;
    }
    const item = asObject(ev['item']);
    if (!item) return CONTINUE;
    const redacted = this.#redactItem(item, frame.type);
    return redacted ? replace(toFrame({ ...ev, item: redacted })) : CONTINUE;
  }

  /** A model-produced item with redaction rules applied, or null when nothing changed. */
  #redactItem(item: JsonObject, eventType: string): JsonObject | null {
    const policy = this.#policy;
    if (item['type'] === 'function_call') {
      const args = asString(item['arguments']);
      const rules = redactRules(policy, 'tool_call', eventType);
      if (args === null || rules.length === 0) return null;
      const r = scanText(rules, args, policy.windowChars, policy.maxInputChars);
      return r.redacted ? { ...item, arguments: r.text } : null;
    }
    if (item['type'] !== 'message' || item['role'] !== 'assistant') return null;
    const rules = redactRules(policy, 'output', eventType);
    const content = asArray(item['content']);
    if (rules.length === 0 || !content) return null;
    let changed = false;
    const parts = content.map((p) => {
      const part = asObject(p);
      if (!part) return p;
      let out = part;
      for (const key of ['text', 'transcript'] as const) {
        const text = asString(part[key]);
        if (text === null) continue;
        const r = scanText(rules, text, policy.windowChars, policy.maxInputChars);
        if (r.redacted) {
          out = { ...out, [key]: r.text };
          changed = true;
        }
      }
      return out;
    });
    return changed ? { ...item, content: parts } : null;
  }

  #stream(key: string, source: Source, eventType: string, responseId: string | null, itemId: string): Stream | null {
    let s = this.#streams.get(key);
    if (s) return s;
    const policy = this.#policy;
    const rules = rulesFor(policy, source, eventType);
    const customs = (policy.customBySource.get(source) ?? []).filter((c) => c.streaming);
    if (rules.length === 0 && customs.length === 0) return null;
    s = { source, policy, scanner: new TextScanner(rules, policy.windowChars), customs, responseId, itemId };
    this.#streams.set(key, s);
    return s;
  }

  #outputDelta(frame: Frame): Verdict | Promise<Verdict> {
    const policy = this.#policy;
    if (!policy.rulesBySource.has('output') && !policy.customBySource.has('output')) return CONTINUE;
    const t0 = this.#ctx.clock.now();
    // Transcript deltas are small: one parse is cheaper than three top-level sniffs.
    const ev = frame.json();
    const responseId = asString(ev['response_id']) ?? '';
    const itemId = asString(ev['item_id']) ?? '';
    const stream = this.#stream(`o\u0000${responseId}\u0000${itemId}`, 'output', frame.type, responseId, itemId);
    if (!stream) return CONTINUE;
    const delta = asString(ev['delta']) ?? '';
    const r = stream.scanner.push(delta);
    if (r.hits.length === 0 && !r.redacted && stream.customs.length === 0) return CONTINUE;
    const e = new Evaluation(r.text);
    e.redacted = r.redacted;
    e.addHits(r.hits);
    const event = stream.customs.length > 0 ? this.#event('output', frame.type, stream.scanner.recent, delta, false, responseId, itemId, null) : null;
    const pending = event ? this.#runCustoms(stream.policy, 'output', e, event, (c, v) => this.#late(c, v, 'output', frame.type, responseId), stream.customs) : null;
    const finish = (): Verdict => this.#applyOutput(frame, e, stream.policy, 'output', responseId, t0, 'delta');
    return pending ? pending.then(finish) : finish();
  }

  #outputDone(frame: Frame, key: 'transcript' | 'text'): Verdict | Promise<Verdict> {
    const policy = this.#policy;
    if (policy.rules.length === 0 && policy.custom.length === 0) return CONTINUE;
    const t0 = this.#ctx.clock.now();
    const ev = frame.json();
    const responseId = asString(ev['response_id']) ?? '';
    const itemId = asString(ev['item_id']) ?? '';
    const text = asString(ev[key]) ?? '';
    const stream = this.#streams.get(`o\u0000${responseId}\u0000${itemId}`) ?? null;
    const e = this.#scanFinal(stream?.policy ?? policy, 'output', frame.type, text, stream, null);
    const pending = this.#runCustoms(stream?.policy ?? policy, 'output', e, this.#event('output', frame.type, text, null, true, responseId, itemId, null), (c, v) =>
      this.#late(c, v, 'output', frame.type, responseId),
    );
    const finish = (): Verdict => this.#applyOutput(frame, e, stream?.policy ?? policy, 'output', responseId, t0, key);
    return pending ? pending.then(finish) : finish();
  }

  #toolCall(frame: Frame): Verdict | Promise<Verdict> {
    const policy = this.#policy;
    if (!policy.rulesBySource.has('tool_call') && !policy.customBySource.has('tool_call')) return CONTINUE;
    const t0 = this.#ctx.clock.now();
    const ev = frame.json();
    const responseId = asString(ev['response_id']) ?? '';
    const itemId = asString(ev['item_id']) ?? '';
    const name = asString(ev['name']) ?? '';
    const args = asString(ev['arguments']) ?? '';
    const e = this.#scanFinal(policy, 'tool_call', frame.type, args, null, name);
    const pending = this.#runCustoms(policy, 'tool_call', e, this.#event('tool_call', frame.type, args, null, true, responseId, itemId, name), (c, v) =>
      this.#late(c, v, 'tool_call', frame.type, responseId),
    );
    const finish = (): Verdict => {
      const action = e.strongest;
      if (action === 'block' || action === 'cancel_response') {
        let list = this.#deleteOnDone.get(responseId);
        if (!list) this.#deleteOnDone.set(responseId, (list = []));
        if (itemId) list.push(itemId);
      }
      return this.#applyOutput(frame, e, policy, 'tool_call', responseId, t0, 'arguments');
    };
    return pending ? pending.then(finish) : finish();
  }

  /** Verdict for a model event (output text or function call): cancel the response, close, or rewrite. */
  #applyOutput(frame: Frame, e: Evaluation, policy: CompiledPolicy, source: Source, responseId: string, t0: number, key: string): Verdict {
    const action = e.strongest;
    if (action === null && !e.redacted) return CONTINUE;
    let verdict: Verdict = CONTINUE;
    const details = this.#details(policy, e.findings);
    if (action === 'end_session') {
      verdict = closeWith(new ProxyError('policy_violation', { details }));
    } else if (action === 'cancel_response' || action === 'block') {
      // On model output, blocking means stopping the response: the relay then withholds the rest of it.
      if (responseId) this.#ctx.cancelResponse(responseId, GUARDRAILS_FILTER, this.#notice(action, details));
      verdict = DROP;
    } else if (e.redacted) {
      verdict = replace(toFrame({ ...frame.json(), [key]: e.text }));
    }
    this.#reportAll(policy, e.findings, source, frame.type, responseId || null, t0);
    return verdict;
  }

  #inputDelta(frame: Frame): Verdict | Promise<Verdict> {
    const policy = this.#policy;
    const ev = frame.json();
    const itemId = asString(ev['item_id']) ?? '';
    if (this.#blockedItems.has(itemId)) return DROP;
    if (!policy.rulesBySource.has('input') && !policy.customBySource.has('input')) return CONTINUE;
    const t0 = this.#ctx.clock.now();
    const stream = this.#stream(`i\u0000${itemId}`, 'input', frame.type, null, itemId);
    if (!stream) return CONTINUE;
    const delta = asString(ev['delta']) ?? '';
    const r = stream.scanner.push(delta);
    if (r.hits.length === 0 && !r.redacted && stream.customs.length === 0) return CONTINUE;
    const e = new Evaluation(r.text);
    e.redacted = r.redacted;
    e.addHits(r.hits);
    const event = stream.customs.length > 0 ? this.#event('input', frame.type, stream.scanner.recent, delta, false, null, itemId, null) : null;
    const pending = event ? this.#runCustoms(stream.policy, 'input', e, event, (c, v) => this.#late(c, v, 'input', frame.type, null, itemId), stream.customs) : null;
    const finish = (): Verdict => this.#applyInput(frame, e, stream.policy, itemId, t0, 'delta');
    return pending ? pending.then(finish) : finish();
  }

  #inputDone(frame: Frame): Verdict | Promise<Verdict> {
    const policy = this.#policy;
    const ev = frame.json();
    const itemId = asString(ev['item_id']) ?? '';
    const stream = this.#streams.get(`i\u0000${itemId}`) ?? null;
    this.#streams.delete(`i\u0000${itemId}`);
    if (this.#blockedItems.has(itemId)) {
      this.#blockedItems.delete(itemId);
      return DROP;
    }
    if (!policy.rulesBySource.has('input') && !policy.customBySource.has('input')) return CONTINUE;
    const t0 = this.#ctx.clock.now();
    const transcript = asString(ev['transcript']) ?? '';
    const e = this.#scanFinal(stream?.policy ?? policy, 'input', frame.type, transcript, stream, null);
    const pending = this.#runCustoms(stream?.policy ?? policy, 'input', e, this.#event('input', frame.type, transcript, null, true, null, itemId, null), (c, v) =>
      this.#late(c, v, 'input', frame.type, null, itemId),
    );
    const finish = (): Verdict => this.#applyInput(frame, e, stream?.policy ?? policy, itemId, t0, 'transcript');
    return pending ? pending.then(finish) : finish();
  }

  /**
   * Verdict for an input transcript. The response runs in parallel with transcription (no turn
   * waits for it); when the transcript trips `block` or `cancel_response`, the response already
   * started from that speech is cancelled (or the next one, if it has not started yet). `block`
   * also deletes the user item upstream so later turns do not see it.
   */
  #applyInput(frame: Frame, e: Evaluation, policy: CompiledPolicy, itemId: string, t0: number, key: string): Verdict {
    const action = e.strongest;
    if (action === null && !e.redacted) return CONTINUE;
    let verdict: Verdict = CONTINUE;
    const details = this.#details(policy, e.findings);
    const ruleId = e.findings.find((f) => f.action === action)?.id ?? '';
    if (action === 'end_session') {
      verdict = closeWith(new ProxyError('policy_violation', { details }));
    } else if (action === 'block') {
      this.#blockedItems.add(itemId);
      if (itemId) this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: itemId } as { type: string }, GUARDRAILS_FILTER);
      if (!this.#cancelActive('block', ruleId)) notifyClient(this.#ctx, new ProxyError('guardrail_blocked', { details }), GUARDRAILS_FILTER);
      if (key === 'transcript') this.#blockedItems.delete(itemId);
      verdict = DROP;
    } else {
      if (action === 'cancel_response') this.#cancelActive('cancel_response', ruleId);
      if (e.redacted) verdict = replace(toFrame({ ...frame.json(), [key]: e.text }));
    }
    this.#reportAll(policy, e.findings, 'input', frame.type, null, t0);
    return verdict;
  }

  /** Cancels every response in flight (or arms a cancel for the next one); true when one was cancelled. */
  #cancelActive(action: Action, ruleId: string): boolean {
    if (this.#active.size === 0) {
      this.#cancelNext = { action, ruleId };
      return false;
    }
    for (const id of this.#active) this.#cancel(id, action, ruleId);
    return true;
  }

  #cancel(responseId: string, action: Action, ruleId: string): void {
    const policy = this.#policy;
    this.#ctx.cancelResponse(responseId, GUARDRAILS_FILTER, this.#notice(action, { policy: policy.name, policyVersion: policy.version, rule: ruleId, action }));
  }

  #notice(action: Action, details: Readonly<Record<string, string | number | boolean | null>>): ProxyError {
    return action === 'block' ? new ProxyError('guardrail_blocked', { details }) : new ProxyError('response_cancelled_by_policy', { details });
  }

  /** Full-text scan; with `stream`, rules the stream already reported are not reported again. */
  #scanFinal(policy: CompiledPolicy, source: Source, eventType: string, text: string, stream: Stream | null, functionName: string | null): Evaluation {
    const rules = rulesFor(policy, source, eventType);
    const e = new Evaluation(text);
    if (text.length > policy.maxScanChars && (rules.length > 0 || (policy.customBySource.get(source)?.length ?? 0) > 0)) {
      // One event may not hold the event loop (and every other tenant) for a scan of unbounded length.
      e.findings.push({ id: SCAN_LIMIT_RULE, action: policy.overScanLimit === 'block' ? 'block' : 'log', label: 'scan_limit', excerpt: null });
      return e;
    }
    if (rules.length === 0) return e;
    const r = scanText(rules, text, policy.windowChars, policy.maxInputChars);
    e.text = r.text;
    e.redacted = r.redacted;
    const fresh = stream ? r.hits.filter((h) => !stream.scanner.hasTripped(h.rule)) : r.hits;
    e.addHits(fresh);
    if (functionName !== null) {
      for (const rule of rules) {
        if (rule.functionName && rule.functionName(functionName) && !fresh.some((h) => h.rule === rule)) {
          e.findings.push({ id: rule.id, action: rule.action, label: 'function', excerpt: rule.logMatches ? functionName : null });
        }
      }
    }
    return e;
  }

  #event(source: Source, eventType: string, text: string, delta: string | null, final: boolean, responseId: string | null, itemId: string | null, functionName: string | null): GuardrailEvent {
    return { source, eventType, text, delta, final, responseId, itemId, functionName };
  }

  /**
   * Runs the custom guardrails for a source. Synchronous verdicts are merged into `e` at once;
   * `blocking` ones make the returned Promise (the caller pauses its direction on it); `parallel`
   * ones (and Promises from `sync` guardrails) are applied late via `late`.
   */
  #runCustoms(
    policy: CompiledPolicy,
    source: Source,
    e: Evaluation,
    event: GuardrailEvent,
    late: (c: CompiledCustom, v: CustomVerdict) => void,
    only?: readonly CompiledCustom[],
  ): Promise<void> | null {
    const customs = only ?? (policy.customBySource.get(source) ?? []).filter((c) => event.final || c.streaming);
    // Over the scan limit custom code does not run either (the scan_limit finding decides).
    if (customs.length === 0 || event.text.length > policy.maxScanChars) return null;
    const waits: Promise<void>[] = [];
    for (const c of customs) {
      let state = this.#customState.get(c.id);
      if (!state) this.#customState.set(c.id, (state = new Map()));
      const v = runCustom(c, event, this.#info, state);
      if (!isThenable(v)) {
        e.addCustom(c, v);
        continue;
      }
      if (c.mode === 'blocking') {
        waits.push(v.then((verdict) => e.addCustom(c, verdict)));
      } else {
        if (c.mode === 'sync') this.#ctx.log.warn({ guardrail: c.id }, 'sync custom guardrail returned a Promise: applying its verdict late (set mode: blocking or parallel)');
        void v.then((verdict) => late(c, verdict));
      }
    }
    return waits.length > 0 ? Promise.all(waits).then(() => undefined) : null;
  }

  /** A verdict that arrived after its frame went on: only stopping the response or the session still helps. */
  #late(c: CompiledCustom, v: CustomVerdict, source: Source, eventType: string, responseId: string | null, itemId?: string): void {
    if (this.#closed || v.action === 'allow') return;
    const t0 = this.#ctx.clock.now();
    const policy = this.#policy;
    let applied: Action = 'log';
    const details = { policy: policy.name, policyVersion: policy.version, rule: c.id, action: v.action };
    if (v.action === 'end_session') {
      this.#ctx.close(new ProxyError('policy_violation', { details }));
      applied = 'end_session';
    } else if (v.action === 'block' || v.action === 'cancel_response') {
      applied = v.action;
      if (source === 'input' && itemId) {
        if (v.action === 'block') this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: itemId } as { type: string }, GUARDRAILS_FILTER);
        this.#cancelActive(v.action, c.id);
      } else if (responseId && this.#active.has(responseId)) {
        this.#ctx.cancelResponse(responseId, GUARDRAILS_FILTER, this.#notice(v.action, details));
      } else if (source !== 'output' && source !== 'tool_call') {
        this.#cancelActive(v.action, c.id);
      } else {
        applied = 'log';
      }
    }
    this.#reportAll(policy, [{ id: c.id, action: applied, label: `custom:${v.via}:late`, excerpt: null }], source, eventType, responseId, t0);
  }

  #details(policy: CompiledPolicy, findings: readonly Finding[]): Record<string, string | number | boolean | null> {
    let top: Finding | null = null;
    for (const f of findings) if (top === null || ACTION_RANK[f.action] > ACTION_RANK[top.action]) top = f;
    return { policy: policy.name, policyVersion: policy.version, rule: top?.id ?? null, action: top?.action ?? null };
  }

  #reportAll(policy: CompiledPolicy, findings: readonly Finding[], source: Source, eventType: string, responseId: string | null, t0: number): void {
    if (findings.length === 0) return;
    const decisionMs = this.#ctx.clock.now() - t0;
    for (const f of findings) {
      this.#trips++;
      this.#ctx.report({
        kind: 'guardrail',
        policyId: policy.name,
        policyVersion: policy.version,
        ruleId: f.id,
        action: f.action,
        source: REPORT_SOURCE[source],
        responseId,
        decisionMs,
      });
      this.#ctx.log.info(
        {
          policy: policy.name,
          policyVersion: policy.version,
          rule: f.id,
          action: f.action,
          source,
          eventType,
          matcher: f.label,
          responseId,
          decisionMs: Math.round(decisionMs * 1000) / 1000,
          ...(f.excerpt !== null ? { match: f.excerpt } : {}),
        },
        'guardrail tripped',
      );
    }
  }

  onClose(): void {
    this.#closed = true;
    this.#streams.clear();
    this.#customState.clear();
  }

  summary(): Readonly<Record<string, string | number | boolean | null>> {
    return { policy: this.#entry.name, policyVersion: this.#entry.current.version, guardrailTrips: this.#trips };
  }
}
