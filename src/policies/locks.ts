import { CONTINUE, DROP, reject, replace, type Admission, type AdmissionRequest, type Filter, type FilterFactory, type SessionContext, type Verdict } from '../pipeline/filter.js';
import { Frame, type JsonObject } from '../pipeline/frame.js';
import { isTranscriptionIntent, isTranslationSession, type ClientEventOf } from '../protocol/events.js';
import { ProxyError } from '../protocol/errors.js';
import { nameMatcher, type CompiledPolicy } from './compile.js';
import type { PolicyRegistry } from './registry.js';
import type { PolicyLocks, UpstreamTruncation } from './schema.js';
import { asArray, asObject, asString } from '../protocol/json.js';
import { applySessionUpdate } from '../protocol/session-update.js';
import { clientEventId, deepEqual, notifyClient, toFrame } from './util.js';
import { LazyMap, LazySet } from '../lazy-collections.js';

export const LOCKS_FILTER = 'policies.locks';

/** A call whose locked settings had to be put back this often is ended (the upstream keeps refusing them). */
const MAX_RELOCKS = 16;

type Mode = 'rewrite' | 'reject';

interface Violation {
  /** The lock (instructions, model, voice, output_modalities, tools, tool_choice, image_input, prompt, tracing, truncation, input_transcription). */
  readonly field: string;
  /** Where in the event (e.g. session.audio.output.voice). */
  readonly param: string;
  readonly mode: Mode;
  readonly reason: string;
  /** Filled in without the client asking otherwise (no notice, no report): e.g. create_response left out. */
  readonly silent?: boolean;
}

/** The members besides `server_url` by which an MCP tool names its server (the allowlist is of URLs only). */
const MCP_SERVER_MEMBERS = ['connector_id', 'tunnel_id'] as const;

/** True when `url` is on an allowed MCP server: same origin and under the allowed path. */
export function mcpUrlAllowed(url: string, allowed: readonly string[]): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  return allowed.some((a) => {
    const base = new URL(a);
    if (base.origin !== u.origin) return false;
    const path = base.pathname.endsWith('/') ? base.pathname : `${base.pathname}/`;
    return u.pathname === base.pathname || u.pathname.startsWith(path);
  });
}

/** The model a session should use: itself, its alias target, or null when the policy refuses it. */
export function resolveModel(locks: PolicyLocks, model: string): { model: string; aliased: boolean } | null {
  const lock = locks.model;
  if (!lock) return { model, aliased: false };
  // Own keys only: a client's `?model=constructor` must not find Object.prototype.constructor.
  const alias = Object.prototype.hasOwnProperty.call(lock.aliases, model) ? lock.aliases[model] : undefined;
  if (alias !== undefined) return { model: alias, aliased: true };
  if (!lock.allow || lock.allow.includes(model)) return { model, aliased: false };
  return null;
}

/**
 * Applies the policy's locks to a `session` (session.update / session.created) or `response`
 * (response.create) object in place, recording every violation. Only fields present in `obj`
 * are checked (a partial update leaves the others alone).
 */
export function applyLocks(obj: JsonObject, scope: 'session' | 'response', locks: PolicyLocks, truncation: UpstreamTruncation | undefined, holdSpokenInput = false): Violation[] {
  const v: Violation[] = [];
  const at = (path: string) => `${scope}.${path}`;
  // `obj` is parsed JSON: every member is its own, and none is undefined.
  const has = (k: string) => obj[k] !== undefined;

  const ins = locks.instructions;
  if (ins && has('instructions')) {
    const current = asString(obj['instructions']) ?? '';
    let fixed = current;
    if (ins.locked !== undefined) fixed = ins.locked;
    else {
      if (ins.prefix !== undefined && !fixed.startsWith(ins.prefix)) fixed = ins.prefix + fixed;
      if (ins.suffix !== undefined && !fixed.endsWith(ins.suffix)) fixed = fixed + ins.suffix;
    }
    if (fixed !== current) {
      v.push({ field: 'instructions', param: at('instructions'), mode: ins.onViolation, reason: ins.locked !== undefined ? 'instructions are locked' : 'instructions must keep the required prefix/suffix' });
      obj['instructions'] = fixed;
    }
  }

  if (scope === 'session' && locks.model && has('model')) {
    const model = asString(obj['model']) ?? '';
    const resolved = resolveModel(locks, model);
    // A model that is no name (empty, a number, an object) is shown as JSON, so the message never reads "model  is".
    const shown = model !== '' ? model : String(JSON.stringify(obj['model'])).slice(0, 64);
    if (resolved === null) v.push({ field: 'model', param: at('model'), mode: 'reject', reason: `model ${shown} is not allowed` });
    else if (resolved.aliased) {
      v.push({ field: 'model', param: at('model'), mode: 'rewrite', reason: `model ${model} is replaced by ${resolved.model}` });
      obj['model'] = resolved.model;
    }
  }

  const voiceLock = locks.voice;
  const output = asObject(asObject(obj['audio'])?.['output']);
  // GA: audio.output.voice; the Azure preview protocol's (beta) shape: a flat `voice` (found 2026-12-05: not read).
  for (const [owner, path] of [
    [output, 'audio.output.voice'],
    [obj, 'voice'],
  ] as const) {
    const voice = owner?.['voice'];
    if (voiceLock && owner && voice !== undefined && !(voiceLock.allow as readonly unknown[]).includes(voice)) {
      v.push({ field: 'voice', param: at(path), mode: voiceLock.onViolation, reason: `voice ${String(typeof voice === 'string' ? voice : 'custom')} is not allowed` });
      owner['voice'] = voiceLock.default ?? voiceLock.allow[0]!;
    }
  }

  const modalities = locks.outputModalities;
  if (modalities && has('output_modalities')) {
    const current = (asArray(obj['output_modalities']) ?? []).filter((m): m is string => typeof m === 'string');
    const ok = modalities.allow.some((set) => set.length === current.length && set.every((m) => current.includes(m)));
    if (!ok) {
      v.push({ field: 'output_modalities', param: at('output_modalities'), mode: modalities.onViolation, reason: `output_modalities [${current.join(',')}] is not allowed` });
      obj['output_modalities'] = [...modalities.allow[0]!];
    }
  }
  // The beta shape's `modalities`: ["audio", "text"] is GA's ["audio"] (audio with its transcript), ["text"] is ["text"].
  if (modalities && has('modalities')) {
    const listed = (asArray(obj['modalities']) ?? []).filter((m): m is string => typeof m === 'string');
    const current = listed.includes('audio') ? ['audio'] : listed;
    const ok = listed.length === (asArray(obj['modalities'])?.length ?? -1) && modalities.allow.some((set) => set.length === current.length && set.every((m) => current.includes(m)));
    if (!ok) {
      v.push({ field: 'output_modalities', param: at('modalities'), mode: modalities.onViolation, reason: `modalities [${listed.join(',')}] is not allowed` });
      const allowed = modalities.allow[0]!;
      obj['modalities'] = allowed.includes('audio') ? ['audio', 'text'] : [...allowed];
    }
  }

  const tools = locks.tools;
  // Only a list can be filtered (anything else is the upstream's to refuse).
  const listed = asArray(obj['tools']);
  if (tools && listed) {
    const allowedFn = nameMatcher(tools.functions);
    const kept: unknown[] = [];
    for (const raw of listed) {
      const t = asObject(raw);
      if (!t) continue;
      if (t['type'] === 'function') {
        const name = asString(t['name']) ?? '';
        if (allowedFn(name)) kept.push(t);
        else v.push({ field: 'tools', param: at('tools'), mode: tools.onViolation, reason: `function ${name} is not allowed` });
      } else if (t['type'] === 'mcp') {
        const url = asString(t['server_url']);
        // The server is named by `server_url`, `connector_id` or `tunnel_id`: the allowlist is of
        // URLs, so a tool naming its server any other way (even beside an allowed URL, where the
        // upstream picks which one it connects to) is refused like a server not on the list.
        const other = MCP_SERVER_MEMBERS.find((m) => t[m] !== undefined && t[m] !== null);
        if (url === null || other !== undefined || !mcpUrlAllowed(url, tools.mcpServerUrls)) {
          const value = other !== undefined ? (typeof t[other] === 'string' ? (t[other] as string) : JSON.stringify(t[other])) : null;
          const named = value === null ? (url ?? '(none)') : url === null ? value : `${url} with ${other} ${value}`;
          v.push({ field: 'tools', param: at('tools'), mode: tools.onViolation, reason: `MCP server ${named} is not allowed` });
          continue;
        }
        // The upstream gets the URL as the allowlist read it (its WHATWG serialization), not as the
        // client wrote it: parsers differ, and `https://allowed.example\@evil.example/` is host
        // allowed.example here but evil.example to an RFC 3986 reader (Python's urlsplit). Until the
        // fifteenth red-team pass it was forwarded as written (test/governance/redteam-15-mcp-url.test.ts).
        const canonical = new URL(url).href;
        let tool = t;
        if (canonical !== url) {
          v.push({ field: 'tools', param: at('tools'), mode: 'rewrite', reason: `MCP server_url is forwarded as ${canonical}` });
          tool = { ...t, server_url: canonical };
        }
        if (tools.requireApproval !== 'client' && tool['require_approval'] !== tools.requireApproval) {
          v.push({ field: 'tools', param: at('tools'), mode: 'rewrite', reason: `MCP require_approval is forced to ${tools.requireApproval}` });
          kept.push({ ...tool, require_approval: tools.requireApproval });
        } else kept.push(tool);
      } else {
        v.push({ field: 'tools', param: at('tools'), mode: tools.onViolation, reason: `tool type ${String(t['type'])} is not allowed` });
      }
    }
    obj['tools'] = kept;
  }

  const choice = locks.toolChoice;
  if (has('tool_choice')) {
    const tc = obj['tool_choice'];
    const kind = typeof tc === 'string' ? tc : asString(asObject(tc)?.['type']) ?? 'unknown';
    let reason: string | null = null;
    if (choice && !(choice.allow as readonly string[]).includes(kind)) reason = `tool_choice ${kind} is not allowed`;
    else if (tools && kind === 'function') {
      const name = asString(asObject(tc)?.['name']) ?? '';
      if (!nameMatcher(tools.functions)(name)) reason = `tool_choice forces function ${name}, which is not allowed`;
    }
    if (reason) {
      v.push({ field: 'tool_choice', param: at('tool_choice'), mode: choice?.onViolation ?? tools!.onViolation, reason });
      const fallback = choice?.allow.find((a) => a === 'auto' || a === 'none' || a === 'required');
      obj['tool_choice'] = fallback ?? 'auto';
    }
  }

  const prompt = locks.prompt;
  if (prompt && has('prompt')) {
    const p = asObject(obj['prompt']);
    if (!promptAllowed(prompt, p)) {
      const want = promptTarget(prompt, p);
      v.push({ field: 'prompt', param: at('prompt'), mode: want ? prompt.onViolation : 'reject', reason: prompt.id !== undefined ? `prompt is pinned to ${prompt.id}` : `prompt ${String(p?.['id'] ?? '(none)')} is not allowed` });
      if (want) obj['prompt'] = want;
    }
  } else if (!prompt && ins && has('prompt') && obj['prompt'] !== null) {
    // A reusable prompt carries its own instructions: without a prompt lock it would walk around the instructions lock.
    v.push({ field: 'instructions', param: at('prompt'), mode: ins.onViolation, reason: 'a reusable prompt sets instructions, which are locked' });
    delete obj['prompt'];
  }

  // Images also reach the model as prompt variables (session.update, response.create, client secrets).
  if (locks.imageInput === false && hasImageVariable(obj['prompt'])) {
    v.push({ field: 'image_input', param: at('prompt.variables'), mode: 'reject', reason: 'image input is not allowed' });
  }

  if (scope === 'response' && ins && ins.systemItems === 'lock') {
    const input = asArray(obj['input']);
    if (input) {
      input.forEach((raw, i) => {
        const item = asObject(raw);
        if (item && isInstructionItem(item)) {
          v.push({ field: 'instructions', param: at(`input[${i}].role`), mode: ins.onViolation, reason: `${String(item['role'])} messages are covered by the instructions lock` });
          item['role'] = 'user';
        }
      });
    }
  }

  if (scope === 'session') {
    const tracing = locks.tracing;
    if (tracing && has('tracing') && !deepEqual(obj['tracing'], tracing.value)) {
      v.push({ field: 'tracing', param: at('tracing'), mode: tracing.onViolation, reason: 'tracing is set by policy' });
      // Tracing cannot be switched off once on: "off" is kept by never sending it.
      if (tracing.value === null) delete obj['tracing'];
      else obj['tracing'] = tracing.value;
    }
    if (truncation !== undefined && has('truncation') && !deepEqual(obj['truncation'], truncation)) {
      v.push({ field: 'truncation', param: at('truncation'), mode: 'rewrite', reason: 'truncation is set by policy' });
      obj['truncation'] = truncation;
    }
    const tr = locks.inputTranscription;
    // The transcript is what input rules read: the whole setting (model, language, prompt, and no
    // keywords or other member: each can steer what it says) is the policy's, not only its being on.
    for (const [owner, key, path] of transcriptionHolders(obj)) {
      if (tr && owner && owner[key] !== undefined && !transcriptionHolds(tr, owner[key])) {
        const reason = owner[key] === null ? 'input transcription is required by policy' : 'input transcription is set by policy (its model, language and prompt, nothing else)';
        v.push({ field: 'input_transcription', param: at(path), mode: 'rewrite', reason });
        owner[key] = forcedTranscription(tr);
      }
    }
    if (holdSpokenInput) v.push(...lockCreateResponse(obj, at));
  }
  return v;
}

/**
 * With held spoken turns (guardrails.holdSpokenInput) the server must never start a response on
 * its own: `turn_detection.create_response` is forced to false wherever a turn_detection object
 * is set (`interrupt_response` stays as the client asked). A left-out create_response would
 * default to true upstream, so it is filled in silently; an explicit true is a violation.
 */
function lockCreateResponse(session: JsonObject, at: (path: string) => string): Violation[] {
  const v: Violation[] = [];
  const input = asObject(asObject(session['audio'])?.['input']);
  // GA puts turn_detection under audio.input; the beta shape had it on the session.
  for (const [owner, path] of [
    [input, 'audio.input.turn_detection'],
    [session, 'turn_detection'],
  ] as const) {
    const td = asObject(owner?.['turn_detection']);
    if (!td || td['create_response'] === false) continue;
    const asked = td['create_response'] !== undefined;
    v.push({
      field: 'turn_detection',
      param: at(`${path}.create_response`),
      mode: 'rewrite',
      reason: 'create_response is off: the proxy creates the response once the spoken turn is checked',
      ...(asked ? {} : { silent: true }),
    });
    td['create_response'] = false;
  }
  return v;
}

type PromptLock = NonNullable<PolicyLocks['prompt']>;

type TranscriptionLock = NonNullable<PolicyLocks['inputTranscription']>;

/** The transcription setting the policy forces on. */
function forcedTranscription(tr: TranscriptionLock): JsonObject {
  return { model: tr.model, ...(tr.language ? { language: tr.language } : {}), ...(tr.prompt ? { prompt: tr.prompt } : {}) };
}

/**
 * The members of a transcription setting that decide what the transcript says. A session the
 * upstream shows may carry its own defaults for others (a `delay`, a member a later API adds): they
 * are not compared there, else a lock the upstream echoes with a default would be re-sent at every
 * `session.updated` until the session ends. A client's own update is compared whole (`applyLocks`).
 */
const TRANSCRIPT_STEERING = new Set(['model', 'language', 'languages', 'prompt', 'keywords']);

/**
 * Where a session holds its input transcription setting, with the member's path: GA
 * `audio.input.transcription` and the beta shape `input_audio_transcription` (found 2026-12-05: not
 * read). The holder is null when the session has no `audio.input`.
 */
function transcriptionHolders(session: JsonObject): readonly (readonly [JsonObject | null, string, string])[] {
  return [
    [asObject(asObject(session['audio'])?.['input']), 'transcription', 'audio.input.transcription'],
    [session, 'input_audio_transcription', 'input_audio_transcription'],
  ];
}

/** A copy of `shown` (a session as the upstream shows it) with the non-steering members of its transcription setting left out. */
function withoutEchoedDefaults(shown: JsonObject): JsonObject {
  const session = structuredClone(shown);
  for (const [owner, key] of transcriptionHolders(session)) {
    const t = owner ? asObject(owner[key]) : null;
    if (t) for (const member of Object.keys(t)) if (!TRANSCRIPT_STEERING.has(member)) delete t[member];
  }
  return session;
}

/** A transcription member that sets nothing: absent, null, "" or [] (as the API echoes a member never set). */
const setsNothing = (v: unknown): boolean => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);

/**
 * Whether a transcription setting is the locked one, compared as a whole object: every member the
 * lock sets is equal, and every other member (`keywords`, `languages`, `delay`, one the API adds
 * later: each steers or shapes the transcript input rules read) sets nothing. Until 2026-12-06 only
 * model, language and prompt were compared, and `keywords` beside them passed unlocked.
 */
function transcriptionHolds(tr: TranscriptionLock, setting: unknown): boolean {
  const t = asObject(setting);
  if (t === null) return false;
  const want = forcedTranscription(tr);
  for (const key of new Set([...Object.keys(t), ...Object.keys(want)])) {
    const [a, b] = [t[key], want[key]];
    if (!(setsNothing(a) && setsNothing(b)) && !deepEqual(a, b)) return false;
  }
  return true;
}

/** Whether the reusable prompt `p` (null: none) is allowed by the lock. */
function promptAllowed(lock: PromptLock, p: JsonObject | null): boolean {
  if (!p) return lock.id === undefined;
  const id = p['id'];
  const version = p['version'];
  if (lock.id !== undefined && id === lock.id && (lock.version === undefined || version === lock.version)) return true;
  return (lock.allow ?? []).some((a) => a.id === id && (a.versions === undefined || (a.versions as readonly unknown[]).includes(version)));
}

/**
 * What a disallowed prompt `p` is rewritten to: the pinned id and version with the client's other
 * members (variables), or null when there is no single right answer (refuse). The client's
 * `version` is one of its own prompt: without a pinned version the pinned prompt runs at its latest.
 */
function promptTarget(lock: PromptLock, p: JsonObject | null): JsonObject | null {
  if (lock.id === undefined) return null;
  const { version: _clientVersion, ...rest } = p ?? {};
  return { ...rest, id: lock.id, ...(lock.version !== undefined ? { version: lock.version } : {}) };
}

/**
 * A session.created of the Azure preview protocol (beta shape: no `type`, a `realtime.session`
 * object or flat `modalities`). GA sessions always carry their type (realtime, transcription).
 */
function isPreviewSession(session: JsonObject): boolean {
  return session['type'] === undefined && (session['object'] === 'realtime.session' || session['modalities'] !== undefined);
}

/** A message with a system or developer role: it instructs the model like `instructions` do. */
function isInstructionItem(item: JsonObject): boolean {
  const role = item['role'];
  return role === 'system' || role === 'developer';
}

/** An item with an input_image part (whatever its type: only messages carry content, the upstream refuses the rest). */
function hasImage(item: JsonObject | null): boolean {
  return asArray(item?.['content'])?.some((p) => asObject(p)?.['type'] === 'input_image') === true;
}

/** The policy sets session state the lock filter holds (locks, forced truncation, held spoken turns). */
export function hasLocks(policy: CompiledPolicy): boolean {
  // Compiled locks hold only the locks the policy sets.
  return Object.keys(policy.locks).length > 0 || policy.truncation.upstream !== undefined || policy.holdSpokenInput !== null;
}

/**
 * Why a locked session cannot run on an upstream that speaks the Azure preview protocol: the locked
 * state sent at session start is GA-shaped, which that protocol does not take. Refused at admission
 * (nothing dialled), or ended at its beta-shaped session.created.
 */
export function previewProtocolRefusal(policy: string, atAdmission: boolean): ProxyError {
  const outcome = atAdmission ? 'the session was refused before the upstream was dialled' : 'the session was ended';
  return new ProxyError('governance_failed', {
    message: `The upstream speaks the Azure preview protocol (beta session shape, azure.apiVersion), on which the session locks of policy ${policy} cannot be held at session start; ${outcome}. Use the GA endpoint (leave azure.apiVersion unset).`,
    details: { policy, protocol: 'preview' },
  });
}

export interface LocksFactoryOptions {
  /** The configured upstream speaks the Azure preview protocol (`speaksPreviewProtocol`): locked sessions are refused at admission. */
  readonly previewUpstream?: boolean;
}

export function locksFactory(registry: PolicyRegistry, options: LocksFactoryOptions = {}): FilterFactory {
  return {
    name: LOCKS_FILTER,
    wants: {
      client: ['session.update', 'response.create', 'conversation.item.create'],
      server: ['session.created', 'session.updated', 'conversation.item.added', 'response.output_item.added', 'response.function_call_arguments.done', 'response.done'],
    },
    failMode: 'closed',
    admit(req: AdmissionRequest): Admission {
      const policy = registry.resolve(req.tenant.policy).current;
      // Decided before anything is dialled or sent (until 2026-12-05 only at the upstream's
      // beta-shaped session.created, after the GA-shaped locked state had gone upstream).
      if (options.previewUpstream === true && hasLocks(policy)) return previewProtocolRefusal(policy.name, true);
      if (req.model === '') return null;
      const resolved = resolveModel(policy.locks, req.model);
      if (!resolved) {
        return new ProxyError('model_not_allowed', { message: `Model ${req.model} is not allowed for this tenant.`, details: { model: req.model } });
      }
      // An alias (e.g. a deprecated model → its successor) is dialled as the successor.
      return resolved.aliased ? { model: resolved.model } : null;
    },
    // A translation session has none of the realtime settings locks hold (instructions, tools, voice,
    // turn detection): their locked state would be refused upstream. Its model is still checked above,
    // and its source transcription held on by an inputTranscription lock.
    create: (ctx) => {
      const policy = registry.resolve(ctx.tenant.policy).current;
      if (!isTranslationSession(ctx.query)) return new LockFilter(ctx, policy);
      const tr = policy.locks.inputTranscription;
      return tr ? new TranslationTranscriptionLock(ctx, policy.name, tr.model) : {};
    },
  };
}

/**
 * A translation session under an `inputTranscription` lock: its source-language transcription (the
 * input rules' only reading of what is said) is turned on with the locked model before anything the
 * client sends, and a client's `session.update` that turns it off or names another model is
 * rewritten (`session_locked` notice). A translation transcription takes a model only: the lock's
 * language and prompt have nowhere to go there, and the client cannot steer it either. Until
 * 2026-12-07 no lock applied in translation sessions: transcription stayed off unless the client
 * turned it on (test/relay/redteam-19t-translation.test.ts).
 */
class TranslationTranscriptionLock implements Filter {
  readonly #ctx: SessionContext;
  readonly #policy: string;
  readonly #locked: JsonObject;

  constructor(ctx: SessionContext, policy: string, model: string) {
    this.#ctx = ctx;
    this.#policy = policy;
    this.#locked = { model };
  }

  onStart(): void {
    this.#ctx.sendUpstream({ type: 'session.update', session: { audio: { input: { transcription: { ...this.#locked } } } } } as unknown as ClientEventOf<'session.update'>, LOCKS_FILTER);
  }

  onClient(frame: Frame, injectedBy: string | null = null): Verdict {
    if (injectedBy !== null || frame.type !== 'session.update') return CONTINUE;
    const ev = frame.json();
    const session = asObject(ev['session']);
    const input = asObject(asObject(session?.['audio'])?.['input']);
    // Of another shape: the upstream refuses it, nothing is turned off.
    if (!session || !input || input['transcription'] === undefined || deepEqual(input['transcription'], this.#locked)) return CONTINUE;
    const copy = structuredClone(session);
    asObject(asObject(copy['audio'])!['input'])!['transcription'] = { ...this.#locked };
    this.#ctx.report({ kind: 'lock', field: 'input_transcription', action: 'rewritten', direction: 'client' });
    notifyClient(
      this.#ctx,
      new ProxyError('session_locked', {
        message: 'Locked by policy, rewritten: input transcription is set by policy (its model, nothing else).',
        param: 'session.audio.input.transcription',
        eventId: clientEventId(ev),
        details: { field: 'input_transcription', action: 'rewritten', policy: this.#policy },
      }),
      LOCKS_FILTER,
    );
    return replace(toFrame({ ...ev, session: copy }));
  }
}

/**
 * What the locks assume of a new upstream session before its session.created is read: the API's
 * defaults where a lock compares with them (no instructions, tool_choice auto, no prompt, tracing
 * off, truncation auto, no transcription, server VAD answering every turn). The voice and the
 * output modalities are left to session.created (they govern no content, no cost and no tool; a
 * guess at the API's default voice could only change a voice the policy allows).
 */
export function startingSession(): JsonObject {
  return {
    type: 'realtime',
    instructions: '',
    tool_choice: 'auto',
    prompt: null,
    tracing: null,
    truncation: 'auto',
    audio: { input: { transcription: null, turn_detection: { type: 'server_vad', create_response: true, interrupt_response: true } } },
  };
}

/**
 * The members of `session` the policy's locks change, as a session.update body; null when none.
 * Every lock is applied as a rewrite (whatever its onViolation: nobody asked for these values), the
 * forced transcription and, for held turns, server VAD without create_response filled in.
 */
export function lockedSessionUpdate(session: JsonObject, policy: CompiledPolicy): JsonObject | null {
  const { update } = lockedState(session, policy);
  return Object.keys(update).length === 1 ? null : update;
}

/** `session` with every lock applied (`locked`), and the members that differ as a session.update body (`update`). */
function lockedState(shown: JsonObject, policy: CompiledPolicy): { locked: JsonObject; update: JsonObject } {
  const hold = policy.holdSpokenInput !== null;
  // What the upstream shows, without the defaults it may add to a locked transcription (compared on both sides).
  const session = policy.locks.inputTranscription ? withoutEchoedDefaults(shown) : shown;
  const copy = structuredClone(session);
  applyLocks(copy, 'session', policy.locks, policy.truncation.upstream, hold);
  const tr = policy.locks.inputTranscription;
  // Filled in on the copy's audio.input (a new object when the session has none): only what differs from the session is sent.
  const audioIn = asObject(asObject(copy['audio'])?.['input']) ?? {};
  if (tr && !transcriptionHolds(tr, audioIn['transcription'])) audioIn['transcription'] = forcedTranscription(tr);
  // Not reported: the upstream runs its default, server VAD with create_response on.
  if (hold && audioIn['turn_detection'] === undefined) audioIn['turn_detection'] = { type: 'server_vad', create_response: false };
  const update: JsonObject = { type: 'realtime' };
  for (const key of ['instructions', 'output_modalities', 'tools', 'tool_choice', 'prompt', 'tracing', 'truncation']) {
    if (!deepEqual(copy[key], session[key]) && copy[key] !== undefined) update[key] = copy[key];
  }
  const audioOut = asObject(asObject(copy['audio'])?.['output']);
  const origOut = asObject(asObject(session['audio'])?.['output']);
  const origIn = asObject(asObject(session['audio'])?.['input']);
  const audio: JsonObject = {};
  if (audioOut && audioOut['voice'] !== origOut?.['voice']) audio['output'] = { voice: audioOut['voice'] };
  const input: JsonObject = {};
  // (A client's own turn_detection sent before session.created is in `session` already: not undone.)
  for (const key of ['transcription', 'turn_detection']) {
    if (!deepEqual(audioIn[key], origIn?.[key])) input[key] = audioIn[key];
  }
  if (Object.keys(input).length > 0) audio['input'] = input;
  if (Object.keys(audio).length > 0) update['audio'] = audio;
  return { locked: copy, update };
}

/** A prompt whose variables carry an image. */
function hasImageVariable(prompt: unknown): boolean {
  const vars = asObject(asObject(prompt)?.['variables']);
  return vars !== null && Object.values(vars).some((x) => asObject(x)?.['type'] === 'input_image');
}

/**
 * What a call's reported session (its `session.updated`, after a browser changed it on its data
 * channel) needs to hold the locks: the update to send back, or why it cannot be held. Beyond
 * `lockedSessionUpdate`, it says "remove" where a lock removes a field (a reusable prompt under an
 * instructions lock, or one with an image variable when images are not allowed: `prompt: null`),
 * and names what no update can undo (tracing switched on under a lock that keeps it off: the API
 * does not let it be switched off again).
 */
export function callRelock(session: JsonObject, policy: CompiledPolicy): { update: JsonObject | null; cannot: string | null } {
  const { locked, update } = lockedState(session, policy);
  // A prompt outside a prompt lock's allowlist that pins none has nothing to be rewritten to: it is
  // taken out (until the twenty-third red-team pass (c) it stayed: test/calls/redteam-23c-prompt-allowlist.test.ts).
  const promptLock = policy.locks.prompt;
  const promptRefused = promptLock !== undefined && locked['prompt'] != null && !promptAllowed(promptLock, asObject(locked['prompt']));
  if ((session['prompt'] != null && locked['prompt'] === undefined) || promptRefused || (policy.locks.imageInput === false && hasImageVariable(locked['prompt']))) update['prompt'] = null;
  const cannot = policy.locks.tracing?.value === null && session['tracing'] != null ? 'tracing was switched on, which the policy keeps off (it cannot be switched off once on)' : null;
  return { update: Object.keys(update).length === 1 ? null : update, cannot };
}

/**
 * Session locks: what clients may set in session.update / response.create, the locked state
 * sent before any client event (and what session.created shows still missing), and the
 * function-call allowlist on model output.
 * The policy is the session's snapshot (locks do not change under a live session).
 */
export class LockFilter implements Filter {
  readonly #ctx: SessionContext;
  readonly #policy: CompiledPolicy;
  readonly #active: boolean;
  /** Spoken turns are held (guardrails.holdSpokenInput): create_response stays off. */
  readonly #hold: boolean;
  readonly #allowedFn: ((name: string) => boolean) | null;
  /** Disallowed function-call items to delete upstream once their response is done. */
  readonly #deleteOnDone = new LazyMap<string | null, string[]>();
  #rewrites = 0;
  #rejections = 0;
  /** Locked settings put back after a call's session.updated (bounded: see MAX_RELOCKS). */
  #relocks = 0;
  /**
   * A call's sideband: the labels of the session's MCP servers the tools lock allows, as the
   * upstream last reported the session. A browser's `response.create` (its data channel, unseen)
   * may declare its own MCP servers: the model's calls on any other server are cancelled.
   */
  #callMcpLabels = new LazySet<string>();

  constructor(ctx: SessionContext, policy: CompiledPolicy) {
    this.#ctx = ctx;
    this.#policy = policy;
    this.#active = hasLocks(policy);
    this.#hold = policy.holdSpokenInput !== null;
    this.#allowedFn = policy.locks.tools ? nameMatcher(policy.locks.tools.functions) : null;
  }

  onClient(frame: Frame, injectedBy: string | null = null): Verdict {
    // The proxy's own config (a client secret's, a SIP call's first update, both locked when they
    // were minted or accepted: src/calls/session-config.ts) is no client request to lock.
    if (!this.#active || injectedBy !== null) return CONTINUE;
    const locks = this.#policy.locks;
    const ev = frame.json();
    if (frame.type === 'conversation.item.create') {
      const item = asObject(ev['item']);
      if (locks.imageInput === false && hasImage(item)) return this.#rejectImage(ev, 'item.content');
      const ins = locks.instructions;
      if (!item || !ins || ins.systemItems !== 'lock' || !isInstructionItem(item)) return CONTINUE;
      const violation: Violation = { field: 'instructions', param: 'item.role', mode: ins.onViolation, reason: `${String(item['role'])} messages are covered by the instructions lock` };
      return this.#verdict(frame, ev, [violation], () => ({ ...ev, item: { ...item, role: 'user' } }));
    }
    const scope = frame.type === 'session.update' ? 'session' : 'response';
    const original = asObject(ev[scope]);
    if (!original) return CONTINUE;
    if (scope === 'response' && locks.imageInput === false) {
      if (asArray(original['input'])?.some((i) => hasImage(asObject(i)))) return this.#rejectImage(ev, 'response.input');
    }
    const copy = structuredClone(original);
    const violations = applyLocks(copy, scope, locks, this.#policy.truncation.upstream, this.#hold);
    return violations.length === 0 ? CONTINUE : this.#verdict(frame, ev, violations, () => ({ ...ev, [scope]: copy }));
  }

  /** Refuses the event when a violation asks for it, else forwards the rewritten event with a notice. */
  #verdict(frame: Frame, ev: JsonObject, violations: readonly Violation[], rewritten: () => JsonObject): Verdict {
    // Only defaults filled in: forwarded as governed, nothing to tell.
    if (violations.every((x) => x.silent === true)) return replace(toFrame(rewritten()));
    violations = violations.filter((x) => x.silent !== true);
    // Fails closed: only an explicit rewrite is forwarded.
    const rejected = violations.find((x) => x.mode !== 'rewrite');
    if (rejected) {
      this.#rejections++;
      this.#ctx.report({ kind: 'lock', field: rejected.field, action: 'rejected', direction: 'client' });
      this.#ctx.log.info({ policy: this.#policy.name, field: rejected.field, eventType: frame.type }, 'session lock rejected an event');
      return reject(
        new ProxyError('session_locked', {
          message: `The session setting is locked by policy: ${rejected.reason}.`,
          param: rejected.param,
          eventId: clientEventId(ev),
          details: { field: rejected.field, action: 'rejected', policy: this.#policy.name },
        }),
      );
    }
    const fields = [...new Set(violations.map((x) => x.field))];
    for (const field of fields) this.#ctx.report({ kind: 'lock', field, action: 'rewritten', direction: 'client' });
    this.#rewrites++;
    this.#ctx.log.info({ policy: this.#policy.name, fields, eventType: frame.type }, 'session lock rewrote an event');
    notifyClient(
      this.#ctx,
      new ProxyError('session_locked', {
        message: `Locked by policy, rewritten: ${violations.map((x) => x.reason).join('; ')}.`,
        param: violations[0]!.param,
        eventId: clientEventId(ev),
        details: { field: fields.join(','), action: 'rewritten', policy: this.#policy.name },
      }),
      LOCKS_FILTER,
    );
    return replace(toFrame(rewritten()));
  }

  #rejectImage(ev: JsonObject, param: string): Verdict {
    this.#rejections++;
    this.#ctx.report({ kind: 'lock', field: 'image_input', action: 'rejected', direction: 'client' });
    return reject(
      new ProxyError('session_locked', {
        message: 'Image input is not allowed by policy.',
        param,
        eventId: clientEventId(ev),
        details: { field: 'image_input', action: 'rejected', policy: this.#policy.name },
      }),
    );
  }

  onServer(frame: Frame): Verdict {
    if (!this.#active) return CONTINUE;
    switch (frame.type) {
      case 'session.created': {
        const session = asObject(frame.json()['session']);
        if (session && isPreviewSession(session)) {
          // The Azure preview protocol (azure.apiVersion): the locked state sent at session start
          // is in the GA shape, which this session does not take. Ended rather than run unlocked.
          this.#rejections++;
          this.#ctx.report({ kind: 'lock', field: 'session', action: 'rejected', direction: 'server' });
          this.#ctx.log.warn({ policy: this.#policy.name }, 'upstream speaks the preview protocol: session locks cannot be held; session ended');
          // (A configured preview upstream refuses such sessions at admission; this catches an upstream that answers in the beta shape all the same.)
          this.#ctx.close(previewProtocolRefusal(this.#policy.name, false));
          return DROP;
        }
        if (session?.['type'] !== 'realtime') return CONTINUE;
        if (this.#ctx.callId) this.#noteCallMcpServers(session);
        // What went upstream before it (the view's updatesBeforeCreated) is read next by the upstream.
        const before = this.#ctx.conversation.updatesBeforeCreated;
        const shown = before ? applySessionUpdate(session, before) : session;
        // A call taken over shows what it became while nobody governed it: relocked as a
        // session.updated is (what a lock removes taken out; what no update can undo ends it). Until
        // the twenty-third red-team pass (c) only the locked state was sent, and tracing switched on
        // in that gap went on, traced (test/calls/redteam-23c-takeover-gap.test.ts).
        if (this.#ctx.carried?.takenOver === true) {
          const { update, cannot } = callRelock(shown, this.#policy);
          if (!this.#cannotHold(cannot) && update) this.#send(update, 'after session.created (a call taken over)');
          return CONTINUE;
        }
        this.#injectLockedState(shown, before ? 'after session.created (beyond what went before it)' : 'after session.created');
        return CONTINUE;
      }
      case 'session.updated':
        // On a call, a browser's session.update travels over its data channel, which the proxy
        // cannot see: the sideband sees only the result, and puts the locked settings back.
        if (this.#ctx.callId) {
          this.#noteCallMcpServers(asObject(frame.json()['session']));
          this.#relock(frame);
        } else if (this.#hold) this.#relockCreateResponse(frame);
        return CONTINUE;
      case 'conversation.item.added':
        // On a call the browser adds items over its data channel, unseen: what a WebSocket client
        // could not add (rewritten or refused there) is taken out of the conversation here.
        if (this.#ctx.callId) this.#checkCallItem(frame);
        return CONTINUE;
      case 'response.output_item.added': {
        if (!this.#allowedFn) return CONTINUE;
        const ev = frame.json();
        const item = asObject(ev['item']);
        if (this.#ctx.callId && (item?.['type'] === 'mcp_call' || item?.['type'] === 'mcp_approval_request')) {
          return this.#checkCallMcp(asString(ev['response_id']) ?? '', asString(item['id']) ?? '', asString(item['server_label']) ?? '');
        }
        if (item?.['type'] !== 'function_call') return CONTINUE;
        return this.#checkCall(asString(ev['response_id']) ?? '', asString(item['id']) ?? '', asString(item['name']) ?? '');
      }
      case 'response.function_call_arguments.done': {
        if (!this.#allowedFn) return CONTINUE;
        const ev = frame.json();
        return this.#checkCall(asString(ev['response_id']) ?? '', asString(ev['item_id']) ?? '', asString(ev['name']) ?? '');
      }
      case 'response.done': {
        // (Parsed already: the conversation view reads every response.done.)
        const id = asString(asObject(frame.json()['response'])?.['id']);
        const items = this.#deleteOnDone.get(id);
        if (!items) return CONTINUE;
        this.#deleteOnDone.delete(id);
        for (const itemId of items) this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: itemId }, LOCKS_FILTER);
        return CONTINUE;
      }
      default:
        return CONTINUE;
    }
  }

  /** A call to a function outside the allowlist: the response is cancelled before the client can run it. */
  #checkCall(responseId: string, itemId: string, name: string): Verdict {
    if (this.#allowedFn!(name)) return CONTINUE;
    return this.#refuseToolCall(responseId, itemId, { function: name }, 'model called a function the policy does not allow; response cancelled', `The model called function ${name}, which the policy does not allow; the response was cancelled.`);
  }

  /**
   * A tool call the tools lock does not allow: the item is deleted once its response is done (also a
   * second call in a response already cancelled, so later turns never see an unanswered call), and
   * the response is cancelled before the client can run it.
   */
  #refuseToolCall(responseId: string, itemId: string, what: Readonly<Record<string, string>>, logMessage: string, message: string): Verdict {
    if (itemId) {
      let list = this.#deleteOnDone.get(responseId);
      if (!list) this.#deleteOnDone.set(responseId, (list = []));
      if (!list.includes(itemId)) list.push(itemId);
    }
    if (this.#ctx.isSuppressed(responseId)) return DROP;
    this.#rejections++;
    this.#ctx.report({ kind: 'lock', field: 'tools', action: 'rejected', direction: 'server' });
    this.#ctx.log.info({ policy: this.#policy.name, ...what, responseId }, logMessage);
    this.#ctx.cancelResponse(responseId, LOCKS_FILTER, new ProxyError('guardrail_blocked', { message, details: { field: 'tools', ...what, policy: this.#policy.name } }));
    return DROP;
  }

  /** The allowed MCP servers of a call's session as reported (see #callMcpLabels); a session without `tools` keeps them. */
  #noteCallMcpServers(session: JsonObject | null): void {
    const tools = session ? asArray(session['tools']) : null;
    const lock = this.#policy.locks.tools;
    if (!tools || !lock) return;
    this.#callMcpLabels = new LazySet();
    for (const raw of tools) {
      const t = asObject(raw);
      if (t?.['type'] !== 'mcp') continue;
      const label = asString(t['server_label']);
      const url = asString(t['server_url']);
      if (label === null || url === null || MCP_SERVER_MEMBERS.some((m) => t[m] !== undefined && t[m] !== null)) continue;
      if (mcpUrlAllowed(url, lock.mcpServerUrls)) this.#callMcpLabels.add(label);
    }
  }

  /**
   * On a call, the model calls (or asks approval for) a tool of an MCP server the session does not
   * have: a browser declared it on its own `response.create`, around the tools lock. Its response is
   * cancelled as for a function outside the allowlist. (Until 2026-12-06 it ran, `require_approval`
   * as the browser set it: test/calls/redteam-15b-mcp-override.test.ts.)
   */
  #checkCallMcp(responseId: string, itemId: string, label: string): Verdict {
    if (this.#callMcpLabels.has(label)) return CONTINUE;
    return this.#refuseToolCall(responseId, itemId, { serverLabel: label.slice(0, 64) }, "call: the model used an MCP server the session does not have (a browser's own tools); response cancelled", 'The model used an MCP server the policy does not allow; the response was cancelled.');
  }


  /**
   * An item on a call that a WebSocket client could not have added: a system or developer message
   * under an instructions lock with `systemItems: lock`, an image when images are not allowed. It is
   * deleted upstream, and a response already running (it may read the item) is cancelled.
   */
  #checkCallItem(frame: Frame): void {
    const item = asObject(frame.json()['item']);
    const itemId = asString(item?.['id']);
    if (!item || !itemId) return;
    const locks = this.#policy.locks;
    const field = locks.instructions?.systemItems === 'lock' && isInstructionItem(item) ? 'instructions' : locks.imageInput === false && hasImage(item) ? 'image_input' : null;
    if (field === null) return;
    this.#rejections++;
    this.#ctx.report({ kind: 'lock', field, action: 'rejected', direction: 'server' });
    this.#ctx.log.info({ policy: this.#policy.name, item: itemId, role: item['role'], field }, 'call: an item the policy does not allow was added over the data channel; deleted');
    this.#ctx.markItem(itemId, { kind: 'blocked', by: LOCKS_FILTER, rule: field });
    this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: itemId }, LOCKS_FILTER);
    this.#ctx.markItem(itemId, { kind: 'deleted', by: LOCKS_FILTER, rule: field });
    const notice = new ProxyError('session_locked', { message: `The item ${itemId} is not allowed by policy (${field}); it was removed.`, details: { field, action: 'rejected', policy: this.#policy.name } });
    for (const id of [...this.#ctx.conversation.activeResponses()]) {
      if (!this.#ctx.isSuppressed(id)) this.#ctx.cancelResponse(id, LOCKS_FILTER, notice);
    }
  }

  #relock(frame: Frame): void {
    if (this.#relocks >= MAX_RELOCKS) return;
    const session = asObject(frame.json()['session']);
    if (session?.['type'] !== 'realtime') return;
    const { update, cannot } = callRelock(session, this.#policy);
    if (this.#cannotHold(cannot) || !update) return;
    this.#send(update, 'after session.updated');
    this.#ctx.report({ kind: 'lock', field: 'session', action: 'rewritten', direction: 'server' });
    if (++this.#relocks === MAX_RELOCKS) {
      // The upstream keeps a setting the policy forbids: the call cannot be governed as configured.
      this.#ctx.close(new ProxyError('governance_failed', { message: 'The call kept changing locked session settings; it was ended.', details: { policy: this.#policy.name } }));
    }
  }

  /** A call's session changed in a way no update can undo (callRelock's `cannot`): ended; false when there is none. */
  #cannotHold(cannot: string | null): boolean {
    if (cannot === null) return false;
    this.#ctx.report({ kind: 'lock', field: 'session', action: 'rejected', direction: 'server' });
    this.#ctx.close(new ProxyError('governance_failed', { message: `The call's session was changed in a way the policy cannot put back: ${cannot}; it was ended.`, details: { policy: this.#policy.name } }));
    return true;
  }

  /**
   * The upstream reports create_response on while turns are held (it did not take the lock, or
   * defaulted a new turn_detection): put it back, bounded like #relock.
   */
  #relockCreateResponse(frame: Frame): void {
    const session = asObject(frame.json()['session']);
    const td = asObject(asObject(asObject(session?.['audio'])?.['input'])?.['turn_detection']);
    if (session?.['type'] !== 'realtime' || !td || td['create_response'] === false) return;
    if (this.#relocks >= MAX_RELOCKS) return;
    this.#ctx.log.warn({ policy: this.#policy.name }, 'upstream reports create_response on while spoken turns are held: locking it off again');
    this.#ctx.report({ kind: 'lock', field: 'turn_detection', action: 'rewritten', direction: 'server' });
    const turnDetection = { ...td, create_response: false };
    this.#ctx.sendUpstream({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: turnDetection } } } as unknown as ClientEventOf<'session.update'>['session'] }, LOCKS_FILTER);
    if (++this.#relocks === MAX_RELOCKS) {
      this.#ctx.close(new ProxyError('governance_failed', { message: 'The upstream kept turning create_response on while spoken turns are held; the session was ended.', details: { policy: this.#policy.name } }));
    }
  }

  /**
   * The locked state, sent before anything the client sends: a client that asks for a response (or
   * speaks into server VAD) before session.created reached the proxy is answered under the locks,
   * not under the upstream's defaults. Computed on the session the upstream starts with as far as
   * the locks need to know it (`startingSession`). A call's sideband skips it: its call was created
   * with a governed config, which those defaults would overwrite; session.created covers it.
   */
  onStart(): void {
    // A transcription session takes no realtime settings: its session.created is checked as before.
    if (!this.#active || this.#ctx.callId || isTranscriptionIntent(this.#ctx.query)) return;
    const update = lockedSessionUpdate(startingSession(), this.#policy);
    if (update) this.#send(update, 'at session start');
  }

  /**
   * What `session` still needs to hold the locks, sent upstream; false when nothing. At
   * session.created it is the session shown with what went upstream before it applied (the locked
   * state, a secret's config, the client's early updates as the whole chain let them through: the
   * conversation view's `updatesBeforeCreated`), so an allowed early choice (a voice) is not undone
   * and an update a later filter refused does not count.
   */
  #injectLockedState(session: JsonObject, when: string): boolean {
    const update = lockedSessionUpdate(session, this.#policy);
    if (!update) return false;
    this.#send(update, when);
    return true;
  }

  #send(update: JsonObject, when: string): void {
    this.#ctx.log.debug({ policy: this.#policy.name, fields: Object.keys(update).filter((k) => k !== 'type'), when }, 'locked session state sent upstream');
    // `update` holds only members the policy validated (copied from a session the locks were applied to).
    this.#ctx.sendUpstream({ type: 'session.update', session: update as unknown as ClientEventOf<'session.update'>['session'] }, LOCKS_FILTER);
  }


  summary(): Readonly<Record<string, string | number | boolean | null>> {
    return { lockRewrites: this.#rewrites, lockRejections: this.#rejections };
  }
}
