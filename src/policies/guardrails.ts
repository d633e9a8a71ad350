import { createHash, randomBytes } from 'node:crypto';
import type { GuardrailEvent } from './api.js';
import { CONTINUE, DROP, closeWith, reject, replace, type Direction, type Filter, type FilterFactory, type SessionContext, type Verdict } from '../pipeline/filter.js';
import type { Frame, JsonObject } from '../pipeline/frame.js';
import { AUDIO_CLIENT_TYPES, AUDIO_SERVER_TYPES, isTranslationSession, type ClientEventOf, type RealtimeClientEvent } from '../protocol/events.js';
import type { Report } from '../pipeline/reports.js';
import { ProxyError } from '../protocol/errors.js';
import type { CompiledCustom, CompiledPolicy } from './compile.js';
import { contentPath, eventTexts, mergeRedactions, NO_CONTENT, sessionTextChanges, sessionTextMembers, type ContentPath, type ContentText } from './content-paths.js';
import { contextEdge } from './normalize.js';
import { isThenable, runCustom, type CustomSessionInfo, type CustomVerdict } from './custom.js';
import { carriesItemAudio, SpokenTurnHold } from './hold.js';
import { ACTION_RANK, TextScanner, type Action, type RuleHit, type Source, type TextFormat } from './matchers.js';
import type { PolicyEntry, PolicyRegistry } from './registry.js';
import { asArray, asObject, asString, keptId } from '../protocol/json.js';
import { clientEventId, deepEqual, notifyClient, pairStamp, toFrame } from './util.js';
import { LazyMap, LazySet } from '../lazy-collections.js';
import { CancelledResponses } from './cancelled-responses.js';
import { ItemSeeds } from './item-seeds.js';
import { UnknownTypesLog } from './unknown-types-log.js';
import { SCAN_LIMIT_RULE, UNKNOWN_CONTENT_RULE, Evaluation, strongestOf, stops, endsOpen, rulesFor, hasSource, idle, formatOf, runNow, runSliced, budgetFor, streamHoldChars, scanLimitFinding, scanFinal, scanFinalSliced, scanFinalSteps, rescanSteps, crossHits, crossSteps, type Finding, type Stream, type StreamOwner, type ScanSteps } from './guardrail-scans.js';
import { tailOf, detached, headOf } from './context-text.js';
import { streamedTextIn, withText, heldDelta, deltaIds, deltaMembers, streamKeyOf } from './guardrail-deltas.js';
import { refuseMalformed, matchExcerpt, afterContinue, isSpokenTurn, blankAudioOfStopped } from './guardrail-events.js';

export const GUARDRAILS_FILTER = 'policies.guardrails';

const TRANSCRIPTION_FAILED = 'conversation.item.input_audio_transcription.failed';
/** A diarized piece of an input transcript (a complete text, not a delta). */
const SEGMENT = 'conversation.item.input_audio_transcription.segment';
const AUDIO_COMMITTED = 'input_audio_buffer.committed';
/** The rule id reported when a held turn cannot be held (too many waiting) or a response started early. */
export const HOLD_RULE = 'hold-spoken-input';
/** The server's echoes of an item added to the conversation. */
const ITEM_ECHOES: ReadonlySet<string> = new Set(['conversation.item.added', 'conversation.item.created', 'conversation.item.done']);
/** The rule id reported for a client event that puts text next to an item whose place is no longer kept (#placeForgotten). */
export const CONTEXT_NOT_KEPT_RULE = 'context-not-kept';

/** The delta event type a `.done` flushes held text as. */
const DELTA_OF_DONE: Readonly<Record<string, string>> = {
  'response.output_text.done': 'response.output_text.delta',
  'response.output_audio_transcript.done': 'response.output_audio_transcript.delta',
  'conversation.item.input_audio_transcription.completed': 'conversation.item.input_audio_transcription.delta',
  'response.function_call_arguments.done': 'response.function_call_arguments.delta',
  'response.mcp_call_arguments.done': 'response.mcp_call_arguments.delta',
};
/** The field of a `.done` event that carries the complete text. */
const DONE_FIELD: Readonly<Record<string, string>> = {
  'response.output_text.done': 'text',
  'response.output_audio_transcript.done': 'transcript',
  'conversation.item.input_audio_transcription.completed': 'transcript',
  'response.function_call_arguments.done': 'arguments',
  'response.mcp_call_arguments.done': 'arguments',
};

type ReportSource = Extract<Report, { kind: 'guardrail' }>['source'];
const REPORT_SOURCE: Readonly<Record<Source, ReportSource>> = {
  input: 'input',
  output: 'output',
  tool_call: 'tool_input',
  tool_output: 'tool_output',
  image: 'input',
};

/**
 * Texts being streamed (`#streams`), and transcripts whose diarized segments' context is kept
 * (`#segments`). Past it room is made by dropping the oldest one whose later text cannot depend on
 * what it saw (a stream with nothing held back, nothing redacted, no open match at the end of its
 * context and no `maxChars` count, or stopped for good; a segment context whose end cannot begin a
 * match, else one of a completed transcript); when none can be dropped the session is ended
 * (`governance_failed`). A stream's context is more than its seed (its held text, its own text so
 * far), so the stream itself stays, not a copy of its seed as ItemSeeds keeps for items (item-seeds.ts). Until
 * 2026-12-07 the oldest was dropped whatever it held, and 256 streams interleaved with one had
 * its `.done` (or next segment) judged without the context its deltas had
 * (test/policies/redteam-19-stream-eviction.test.ts).
 */
const MAX_STREAMS = 256;
/** Transcripts whose later segments are withheld after their context made room (GuardrailFilter.#segmentsClosed). */
const MAX_CLOSED_SEGMENTS = 4096;
/**
 * Client item echoes remembered while a late verdict on an item sent without an id is to come, and
 * late blocks waiting for their echo. Never evicted (an item flooded out of them would stay in the
 * conversation unjudged): a session past them is ended.
 */
const MAX_ECHOES = 1024;
const MAX_LATE_BLOCKS = 256;
/** Fingerprints kept over all those echoes (an item has one per text, any number of texts). */
const MAX_ECHO_PRINTS = 8192;
/**
 * Conversation items whose place is kept (for matches across an inserted item): client-typed ones
 * with the start and end of their texts (up to a window each), the others as places.
 */
const MAX_PLACED = 128;
/**
 * Ids of forgotten places kept, the oldest first (#forgottenIds): a delete of the conversation's
 * oldest item joins nothing, so an app trimming its conversation from the start past MAX_PLACED is
 * not refused. Past these (or an id longer than MAX_FORGOTTEN_ID_CHARS) the rest are not kept.
 */
const MAX_FORGOTTEN_IDS = 1024;
const MAX_FORGOTTEN_ID_CHARS = 64;
/**
 * How long a delete of a forgotten item waits for the upstream to confirm the deletes sent before it
 * (#deleteForgotten): one round trip in practice; the client's direction waits with it. Past it, refused.
 */
const FORGOTTEN_DELETE_WAIT_MS = 5_000;
/** Redacted copies of a call's browser items still being put in place (#BrowserRedaction); the oldest is forgotten. */
const MAX_BROWSER_REDACTIONS = 16;
/** The content parts a redacted copy of a browser's message carries (the upstream echoes them whole). */
const TEXT_PARTS: ReadonlySet<string> = new Set(['input_text', 'output_text']);

/**
 * A client-typed item (text of the `input` or `tool_output` source) at its place in the
 * conversation: the start and end of its text, enough for a match spanning its neighbours. Items
 * the client did not type (model items, spoken turns) are kept as places (`source` null, a spoken
 * turn gets its transcript once checked), so an item inserted next to one meets its real neighbours.
 */
interface Placed {
  /** The item id; `anon:<n>` until the upstream's echo names an item sent without one. */
  key: string;
  source: Source | null;
  head: string;
  tail: string;
  /** Fingerprint of its first text, to learn the id of an item sent without one from its echo. */
  readonly print: string | null;
}

/**
 * An item a call's browser wrote that an input `redact` rule changed: it reached the upstream
 * unredacted (over the data channel), so the proxy deletes it and creates the redacted copy at its
 * place. A response that starts between the two read the address: it is cancelled and, if it was the
 * conversation's turn, asked for again once the copy stands and it is done (one answer, not two).
 */
interface BrowserRedaction {
  readonly original: string;
  readonly copy: string;
  readonly rule: string;
  /** The item the copy is created after ('root': the first). */
  readonly previous: string;
  /** The copy as created (sent again at the end when the item before it left first). */
  readonly item: ClientEventOf<'conversation.item.create'>['item'];
  /** The copy was sent again at the end of the conversation. */
  appended: boolean;
  /** Until the upstream confirms the original deleted (or shows the copy): a response starting now read it. */
  open: boolean;
  copyAdded: boolean;
  /** The conversation's response this cancelled, until its response.done. */
  cancelled: string | null;
  /** That response was cancelled before it finished: the turn is owed an answer. */
  owed: boolean;
}

/**
 * Whether a placed item's text is context of `source`: its own source; `withTools`, a tool output the
 * client typed is `input` context too (it was read as input, as its appended context is). Input
 * context is taken both ways (a tool output between input items neither joins nor separates them
 * unseen): until 2026-12-06 only without, so `ignore previous` as a tool output and `instructions`
 * inserted after it passed an input rule the appended pair trips.
 */
const readsAs = (p: Placed, source: Source, withTools = false): boolean => p.source === source || (withTools && source === 'input' && p.source === 'tool_output');
/** The readings of the places #placedBefore makes (each as readsAs reads), by the name #forgotten keeps them under. */
const readingKey = (source: Source, withTools: boolean): string => (withTools && source === 'input' ? 'input+tools' : source);
const PLACE_READINGS: readonly { readonly source: Source; readonly withTools: boolean }[] = [
  { source: 'input', withTools: false },
  { source: 'tool_output', withTools: false },
  { source: 'input', withTools: true },
];

/** The texts whose neighbours in the conversation are match context (what the user types, what tools return). */
const conversationSource = (source: Source): boolean => source === 'input' || source === 'tool_output';
const CONVERSATION_SOURCES: readonly Source[] = ['tool_output', 'input'];

/**
 * A client item create forwarded upstream, not answered yet: its echo (`conversation.item.added`)
 * puts it in the conversation; an `error` naming its `event_id`, or the echo of an item sent after
 * it (the upstream answers in order), means the upstream refused it: it is taken out of the context.
 */
interface Sent {
  /** Its place in send order (the upstream answers in this order). */
  readonly seq: number;
  /** Its id: given, or learnt from its echo. */
  itemId: string | null;
  /** The client's own event_id (null: sent without one). */
  readonly eventId: string | null;
  /**
   * The event_id it left with (the relay's `stamped` report; null until then, or never when a later
   * filter refused it): an upstream `error` names this one. The client's own is not enough: clients
   * choose ids freely, and an error about another event that carried it (an unread audio append)
   * would take this item for refused.
   */
  upstreamId: string | null;
  /** Fingerprints of its texts as forwarded: an echo of an item sent without an id is known by them. */
  readonly prints: readonly string[];
  /** Its item's type: an echo the conversation view no longer pairs answers it only with the same type (#answered). */
  readonly itemType: string;
  /** Its place in #placed (null: none kept). */
  readonly placed: Placed | null;
  /**
   * Judged again and blocked before its echo (sent without an id): the rule that blocked it. The
   * echo that answers this create (`#answered`, in send order) is deleted, not any item of the same
   * text (until 2026-12-07 the next echo of its text was: a twin echoed first went instead). Set by
   * `#blockSent` only: the first block names the deletion.
   */
  blockedBy: string | null;
  /** The upstream refused it (an `error` naming it, or the echo of a later create): no item of it to delete. */
  refused: boolean;
}

/**
 * A client item create sent without an id, as its late custom verdicts find it: by the create it
 * made (`sent`), so a late block deletes the echo that answers that create (`Sent.blockedBy`), or
 * the item it got, not any item of the same text (until 2026-12-07 the echoes of its text were: an
 * identical twin the guardrail let through went too, or instead).
 */
interface AnonCreate {
  /** `judging`: not forwarded yet (late blocks wait in `early`); `refused`: this filter refused it; `forwarded`: it went upstream. */
  state: 'judging' | 'refused' | 'forwarded';
  /** Its create as followed (null: none, it had no text at all, so no verdict to come). */
  sent: Sent | null;
  /** Late blocks that came while it was judged: applied when it is forwarded. */
  readonly early: { texts: readonly string[]; ruleId: string }[];
}

/**
 * What one item (a client item appended, or a spoken turn's checked transcript) added to the context
 * of a conversation source (`#seed`): the last MAX_SAID are kept, so an item that leaves the
 * conversation (refused by the upstream, or deleted) leaves the context too.
 */
interface Said {
  readonly source: Source;
  /** The event type its rules were chosen by. */
  readonly eventType: string;
  /** The start of its text (a match reaching into it), and its end with the separator. */
  readonly head: string;
  readonly tail: string;
  /** Its text fills the window: the context after it is its own end alone. */
  readonly long: boolean;
  /** The client item (null: a spoken turn). */
  readonly sent: Sent | null;
  /** A spoken turn's item. */
  readonly itemId: string | null;
}

/**
 * The direction of a guardrail finding's event: `client` for a client event type (the content-path
 * table's client rows), else `server` (upstream events, and a held turn's timers and overflow).
 */
function tripDirection(eventType: string): Direction {
  return contentPath('client', eventType) !== undefined ? 'client' : 'server';
}

/** Server events showing a whole conversation item: on a call, one the browser wrote is judged as a client's create. */
const BROWSER_ITEM_EVENTS: ReadonlySet<string> = new Set(['conversation.item.added', 'conversation.item.created', 'conversation.item.done', 'conversation.item.retrieved']);

/** Client item creates waiting for their answer (past it, the oldest is taken as kept). */
const MAX_SENT = 256;
/** Items whose part of the context is kept (an item deleted before them stays context), as many as places (MAX_PLACED). */
const MAX_SAID = 128;

/** The context after `said`, given the context before it (as `tailOf` builds it text by text). */
const contextAfter = (before: string, said: Said, keep: number): string => (said.long ? said.tail : tailOf(before + said.head, keep));

/** The start, end and reach of texts joined as one item's context (separated as `tailOf` separates them). */
function saidText(texts: readonly string[], keep: number): { head: string; tail: string; long: boolean } {
  let head = '';
  for (let i = 0; i < texts.length && head.length < keep; i++) head = i === 0 ? headOf(texts[0]!, keep) : `${head} ${headOf(texts[i]!, keep)}`;
  let tail = '';
  for (let i = texts.length - 1; i >= 0 && tail.length < keep; i--) {
    const t = texts[i]!;
    const end = t.length > keep ? detached(contextEdge(t, keep, 'tail')) : t;
    tail = i === texts.length - 1 ? end : `${end} ${tail}`;
  }
  // Shorter than the window: `head` is all of it.
  return { head: headOf(head, keep), tail: tailOf(tail, keep), long: head.length >= keep };
}

/** A text's fingerprint: a late verdict finds the client item it judged by it, without keeping the text. */
const fingerprint = (text: string): string => createHash('sha256').update(text).digest('base64');
/** Refused session changes on a call put back before the call is ended as ungovernable. */
const MAX_CALL_RESTORES = 3;

/**
 * The texts of a session the input rules judge: the members a `session.update`'s row reads
 * (`SESSION_TEXT_MEMBERS`: instructions, prompt, tools, the input transcription). Until 2026-12-06
 * a list of its own (instructions, tools, prompt): a call's transcription prompt was never judged.
 */
const sessionTexts = sessionTextMembers;

/** Longest unknown type kept, logged or reported (until 2026-12-05 kept whole: 1024 × up to 16 MiB). */
const MAX_UNKNOWN_TYPE_CHARS = 64;

/** The context of a transcript's next diarized segment (see GuardrailFilter.#segments). */
interface SegmentContext {
  readonly text: string;
  /** Whether its end could begin a match (the next segment is judged differently without it); learnt when room is needed. */
  open: boolean | null;
}

export function guardrailsFactory(registry: PolicyRegistry): FilterFactory {
  return {
    name: GUARDRAILS_FILTER,
    // Every type but audio: content paths go through the table, unknown types (including any the
    // API adds later) through `unknownContentEvents`. Audio frames carry no text; the relay
    // forwards them without a Frame and still drops the audio of a cancelled response.
    wants: { client: { allBut: AUDIO_CLIENT_TYPES }, server: { allBut: AUDIO_SERVER_TYPES } },
    failMode: 'closed',
    create: (ctx) => new GuardrailFilter(ctx, registry.resolve(ctx.tenant.policy)),
  };
}

/**
 * Guardrails on every content path of src/policies/content-paths.ts, with one decision per text
 * (match → log, redact, block, cancel, end). Streamed text is held back while it can still
 * complete a match, so what a rule forbids never reaches the client; after a block or cancel the
 * offending items are deleted upstream, so neither `conversation.item.retrieve` nor the model's
 * later context carries them. Rule verdicts are synchronous; custom guardrails may be async only
 * where the policy says so.
 */
export class GuardrailFilter implements Filter {
  readonly #ctx: SessionContext;
  readonly #entry: PolicyEntry;
  readonly #info: CustomSessionInfo;
  readonly #streams = new LazyMap<string, Stream>();
  /** User items whose transcript tripped block / cancel: their later transcript events are dropped. */
  readonly #blockedItems = new LazySet<string>();
  /** Responses this filter cancelled, with the items it saw trip: all their items are deleted upstream once the response is done (MAX_CANCELLED_RESPONSES). */
  readonly #cancelled = new CancelledResponses();
  /** Items this filter deleted upstream (each once). */
  readonly #deleted = new LazySet<string>();
  /** Earlier text per source (the previous stream or client item), so a match can span items. */
  readonly #seed = new LazyMap<Source, string>();
  readonly #customState = new LazyMap<string, Map<string, unknown>>();
  /** `item\0rule` pairs already reported. */
  readonly #reported = new LazySet<string>();
  /** The end of the diarized `.segment`s of an input transcript so far (item → text), context for its next one (MAX_STREAMS). */
  readonly #segments = new LazyMap<string, SegmentContext>();
  /**
   * Transcripts whose segment context made room after they completed (#dropSettledSegments): a later
   * segment of one is withheld (its text is in the `completed` the client already has). At most
   * MAX_CLOSED_SEGMENTS, oldest forgotten.
   */
  readonly #segmentsClosed = new LazySet<string>();
  /** The context each item's text streamed with, for its later views (item-seeds.ts). */
  readonly #itemSeeds = new ItemSeeds(MAX_STREAMS);
  /** Committed speech waiting for its transcript (fail-closed timeout). */
  readonly #transcriptTimers = new LazyMap<string, NodeJS.Timeout>();
  /**
   * Client items as the upstream echoed them (`conversation.item.added`): item id → fingerprints
   * of their texts. A late `block` on an item the client sent without an id finds it here.
   * Kept only while such a verdict is to come (#anonPending).
   */
  readonly #echoes = new LazyMap<string, Set<string>>();
  /** Late verdicts still to come on client items sent without an id. */
  #anonPending = 0;
  /** Fingerprints in #echoes. */
  #echoPrints = 0;
  /** Late blocks of client items sent without an id whose echo has not come yet: fingerprint → rule. */
  readonly #lateBlocks = new LazyMap<string, string>();
  /** Client-typed items in conversation order (bounded), for a match across an item inserted with `previous_item_id`. */
  readonly #placed: Placed[] = [];
  /**
   * The end of the text of the items no longer kept in #placed (the start of the conversation,
   * MAX_PLACED), per reading of #placedBefore (readingKey): what comes before the first kept place.
   * Null until a place is forgotten (#keepPlaces).
   */
  #forgotten: Map<string, string> | null = null;
  /**
   * The ids of the first forgotten places, in conversation order, while they are all there
   * (`#forgottenIdsAll`: every forgotten place still in the conversation is listed): the first is the
   * conversation's oldest item, whose delete joins nothing (#deleteForgotten).
   */
  readonly #forgottenIds: string[] = [];
  #forgottenIdsAll = true;
  /**
   * Forgotten items (of #forgottenIds) whose client delete went upstream, not confirmed yet: by id,
   * the event_id it left with (an upstream error naming it: the item stays). A delete of the item after
   * them waits for their confirmations (#deleteWaiter).
   */
  readonly #forgottenDeleting = new LazyMap<string, string | null>();
  /** The delete of a forgotten item waiting for the deletes before it (one at most: the client's direction waits with it). */
  #deleteWaiter: { readonly id: string; readonly settle: (confirmed: boolean) => void } | null = null;
  #anonPlaced = 0;
  /** Client item creates forwarded, not answered yet (oldest first): the upstream may still refuse them. */
  readonly #sent: Sent[] = [];
  /** Creates in #sent blocked before their echo (`Sent.blockedBy`): what the idle fast path asks on every server frame, without a scan. */
  #blockedSent = 0;
  /** `Sent.seq` of the next create. */
  #sentSeq = 0;
  /**
   * Every create before this `Sent.seq` was answered or refused: an echo answered a later create
   * named by its id (the upstream answers in order). A create no longer followed and older than
   * this has no echo left to wait for.
   */
  #settledBefore = 0;
  /** What the last items added to the context of the conversation sources, in order (see Said). */
  readonly #said: Said[] = [];
  /** The context of each conversation source before the first of #said. */
  readonly #saidBase = new LazyMap<Source, string>();
  /** Texts taken out of the context so far (a stream started before one went on the context it had). */
  #withdrawals = 0;
  /** The end of the last text of a `response.create` `input` (out of the conversation), as extra context for the next item. */
  #responseInput: string | null = null;
  /** An input trip came before its response existed: cancel the next one the server starts. */
  #cancelNext: { action: Action; ruleId: string } | null = null;
  /** Spoken turns held until their transcript is checked (policy snapshot at session start, like the locks). */
  #hold: SpokenTurnHold | null;
  #trips = 0;
  /** The unknown types this session logged (unknown-types-log.ts); made with the first. */
  #unknownTypes: UnknownTypesLog | null = null;
  #closed = false;
  /** A retraction ended the session (end_session, or no room for its late block): an item judged again after it (by #withdraw and #unplace both) is not reported again. */
  #retractEnded = false;
  /** On a call: the session texts last judged (what a refused change is put back to), and how often that happened. */
  #callTexts: JsonObject | null = null;
  #callRestores = 0;
  /** On a call: browser items a redaction replaces with a redacted copy, until the copy stands (#replaceBrowserItem). */
  #browserRedactions: BrowserRedaction[] = [];
  /** Browser items replaced (`original`) and the redacted copies (`copy`): neither is replaced again (the last 128). */
  readonly #replacedItems = new LazyMap<string, 'original' | 'copy'>();

  /**
   * A translation session (`…/realtime/translations`): its transcripts stream with the translated
   * audio spoken from them, which no cancel stops and no delete recalls, so any stopping trip ends it.
   */
  readonly #translation: boolean;

  constructor(ctx: SessionContext, entry: PolicyEntry) {
    this.#ctx = ctx;
    this.#entry = entry;
    this.#info = { sessionId: ctx.id, tenantId: ctx.tenant.id, model: ctx.model, policy: entry.name, log: ctx.log };
    const hold = entry.current.holdSpokenInput;
    this.#translation = isTranslationSession(ctx.query);
    // A transcription session (intent=transcription) has no responses to hold; nor has a translation session.
    this.#hold = hold && ctx.query.get('intent') !== 'transcription' && !this.#translation ? new SpokenTurnHold(ctx, GUARDRAILS_FILTER, hold.timeoutMs, () => ({ policy: this.#policy.name, policyVersion: this.#policy.version })) : null;
  }

  /** The policy for stateless evaluations: the latest loaded version (hot reload applies live). */
  get #policy(): CompiledPolicy {
    return this.#entry.current;
  }

  // ---- routing -----------------------------------------------------------------------------

  onClient(frame: Frame, injectedBy: string | null = null): Verdict | Promise<Verdict> {
    // The proxy's own events (the locks' state, a client secret's or a SIP call's config, judged by
    // these rules when minted or accepted: src/calls/session-config.ts) carry no client input to judge.
    if (injectedBy !== null) return CONTINUE;
    const hold = this.#hold;
    if (hold !== null) {
      const type = frame.type;
      if (type === 'input_audio_buffer.commit') hold.commitSent(asString(frame.json()['event_id']));
      else if ((type === 'conversation.item.create' || type === 'response.create') && carriesItemAudio(type, frame.json())) return this.#refuseItemAudio(frame);
      else if (type === 'response.create') return afterContinue(this.#clientEvent(frame), () => hold.clientCreate(frame.json()));
    }
    return this.#clientEvent(frame);
  }

  /**
   * On a held call, a user item with audio that no commit made: the browser wrote it on its data
   * channel (`conversation.item.create` with an `input_audio` part), where a WebSocket client's is
   * refused (#refuseItemAudio). Its audio is never transcribed, so its turn can never be judged: it
   * is deleted, and a response starting before the delete is confirmed is cancelled (the hold's
   * `deleting`). Until 2026-12-07 the browser's response
   * answered it (test/calls/held-browser-audio-item.test.ts). True for such an item (its later
   * echoes included).
   */
  #browserItemAudio(frame: Frame): boolean {
    const item = asObject(frame.json()['item']);
    const itemId = asString(item?.['id']);
    if (!item || itemId === null || item['type'] !== 'message' || item['role'] !== 'user') return false;
    if (!(asArray(item['content']) ?? []).some((p) => asObject(p)?.['type'] === 'input_audio')) return false;
    // A committed spoken turn's transcript is pending (held for it), then completed or failed.
    if (this.#ctx.conversation.item(itemId)?.transcript !== 'none') return false;
    if (this.#deleted.has(itemId)) return true;
    const policy = this.#policy;
    const finding: Finding = { id: HOLD_RULE, action: 'block', label: 'item_audio', excerpt: null };
    this.#reportAll(policy, [finding], 'input', frame.type, null, this.#ctx.clock.now());
    this.#ctx.log.info({ policy: policy.name, item: itemId }, 'call: an audio item was added over the data channel; its turn cannot be judged (held spoken turns), deleted');
    this.#block(itemId);
    this.#deleteItem(itemId, 'blocked', HOLD_RULE);
    // A response running already read its conversation without the item; one that starts before the
    // delete is confirmed is cancelled (startedUnchecked).
    this.#hold?.deleting(itemId);
    return true;
  }

  /** Audio in an item is never transcribed upstream: a held session cannot check it, so it is refused. */
  #refuseItemAudio(frame: Frame): Verdict {
    const policy = this.#policy;
    const finding: Finding = { id: HOLD_RULE, action: 'block', label: 'item_audio', excerpt: null };
    this.#reportAll(policy, [finding], 'input', frame.type, null, this.#ctx.clock.now());
    return reject(
      new ProxyError('guardrail_blocked', {
        message: 'Spoken input must go through input_audio_buffer.append so its transcript can be checked; audio in items is not allowed by the policy.',
        eventId: clientEventId(frame.json()),
        details: this.#details(policy, [finding]),
      }),
    );
  }

  #clientEvent(frame: Frame): Verdict | Promise<Verdict> {
    const path = contentPath('client', frame.type);
    if (frame.type === 'conversation.item.delete' && this.#forgotten !== null) return this.#deleteForgotten(frame);
    if (!path) return NO_CONTENT.has(frame.type) ? CONTINUE : this.#unknown(frame.type, 'client', frame);
    const policy = this.#policy;
    // A member the table cannot read is refused whatever the policy (malformedError), a policy with nothing to judge too.
    if (idle(policy) && policy.unknownContentEvents === 'pass') return refuseMalformed(frame, eventTexts(frame.type, frame.json())) ?? CONTINUE;
    return this.#clientTexts(frame, policy);
  }

  onServer(frame: Frame): Verdict | Promise<Verdict> {
    const type = frame.type;
    if (this.#ctx.callId && (type === 'session.created' || type === 'session.updated')) return this.#callSession(frame);
    if (type === 'session.closed' && this.#translation) return this.#translationClosed(type) ?? CONTINUE;
    if (this.#hold && this.#ctx.callId && ITEM_ECHOES.has(type) && this.#browserItemAudio(frame)) return CONTINUE;
    const path = contentPath('server', type);
    if (!path) {
      if (type === 'session.created' && this.#hold && asObject(frame.json()['session'])?.['type'] === 'transcription') {
        this.#hold.close();
        this.#hold = null;
      }
      if (type === AUDIO_COMMITTED) return this.#committed(frame);
      if (type === TRANSCRIPTION_FAILED) return this.#transcriptionFailed(frame);
      if (type === 'error' && this.#hold) this.#hold.error(frame.json());
      if (type === 'error' && this.#sent.length > 0) this.#refusedBy(frame.json());
      if (type === 'error' && this.#forgottenDeleting.size > 0) this.#forgottenDeleteRefused(frame.json());
      if (type === 'conversation.item.deleted') this.#itemDeleted(frame);
      return NO_CONTENT.has(type) ? CONTINUE : this.#unknown(type, 'server');
    }
    if (path.kind === 'delta') return this.#delta(frame, path);
    if (path.kind === 'done') return this.#done(frame, path);
    return this.#serverTexts(frame);
  }

  /** The upstream confirmed an item deleted: what the filter kept about it goes. */
  #itemDeleted(frame: Frame): void {
    // An id the upstream confirms deleted is free again (#freeItemId): an item given it later is a new item.
    if (this.#deleted.size > 0 || this.#reported.size > 0 || this.#replacedItems.size > 0) this.#freeItemId(asString(frame.json()['item_id']) ?? '');
    if (this.#browserRedactions.length > 0) this.#redactionItemDeleted(asString(frame.json()['item_id']));
    if (this.#forgottenIds.length > 0) {
      const id = asString(frame.json()['item_id']) ?? '';
      const at = this.#forgottenIds.indexOf(id);
      if (at >= 0) this.#forgottenIds.splice(at, 1);
      this.#forgottenDeleting.delete(id);
      // Every delete before the waiting one confirmed: it deletes the oldest item now (or one gone already).
      if (this.#deleteWaiter !== null && this.#forgottenIds.indexOf(this.#deleteWaiter.id) <= 0) this.#deleteWaiter.settle(true);
    }
    if (this.#hold?.awaitingDeletes || this.#placed.length > 0 || this.#said.length > 0) {
      const deleted = asString(frame.json()['item_id']);
      this.#hold?.itemDeleted(deleted);
      // Its text is no context any more (until 2026-12-05 it was: it kept pushing earlier text out).
      this.#unplace(
        this.#placed.filter((p) => p.key === deleted),
        () => {
          if (deleted !== null) this.#withdraw(new Set(this.#said.filter((said) => (said.sent !== null ? said.sent.itemId : said.itemId) === deleted)));
        },
      );
    }
  }

  // ---- a call's session, changed over the browser's data channel ---------------------------

  /**
   * On a call the browser's `session.update` travels over its data channel, unseen: the sideband
   * reads only the result. Its texts (every member a `session.update`'s row reads:
   * instructions, tools, prompt, the input transcription's prompt and keywords) get the decision a WebSocket
   * `session.update` gets, rules and custom code alike; a redaction is sent back, a refusal puts the
   * texts last judged back (a browser that keeps trying ends the call), `end_session` ends it.
   */
  #callSession(frame: Frame): Verdict | Promise<Verdict> {
    const session = asObject(frame.json()['session']);
    if (session?.['type'] !== 'realtime') return CONTINUE;
    const texts = sessionTexts(session);
    // A new call's session.created shows the config the proxy created it with (judged then): the baseline.
    // A call taken over shows what it became, changes made while nobody governed it included: judged
    // as a change with no texts known good (refused, the call ends). Until the twenty-third red-team
    // pass (c) they were the baseline, and instructions the input rules refuse, written in the gap,
    // stayed for the rest of the call (test/calls/redteam-23c-takeover-gap.test.ts).
    if (frame.type === 'session.created' && this.#ctx.carried?.takenOver !== true) {
      this.#callTexts = texts;
      return CONTINUE;
    }
    if (deepEqual(texts, this.#callTexts)) return CONTINUE;
    const probe = toFrame({ type: 'session.update', session: texts });
    const verdict = this.#clientTexts(probe, this.#policy);
    return isThenable(verdict) ? verdict.then((v) => this.#afterCallSession(v, texts)) : this.#afterCallSession(verdict, texts);
  }

  #afterCallSession(v: Verdict, texts: JsonObject): Verdict {
    switch (v.kind) {
      case 'continue':
        this.#callTexts = texts;
        return CONTINUE;
      case 'replace': {
        const redacted = sessionTexts(asObject(v.frame.json()['session']) ?? {});
        this.#callTexts = redacted;
        this.#sendCallTexts(redacted, texts);
        return CONTINUE;
      }
      case 'close':
        return v;
      default: {
        const governed = this.#callTexts;
        // None known good: the texts a call taken over was found with (a sideband's first read) are refused.
        if (governed === null) {
          this.#ctx.log.warn({ policy: this.#policy.name }, 'call: the session texts found at the takeover are refused by the policy; the call is ended');
          return closeWith(new ProxyError('governance_failed', { message: 'The call\'s session, as found when this instance took it over, has texts the policy refuses; it was ended.', details: { policy: this.#policy.name } }));
        }
        if (++this.#callRestores > MAX_CALL_RESTORES) {
          return closeWith(new ProxyError('governance_failed', { message: 'The call kept changing its session to texts the policy refuses; it was ended.', details: { policy: this.#policy.name } }));
        }
        this.#ctx.log.info({ policy: this.#policy.name }, 'call: session texts changed over the data channel were refused; the governed ones are put back');
        this.#sendCallTexts(governed, texts);
        return CONTINUE;
      }
    }
  }

  /** Sends `want` where the call's session (`now`) differs (`sessionTextChanges`). */
  #sendCallTexts(want: JsonObject, now: JsonObject): void {
    const changes = sessionTextChanges(want, now);
    if (changes === null) return;
    const session = { type: 'realtime', ...changes } as unknown as Extract<RealtimeClientEvent, { type: 'session.update' }>['session'];
    this.#ctx.sendUpstream({ type: 'session.update', session }, GUARDRAILS_FILTER);
  }

  /** An event type the content-path table does not know: the policy decides; counted, and logged once per type per session. */
  #unknown(type: string, direction: 'client' | 'server', clientFrame: Frame | null = null): Verdict {
    const policy = this.#policy;
    // A client chooses the type: what is kept, logged and reported is cut short.
    type = type.length > MAX_UNKNOWN_TYPE_CHARS ? `${type.slice(0, MAX_UNKNOWN_TYPE_CHARS)}…` : type;
    this.#ctx.report({ kind: 'unknown_content', direction, action: policy.unknownContentEvents });
    (this.#unknownTypes ??= new UnknownTypesLog()).log(this.#ctx.log, type, direction, policy);
    if (policy.unknownContentEvents !== 'block') return CONTINUE;
    this.#reportAll(policy, [{ id: UNKNOWN_CONTENT_RULE, action: 'block', label: type, excerpt: null }], direction === 'client' ? 'input' : 'output', type, null, this.#ctx.clock.now(), direction);
    // `type` is an event type, or content inside a known one (`item:…`, `content part:…`, `prompt variable:…`).
    const what = type.includes(':') ? `The ${type.replace(':', ' ')} (content the policy cannot check)` : `The event type ${type}`;
    if (direction === 'client') {
      const eventId = clientFrame ? clientEventId(clientFrame.json()) : null;
      return reject(new ProxyError('guardrail_blocked', { message: `${what} is not allowed by the policy.`, eventId, details: this.#unknownDetails(policy) }));
    }
    return DROP;
  }

  #unknownDetails(policy: CompiledPolicy): Record<string, string | number | boolean | null> {
    return { policy: policy.name, policyVersion: policy.version, rule: UNKNOWN_CONTENT_RULE, action: 'block' };
  }

  // ---- client → upstream: complete texts ------------------------------------------------------

  #clientTexts(frame: Frame, policy: CompiledPolicy): Verdict | Promise<Verdict> {
    const t0 = this.#ctx.clock.now();
    const ev = frame.json();
    const texts = eventTexts(frame.type, ev);
    const refused = refuseMalformed(frame, texts);
    if (refused) return refused;
    const unknown = texts.find((t) => t.unknownContent !== undefined);
    if (unknown) {
      const v = this.#unknown(unknown.unknownContent!, 'client', frame);
      if (v.kind !== 'continue') return v;
    }
    const created = frame.type === 'conversation.item.create';
    const forgotten = this.#placeForgotten(frame.type, ev, texts, policy);
    if (forgotten !== null) return this.#refuseForgotten(ev, frame.type, forgotten, policy);
    // perf: no text to judge and no item to place (a commit, a response.create without input or
    // instructions): nothing below would change (every turn sends two such events).
    if (texts.length === 0 && !created) return CONTINUE;
    const evaluations: { t: ContentText; e: Evaluation; seed: string; format: TextFormat }[] = [];
    const pending: Promise<void>[] = [];
    // An item put elsewhere than at the end (`previous_item_id`): its neighbours there are its context.
    const at = created ? this.#insertionPoint(ev) : null;
    // The context this item's texts leave, per source (a phrase split over three items or more
    // meets itself); like the response input below, kept only if the event goes on: a refused
    // event never reaches the conversation, so it must not push the real context out.
    const local = new Map<Source, string>();
    let responseInput: string | undefined;
    let asideUsed = false;
    const lastOf = new Map<Source, ContentText>();
    for (const t of texts) lastOf.set(t.source, t);
    // A text judged under two sources (one setter) meets a custom guardrail listing both once,
    // under the first (its own source): until 2026-12-05 it ran twice, with two late verdicts.
    const customsRan = new Map<ContentText['set'], Set<CompiledCustom>>();
    // Any other event's texts of one source are each other's context too, in the event's order (a
    // response.create's input[] items and parts, say: until 2026-12-05 each met only the
    // conversation's context, and a phrase split over two of them went upstream). Not kept after it.
    const within = new Map<Source, string>();
    // Texts longer than one window in all are scanned window by window across macrotasks (the
    // verdict comes as a Promise, like a blocking custom guardrail's), within one budget.
    // A referenced item's text is scanned at its place too (its start, against what comes before it).
    const budget = budgetFor(policy, frame.type, texts.some((t) => t.reference !== undefined) ? texts.flatMap((t) => (t.reference === undefined ? [t] : this.#referenced(t.reference).map((r) => ({ source: r.source, text: r.placed.head })))) : texts);
    // One text's scan at a time: concurrent ones would each queue a macrotask per slice, and Node
    // runs every queued setImmediate in one pass of the loop (a thousand parts: a thousand slices
    // before the next I/O callback).
    let scans: Promise<void> = Promise.resolve();
    // Sent without an id: what its late custom verdicts find it by (see AnonCreate).
    let anonCreate: AnonCreate | null = null;
    for (const t of texts) {
      if (t.unknownContent !== undefined) continue;
      if (t.reference !== undefined) {
        // An `item_reference` (a response's input[]): the model reads that conversation item here, in
        // the order the client chose. A match from the text before it into its start stops the event
        // (rules stronger than `redact` it does not trip alone); its end is the context of what follows.
        // Until 2026-12-06 a reference was no text: two items typed in the reverse order (or apart,
        // past the window) and referenced in phrase order spelled it to the model.
        for (const { source, placed, format } of this.#referenced(t.reference)) {
          // What the response's input put before it (the conversation is not read: `input` replaces it).
          const seed = within.get(source) ?? '';
          // One short text: all of it follows the context; else the end of its last text does.
          within.set(source, placed.tail === `${placed.head} ` ? tailOf(seed + placed.head, policy.windowChars) : placed.tail);
          const e = new Evaluation(placed.head);
          if (budget === null) e.addHits(crossHits(policy, source, frame.type, seed, placed.head, 'item_reference', format));
          else {
            pending.push(
              (scans = scans.then(async () => {
                const hits = await runSliced(policy, budget, crossSteps(policy, source, frame.type, seed, placed.head, 'item_reference', format));
                if (hits === null) e.addScanTime(policy);
                else e.addHits(hits);
              })),
            );
          }
          evaluations.push({ t: { ...t, source }, e, seed, format }); // reported under the source it was read as
        }
        continue;
      }
      const format = t.format ?? formatOf(t.source);
      // Conversation text: the previous items' text of the same source, in conversation order.
      const convText = created && conversationSource(t.source);
      // Its context is its place's (the first text of its source in the item).
      const placedSeed = convText && at !== null && !local.has(t.source);
      const before = convText ? (local.get(t.source) ?? (at !== null ? this.#placedBefore(at, t.source, policy.windowChars) : (this.#seed.get(t.source) ?? ''))) : null;
      const seed = before ?? within.get(t.source) ?? (t.source === 'input' ? (this.#seed.get('input') ?? '') : '');
      // A match across this text and a neighbour's: `alone`, only rules the text does not trip alone.
      const crosses: { seed: string; text: string; label: string; alone: boolean }[] = [];
      if (convText) {
        local.set(t.source, tailOf(seed + t.text, policy.windowChars));
        if (at !== null) {
          // And the next items' text, which now follows this one.
          const next = lastOf.get(t.source) === t ? this.#placedAfter(at, t.source, policy.windowChars) : null;
          if (next !== null) crosses.push({ seed: local.get(t.source)!, text: next, label: 'next_item', alone: false });
          // Input text inserted next to a tool output the client typed meets it too, as input (its
          // appended context does): until 2026-12-06 an inserted item met only the input items around it.
          if (t.source === 'input') {
            const withTools = placedSeed ? this.#placedBefore(at, 'input', policy.windowChars, true) : null;
            if (withTools !== null && withTools !== before) crosses.push({ seed: withTools, text: t.text, label: 'previous_item', alone: true });
            const nextWithTools = lastOf.get(t.source) === t ? this.#placedAfter(at, 'input', policy.windowChars, true) : null;
            if (nextWithTools !== null && (nextWithTools !== next || (withTools !== null && withTools !== before))) crosses.push({ seed: tailOf((withTools ?? seed) + t.text, policy.windowChars), text: nextWithTools, label: 'next_item', alone: false });
          }
        } else if (t.source === 'input' && this.#responseInput !== null && !asideUsed) {
          // A response's own `input` (no part of the conversation) is context for the next item too,
          // beside the conversation's: it does not take the conversation's place.
          asideUsed = true;
          crosses.push({ seed: this.#responseInput, text: t.text, label: 'response_input', alone: true });
        }
      } else {
        within.set(t.source, tailOf(seed + t.text, policy.windowChars));
        if (frame.type === 'response.create' && t.source === 'input' && t.text !== asString(asObject(ev['response'])?.['instructions'])) {
          responseInput = tailOf(t.text, policy.windowChars);
        }
      }
      const crossOf = (e: Evaluation, hits: readonly RuleHit[], alone: boolean): RuleHit[] => (alone ? hits.filter((h) => !e.findings.some((f) => f.id === h.rule.id)) : [...hits]);
      let e: Evaluation;
      // With a budget: the rules' findings join the custom guardrails' when the sliced scan is done (before them, as at once).
      let scanned: Promise<void> | null = null;
      if (budget === null) {
        e = scanFinal(policy, t.source, frame.type, t.text, null, t.functionName, seed, format);
        for (const cross of crosses) e.addHits(crossOf(e, crossHits(policy, t.source, frame.type, cross.seed, cross.text, cross.label, format), cross.alone));
      } else {
        const pendingE = (e = new Evaluation(t.text));
        scanned = scans = scans.then(async () => {
          const se = await scanFinalSliced(policy, budget, t.source, frame.type, t.text, null, t.functionName, seed, format);
          for (const c of crosses) {
            const hits = await runSliced(policy, budget, crossSteps(policy, t.source, frame.type, c.seed, c.text, c.label, format));
            if (hits === null) se.addScanTime(policy);
            else se.addHits(crossOf(se, hits, c.alone));
          }
          pendingE.mergeScan(se);
        });
        pending.push(scanned);
      }
      // A late verdict on an item finds it by its id, or (sent without one) by its echo upstream,
      // remembered until every such verdict is in.
      const anon = created && t.itemId === null;
      if (anon) anonCreate ??= { state: 'judging', sent: null, early: [] };
      let ran = customsRan.get(t.set);
      if (!ran) customsRan.set(t.set, (ran = new Set()));
      const customs = (policy.customBySource.get(t.source) ?? []).filter((c) => !ran.has(c));
      for (const c of customs) ran.add(c);
      const p = this.#runCustoms(
        policy,
        t.source,
        e,
        this.#event(t.source, frame.type, t.text, null, true, null, t.itemId, t.functionName),
        (c, v) => {
          const apply = (): void => {
            try {
              this.#late(c, v, t.source, frame.type, null, created ? (t.itemId ?? undefined) : undefined, anon ? { texts: [t.text, e.text], create: anonCreate! } : null);
            } finally {
              if (anon && --this.#anonPending === 0) {
                this.#echoes.clear();
                this.#echoPrints = 0;
              }
            }
          };
          // A late verdict before the sliced scan is done waits for it (the text as forwarded is known then).
          if (scanned !== null) void scanned.then(apply, apply);
          else apply();
        },
        customs,
        anon ? () => this.#anonPending++ : undefined,
      );
      if (p) pending.push(p);
      evaluations.push({ t, e, seed, format });
    }
    // Steps: the rescans of redacted texts run within the budget too (null answers: it ran out).
    const finish = function* (this: GuardrailFilter): ScanSteps<Verdict> {
      let copy: JsonObject | null = null;
      const findings: Finding[] = [];
      // Each finding is reported under the source it was found in (until the third review of
      // 2026-12-05 every one was reported under the first finding's).
      const sources: Source[] = [];
      // A text the client wrote is judged as its own source and as input (one place, one setter):
      // a rule listing both finds it twice, and is reported once (under its own source).
      const found = new Map<ContentText['set'], Set<string>>();
      const shared = new Map<ContentText['set'], { t: ContentText; e: Evaluation; seed: string; format: TextFormat }[]>();
      let outOfTime = false;
      const note = (ids: Set<string>, f: Finding, source: Source): void => {
        if (ids.has(f.id)) return;
        ids.add(f.id);
        // The event's budget ran out: one finding decides the event (not one per text left unscanned: a thousand parts, a thousand reports).
        if (f.label === 'scan_time' && f.id === SCAN_LIMIT_RULE) {
          if (outOfTime) return;
          outOfTime = true;
        }
        findings.push(f);
        sources.push(source);
      };
      for (const x of evaluations) {
        const { t, e, seed, format } = x;
        // A custom guardrail's replacement goes through the rules too (they scanned the text before it).
        if (e.customRedacted) {
          const more = yield* rescanSteps(policy, rulesFor(policy, t.source, frame.type), e, (id) => e.findings.some((f) => f.id === id), seed, format);
          if (more === null) e.addScanTime(policy);
          else e.addHits(more);
        }
        let ids = found.get(t.set);
        if (!ids) found.set(t.set, (ids = new Set()));
        for (const f of e.findings) note(ids, f, t.source);
        const group = shared.get(t.set);
        if (group) group.push(x);
        else shared.set(t.set, [x]);
      }
      for (const [set, group] of shared) {
        const redacted = group.filter((x) => x.e.redacted);
        if (redacted.length === 0) continue;
        const ids = found.get(set)!;
        // Two sources' redactions of one text are merged (each replaced span as its rule says).
        let text = redacted[0]!.e.text;
        for (const x of redacted.slice(1)) if (x.e.text !== text) text = mergeRedactions(x.t.text, text, x.e.text);
        // The text forwarded passes every source's rules: one whose own decision ended on another
        // text (the other source's redaction, or the two merged) scans it once more, as a
        // redaction is rescanned (until 2026-12-05 a merge could join a phrase no rule saw).
        for (const x of group) {
          if (x.e.text === text) continue;
          const again = new Evaluation(text);
          const more = yield* rescanSteps(policy, rulesFor(policy, x.t.source, frame.type), again, (id) => ids.has(id), x.seed, x.format, 'after_merge');
          if (more === null) note(ids, scanLimitFinding(policy, 'scan_time'), x.t.source);
          for (const h of more ?? []) {
            note(ids, { id: h.rule.id, action: h.rule.action, label: h.label, excerpt: h.excerpt }, x.t.source);
          }
          text = again.text;
        }
        copy ??= structuredClone(ev);
        set(copy, text);
      }
      const action = strongestOf(findings);
      if (!stops(action)) {
        // Until the upstream answers it, it may still refuse it: then it is taken out of the context again.
        const sent = created ? this.#sentItem(ev, at, evaluations, this.#place(ev, at, evaluations, policy), frame.type, policy) : null;
        if (anonCreate !== null) this.#forwarded(anonCreate, sent);
        // Appended: its text is the context of the next item (inserted: its neighbours' are kept in #placed).
        if (at === null) for (const [source, context] of local) this.#seed.set(source, context);
        if (asideUsed) this.#responseInput = null;
        if (responseInput !== undefined) this.#responseInput = responseInput;
      } else if (anonCreate !== null) anonCreate.state = 'refused';
      // A redaction comes with its finding: no finding, nothing to do.
      if (action === null) return CONTINUE;
      const details = this.#details(policy, findings);
      let verdict: Verdict;
      switch (action) {
        case 'end_session':
          verdict = closeWith(new ProxyError('policy_violation', { eventId: clientEventId(ev), details }));
          break;
        case 'cancel_response':
          this.#cancelActive('cancel_response', findings.find((f) => f.action === action)!.id);
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
      findings.forEach((f, i) => this.#reportAll(policy, [f], sources[i]!, frame.type, null, t0));
      return verdict;
    };
    if (budget !== null) return Promise.all(pending).then(() => runSliced(policy, budget, finish.call(this)));
    if (pending.length > 0) return Promise.all(pending).then(() => runNow(policy, finish.call(this)));
    return runNow(policy, finish.call(this));
  }

  // ---- upstream → client: complete texts (items, parts, responses) ----------------------------

  #serverTexts(frame: Frame): Verdict | Promise<Verdict> {
    const type = frame.type;
    const policy = this.#policy;
    if (type === 'response.created') this.#responseCreated(frame);
    else if (type === 'response.done') {
      const ended = this.#responseDone(frame);
      if (ended !== null) return ended;
    }
    // A verdict still to come on an item sent without an id needs its echo, whatever the policy now,
    // and so does a create blocked before its echo (`Sent.blockedBy`: its echo is deleted; until
    // 2026-12-07 a reload to a policy with nothing to judge let that echo stay).
    if (this.#browserRedactions.length > 0 && (type === 'conversation.item.added' || type === 'conversation.item.created')) this.#copyAdded(asString(asObject(frame.json()['item'])?.['id']));
    if (idle(policy) && policy.unknownContentEvents === 'pass' && this.#anonPending === 0 && this.#lateBlocks.size === 0 && this.#blockedSent === 0) return CONTINUE;
    const t0 = this.#ctx.clock.now();
    const ev = frame.json();
    // A blocked user turn's transcript is withheld on every path it streams on: deltas and
    // `completed` (#delta, #done), and diarized `.segment`s, which may come after the item is
    // deleted (the view no longer knows it, nor its marks).
    if (type === SEGMENT && this.#blockedItems.size > 0 && this.#blockedItems.has(asString(ev['item_id']) ?? '')) return DROP;
    if (type === SEGMENT && this.#segmentsClosed.size > 0 && this.#segmentsClosed.has(asString(ev['item_id']) ?? '')) return DROP;
    // An item a call's browser wrote (over its data channel, unseen): read as a client writes it,
    // every text as input too, under the rules for the item create it was (until 2026-12-06 by its
    // role alone, and only by rules naming this server event: an assistant message or a tool output
    // passed every input rule, and a rule limited to `events: [conversation.item.create, …]`, as the
    // README advises, judged no typed item of a call).
    const browser = this.#browserItem(type, ev);
    const texts = eventTexts(browser ? 'conversation.item.create' : type, ev);
    const ruleType = browser ? `${type}|conversation.item.create` : type;
    // Where it first shows it meets the conversation's context, as a client's create does (its texts
    // each other's, in order); later events showing it again are judged alone (until 2026-12-06 every
    // one was: a phrase split over two typed items, or two parts of one, passed on a call).
    const seeds = browser && (type === 'conversation.item.added' || type === 'conversation.item.created') ? this.#browserSeeds(texts, policy) : null;
    // The echo of a create the client named by its id: no echo of one sent without an id (#noteEcho).
    let named = false;
    // An item shown again meets the context its text streamed with (#itemSeeds).
    const shown = seeds === null ? this.#shownItemSeeds(texts, policy) : null;
    if ((type === 'conversation.item.added' || type === 'conversation.item.created') && this.#sent.length > 0) {
      const echoed = asString(asObject(ev['item'])?.['id']);
      const view = echoed !== null ? this.#ctx.conversation.item(echoed) : undefined;
      if (view?.provenance === 'client' && view.transcript === 'none') named = this.#answered(view.id, texts);
      // The view follows 64 creates waiting for their echo (MAX_PENDING), this filter 256: the echo of
      // one the view let go reads as the upstream's own item, and until the twenty-second red-team
      // pass it answered nothing here, so the next echo took that create for refused and its text
      // left the context while it stood in the conversation (65 creates sent at once, then an item
      // inserted after the first, spelt a phrase past the rules:
      // test/governance/redteam-22-unanswered-creates.test.ts). Such an echo answers a create this
      // filter follows of its id, or, sent without one, of its texts and its item's type.
      else if (view?.provenance === 'server' && view.transcript === 'none') named = this.#answered(view.id, texts, view.type);
    }
    // response.created / response.done name their response in `response.id`.
    const eventResponse = asString(ev['response_id']) ?? asString(asObject(ev['response'])?.['id']);
    // Longer than one window in all (a model's long text, on each event that repeats it): the
    // texts are scanned first, window by window across macrotasks within one budget, then judged.
    // (The echo of an item the client typed is not scanned again.)
    // perf: the texts of nearly every event (a delta) fit one window with the echoes counted: no
    // filtered copy is made for them (one array per transcript delta, on the hot path).
    const budget = budgetFor(policy, ruleType, texts) && budgetFor(policy, ruleType, texts.filter((t) => !this.#typedByClient(t, type)));
    if (budget === null) return this.#judgeServerTexts(frame, policy, t0, texts, eventResponse, null, ruleType, seeds, shown, named);
    const scanned = new Map<ContentText, Evaluation>();
    const steps = function* (this: GuardrailFilter): ScanSteps<void> {
      for (const t of texts) {
        if (t.unknownContent !== undefined || this.#typedByClient(t, type)) continue;
        scanned.set(t, yield* scanFinalSteps(policy, t.source, ruleType, t.text, null, t.functionName, seeds?.get(t) ?? shown?.get(t) ?? this.#segmentSeed(t, type), t.format ?? formatOf(t.source)));
      }
    };
    return runSliced(policy, budget, steps.call(this)).then(() => this.#judgeServerTexts(frame, policy, t0, texts, eventResponse, scanned, ruleType, seeds, shown, named));
  }

  /** No room left to keep a context a redaction needs (ItemSeeds.keep): a later view of the item would undo it. */
  #seedsUntracked(): ProxyError {
    return new ProxyError('governance_failed', { message: 'Too many answers were redacted with an earlier answer as context; the session was ended.', details: { policy: this.#policy.name } });
  }

  /**
   * The context of each text of items the event shows again, whose text streamed with an earlier
   * item's end as context (#itemSeeds): that context, then the item's own texts before it, per source.
   * Null when none of them did.
   */
  #shownItemSeeds(texts: readonly ContentText[], policy: CompiledPolicy): Map<ContentText, string> | null {
    if (this.#itemSeeds.empty) return null;
    let seeds: Map<ContentText, string> | null = null;
    const running = new Map<string, string>();
    for (const t of texts) {
      if (t.itemId === null || t.unknownContent !== undefined) continue;
      const key = `${t.itemId}\u0000${t.source}`;
      const seed = running.get(key) ?? this.#itemSeeds.get(key);
      if (seed === undefined) continue;
      (seeds ??= new Map()).set(t, seed);
      running.set(key, tailOf(seed + t.text, policy.windowChars));
    }
    return seeds;
  }

  /** The context of each text of an item a call's browser wrote: the conversation's before it, then its own texts', per source. */
  #browserSeeds(texts: readonly ContentText[], policy: CompiledPolicy): Map<ContentText, string> {
    const seeds = new Map<ContentText, string>();
    const ctx = new Map<Source, string>();
    for (const t of texts) {
      if (t.unknownContent !== undefined) continue;
      const seed = ctx.get(t.source) ?? (conversationSource(t.source) ? (this.#seed.get(t.source) ?? '') : '');
      seeds.set(t, seed);
      ctx.set(t.source, tailOf(seed + t.text, policy.windowChars));
    }
    return seeds;
  }

  /**
   * An item event (`conversation.item.added`, …) showing an item a call's browser added over its data
   * channel: neither the model's (no response) nor a spoken turn, nor one this proxy forwarded. Tool
   * lists the MCP server returns are the server's own (read as tool_output, as on a WebSocket).
   */
  #browserItem(type: string, ev: JsonObject): boolean {
    if (!this.#ctx.callId || !BROWSER_ITEM_EVENTS.has(type)) return false;
    const item = asObject(ev['item']);
    const id = asString(item?.['id']);
    if (id === null || item?.['type'] === 'mcp_list_tools') return false;
    const view = this.#ctx.conversation.item(id);
    // The redacted copy of one (#replaceBrowserItem) is read as the item it stands for.
    return view !== undefined && (view.provenance === 'server' || this.#replacedItems.get(id) === 'copy') && view.responseId === null && view.transcript === 'none';
  }

  /**
   * The upstream's echo of an item the client typed (checked on its way in, every text of it, by its
   * source). Never a tool list: the upstream makes one of its own for a session's MCP server, which a
   * client's list sent without an id cannot be told from (until 2026-12-07 the server's, shown first,
   * passed as the client's echo: test/policies/redteam-17e-list-claims-pending-create.test.ts); a
   * client's is read again, as the MCP server's would be.
   */
  #typedByClient(t: ContentText, type: string): boolean {
    const item = t.itemId ? this.#ctx.conversation.item(t.itemId) : undefined;
    return item?.provenance === 'client' && item.transcript === 'none' && item.type !== 'mcp_list_tools' && type !== 'conversation.item.retrieved';
  }

  /** Diarized segments of one transcript are complete texts, but a phrase can be split across them: the earlier ones are context. */
  #segmentSeed(t: ContentText, type: string): string {
    return type === SEGMENT && t.itemId ? this.#segmentContext(t.itemId) : '';
  }

  /**
   * The context of a transcript's next diarized segment: its earlier segments, after the context its
   * transcript streams (or completes) with, the earlier turns' text. Until 2026-12-07 the first
   * segment met none: a card number said half in one turn and half in the next was redacted in the
   * second turn's transcript and shown whole in its segment
   * (test/policies/redteam-18-split-redaction.test.ts).
   */
  #segmentContext(itemId: string): string {
    // Its transcript still streaming: the context its deltas met, kept with them when #itemSeeds has
    // dropped it (until 2026-12-07 the segment met the earlier turns' text as it was now).
    return this.#segments.get(itemId)?.text ?? this.#itemSeeds.get(`${itemId}\u0000input`) ?? this.#streams.get(`input\u0000\u0000${itemId}\u00000`)?.seed ?? this.#seed.get('input') ?? '';
  }

  /**
   * Drops the oldest segment context whose end cannot begin a match: the next segment of its
   * transcript, judged with the transcript's context instead, shows at least as little as it would
   * have. False when every one could (the caller ends the session).
   */
  #dropSettledSegments(policy: CompiledPolicy): boolean {
    for (const [itemId, context] of this.#segments) {
      // Learnt once per context: a full map asks again on every new transcript's segment.
      context.open ??= endsOpen(policy, 'input', SEGMENT, context.text);
      if (context.open) continue;
      this.#segments.delete(itemId);
      return true;
    }
    // Every one could begin a match: the oldest of a transcript that has completed (or failed, or left
    // the conversation) makes room, and a later segment of it is withheld. Until 2026-12-07 these were
    // kept for the whole session, and an honest diarized call in which 256 turns ended in a number
    // ("…is 58213.") was ended at the next turn (test/policies/redteam-19g-settled-streams.test.ts).
    for (const itemId of this.#segments.keys()) {
      const transcript = this.#ctx.conversation.item(itemId)?.transcript;
      if (transcript === 'pending' || transcript === 'none') continue;
      this.#segments.delete(itemId);
      if (this.#segmentsClosed.size >= MAX_CLOSED_SEGMENTS) this.#segmentsClosed.delete(this.#segmentsClosed.values().next().value!);
      this.#segmentsClosed.add(itemId);
      return true;
    }
    return false;
  }

  /** Decides a server event's texts (`scanned`: those scanned already, in slices). */
  #judgeServerTexts(
    frame: Frame,
    policy: CompiledPolicy,
    t0: number,
    texts: readonly ContentText[],
    eventResponse: string | null,
    scanned: ReadonlyMap<ContentText, Evaluation> | null,
    ruleType = frame.type,
    seeds: ReadonlyMap<ContentText, string> | null = null,
    shown: ReadonlyMap<ContentText, string> | null = null,
    named = false,
  ): Verdict {
    const type = frame.type;
    const ev = frame.json();
    let copy: JsonObject | null = null;
    const edit = (t: ContentText, text: string): void => {
      copy ??= structuredClone(ev);
      t.set(copy, text);
    };
    const trips: { t: ContentText; findings: Finding[]; responseId: string | null }[] = [];
    /** The texts of a browser's item as forwarded (see #rememberBrowserItem). */
    const forwarded = new Map<ContentText, string>();
    const reports: { source: Source; findings: Finding[]; responseId: string | null }[] = [];
    /** The rule that redacted a browser's item where it first shows (its copy replaces it: #replaceBrowserItem). */
    let redactedBy: string | null = null;
    for (const t of texts) {
      if (t.unknownContent !== undefined) {
        if (this.#unknown(t.unknownContent, 'server').kind !== 'continue') return DROP;
        continue;
      }
      const item = t.itemId ? this.#ctx.conversation.item(t.itemId) : undefined;
      // The upstream's echo of an item the client typed was checked on its way in (every text of it, by its source).
      if (this.#typedByClient(t, type)) {
        if (t.itemId && !named && (this.#anonPending > 0 || this.#lateBlocks.size > 0)) this.#noteEcho(t.itemId, t.text);
        if (t.itemId && this.#anonPlaced > 0) this.#namePlaced(t.itemId, t.text);
        continue;
      }
      // A response id comes only with model items (user items belong to no response).
      const responseId = eventResponse ?? item?.responseId ?? null;
      // What the policy already stopped is never shown again, on any path.
      const stopped = (responseId !== null && (this.#ctx.isSuppressed(responseId) || this.#cancelled.has(responseId))) || item?.marks.some((m) => m.kind === 'blocked' || m.kind === 'cancelled') === true;
      if (stopped) {
        if (t.text.length > 0) edit(t, '');
        continue;
      }
      // Diarized segments of one transcript are complete texts, but a phrase can be split across them.
      const segmentOf = type === SEGMENT && t.itemId ? t.itemId : null;
      const seed = segmentOf !== null ? this.#segmentContext(segmentOf) : (seeds?.get(t) ?? shown?.get(t) ?? '');
      const e = scanned?.get(t) ?? scanFinal(policy, t.source, ruleType, t.text, null, t.functionName, seed, t.format ?? formatOf(t.source));
      if (segmentOf !== null && !stops(e.strongest)) {
        if (!this.#segments.has(segmentOf) && this.#segments.size >= MAX_STREAMS && !this.#dropSettledSegments(policy)) return closeWith(this.#streamsUntracked());
        this.#segments.set(segmentOf, { text: tailOf(seed + t.text, policy.windowChars), open: null });
      }
      if (stops(e.strongest)) edit(t, '');
      else if (e.redacted) {
        edit(t, e.text);
        if (seeds !== null) redactedBy ??= e.findings.find((f) => f.action === 'redact')?.id ?? null;
      }
      if (seeds !== null) forwarded.set(t, e.redacted ? e.text : t.text);
      // Findings already reported for this item (on its stream or an earlier event) are not reported again.
      // The same text shows up on several events: each finding is reported once per item.
      const fresh = t.itemId ? e.findings.filter((f) => this.#firstReport(t.itemId!, f.id)) : e.findings;
      if (t.itemId) for (const f of e.findings) this.#mark(t.itemId, f);
      reports.push({ source: t.source, findings: fresh, responseId });
      if (stops(e.strongest)) trips.push({ t, findings: e.findings, responseId });
    }
    if (type === 'conversation.item.added' || type === 'conversation.item.created') this.#placeAdded(ev, type);
    if (redactedBy !== null && trips.length === 0 && copy !== null) this.#replaceBrowserItem(ev, copy, redactedBy);
    // A browser's item that stands is context for what follows it (its text as shown), as a client's
    // is; one being replaced too, by its redacted text, until it is deleted (its place withdrawn) and
    // the copy shows: an item the browser wrote right after it shows before both (until 2026-12-07 it
    // met no context, and a phrase split over the two passed: guardrails-twentieth-survivors.test.ts).
    if (seeds !== null && trips.length === 0) this.#rememberBrowserItem(ev, texts, forwarded, policy, type);
    if (copy !== null) blankAudioOfStopped(copy, this.#ctx, this.#cancelled, trips.length > 0);
    for (const r of reports) this.#reportAll(policy, r.findings, r.source, type, r.responseId, t0);
    for (const trip of trips) {
      if (type === 'conversation.item.retrieved' && trip.t.itemId) {
        // A stored item shown on request: remove it; responses in flight did not start from it.
        this.#deleteItem(trip.t.itemId, 'blocked', trip.findings[0]!.id);
        notifyClient(this.#ctx, this.#notice(strongestOf(trip.findings)!, this.#details(policy, trip.findings)), GUARDRAILS_FILTER);
        if (strongestOf(trip.findings) === 'end_session') return closeWith(new ProxyError('policy_violation', { details: this.#details(policy, trip.findings) }));
        continue;
      }
      const v = this.#trip(policy, trip.t.source, trip.findings, trip.responseId, trip.t.itemId, type);
      if (v.kind === 'close') return v;
    }
    return copy !== null ? replace(toFrame(copy)) : CONTINUE;
  }

  #responseCreated(frame: Frame): void {
    const id = asString(asObject(frame.json()['response'])?.['id']);
    if (id === null) return;
    const hold = this.#hold;
    if (hold) {
      const byServer = hold.serverStartedEarly(id);
      // create_response is locked off, yet the server answered a turn not checked yet; or a create
      // (the client's, sent before the commit reached the proxy; the proxy's) started after the
      // upstream committed a turn still held (or blocked, its delete not confirmed): it heard that
      // turn, whoever asked for it. Stop it before any of it reaches the client.
      if (byServer || hold.startedUnchecked(id)) {
        const policy = this.#policy;
        const who = byServer ? 'the server started a response' : `a response (${this.#ctx.conversation.response(id)?.origin ?? 'unknown'} create) started`;
        this.#ctx.log.warn({ responseId: id, policy: policy.name }, `held turn: ${who} before the transcript was checked; cancelled`);
        this.#reportAll(policy, [{ id: HOLD_RULE, action: 'cancel_response', label: byServer ? 'server_started' : 'started_while_held', excerpt: null }], 'input', 'response.created', id, this.#ctx.clock.now());
        this.#cancel(id, 'cancel_response', HOLD_RULE);
        return;
      }
    }
    if (this.#cancelNext) {
      const { action, ruleId } = this.#cancelNext;
      this.#cancelNext = null;
      this.#cancel(id, action, ruleId);
      return;
    }
    if (this.#browserRedactions.length > 0) this.#startedUnredacted(id);
  }

  /**
   * Releases what streams of the response still hold, and deletes the items of a response this
   * filter stopped. A close verdict when a context a redaction needs finds no room (ItemSeeds.keep).
   */
  #responseDone(frame: Frame): Verdict | null {
    const response = asObject(frame.json()['response']);
    const id = asString(response?.['id']);
    if (id === null) return null;
    const t0 = this.#ctx.clock.now();
    for (const [key, s] of this.#streams) {
      if (s.responseId !== id) continue;
      this.#streams.delete(key);
      if (s.tripped || this.#ctx.isSuppressed(id)) continue;
      // No .done came: what settles only now (a log match at the very end, a held redaction) is reported here.
      const e = this.#scanStream(s, '', true);
      if (stops(e.strongest)) continue;
      this.#reportStream(s, e, 'response.done', t0);
      const said = streamedTextIn(response, s);
      // Its text is judged again on this response.done and later views, with its context while kept:
      // deltas redacted with one keep it (ItemSeeds.keep) when that context changed what they showed.
      if (s.redacted && s.seed !== '' && this.#seedChanged(s, said) && !this.#itemSeeds.keep(s.itemId, s.source, s.seed)) return closeWith(this.#seedsUntracked());
      if (e.text.length > 0) this.#ctx.sendClient(heldDelta(s, this.#ctx.nextEventId(), e.text), GUARDRAILS_FILTER);
      // Its text is context for the next of its source, as a .done's is (until 2026-12-07 a response
      // cancelled before its .done was none: "wire the", a cancel, then "money" in the next response
      // passed a rule on "wire the money"; test/policies/redteam-18-cancel-continue.test.ts).
      if (said !== null) this.#remember(s.source, said, s.policy, s.itemId, 'response.done');
    }
    this.#hold?.responseDone();
    this.#settleCancelled(id);
    // After those deletes: the turn's answer asked for again does not read what was cancelled.
    if (this.#browserRedactions.length > 0) this.#redactedTurnDone(id);
    return null;
  }

  /**
   * Whether a stream ended without its `.done` shows its complete text (`said`, from response.done)
   * otherwise alone than with the context it streamed with, as a `.done` asks. Until 2026-12-07 the
   * context of every such stream that redacted was kept, needed or not. Unknown counts as changed:
   * no text to judge, or one too long to scan here (this path has no scan budget).
   */
  #seedChanged(s: Stream, said: string | null): boolean {
    if (said === null || budgetFor(s.policy, 'response.done', [{ source: s.source, text: said }]) !== null) return true;
    const withSeed = scanFinal(s.policy, s.source, 'response.done', said, null, null, s.seed);
    return stops(withSeed.strongest) || scanFinal(s.policy, s.source, 'response.done', said, null, null, '').text !== withSeed.text;
  }

  /**
   * A translation session ends (`session.closed`: after the client's `session.close` the upstream
   * translates what it still had, then closes). Its transcripts have no `.done`: what their streams
   * still hold (a trailing card number, a phrase's first words, settled by nothing after them) is
   * judged as complete now and released, redacted, before the close; a stopping rule ends the session
   * with its error instead (the rest withheld). Until 2026-12-07 it was neither judged nor sent: an
   * `end_session` rule on the last words did not fire and the client lost them
   * (test/relay/translation-end.test.ts). `endedBy`: `session.closed`, or `upstream_closed` when the
   * upstream's socket ended without it (onUpstreamEnd). Null: nothing stopped the session.
   */
  #translationClosed(endedBy: string): Verdict | null {
    for (const [key, s] of this.#streams) {
      this.#streams.delete(key);
      if (s.tripped) continue;
      const t0 = this.#ctx.clock.now();
      const e = this.#scanStream(s, '', true);
      const stop = this.#streamVerdict(s, e, endedBy, t0);
      if (stop) return stop;
      if (e.text.length > 0) this.#ctx.sendClient(heldDelta(s, this.#ctx.nextEventId(), e.text), GUARDRAILS_FILTER);
    }
    return null;
  }

  /**
   * The upstream's socket ended a translation session without `session.closed` (it dropped, or closed
   * without one): its held transcripts are settled as `session.closed` settles them, one decision
   * (#translationClosed), before the client is told. An ordinary session's held text stays held: a
   * response cut off without its `.done` or `response.done` has no complete text to judge (a match
   * it held back may have gone on): its tail is withheld (test/relay/translation-end.test.ts).
   */
  onUpstreamEnd(): ProxyError | null {
    if (!this.#translation || this.#closed) return null;
    const stop = this.#translationClosed('upstream_closed');
    return stop?.kind === 'close' ? stop.error : null;
  }

  // ---- streams: deltas are held back while they can still complete a match --------------------

  #streamKey(source: Source, ev: JsonObject, type: string): string {
    return streamKeyOf(source, deltaIds(ev), type);
  }

  /** The stream of `key`, started now if new; null when nothing judges it, 'no_room' when MAX_STREAMS are kept and none can be dropped. */
  #stream(key: string, source: Source, ev: JsonObject, deltaType: string): Stream | null | 'no_room' {
    const existing = this.#streams.get(key);
    if (existing) return existing;
    const policy = this.#policy;
    const rules = rulesFor(policy, source, deltaType);
    // A translation session's transcripts have no `.done`, where the other custom guardrails judge a
    // complete text: there every one judges each delta with the text before it, as a streaming one
    // does. Until 2026-12-07 those judged nothing there (test/relay/redteam-19p-translation-customs.test.ts).
    const customs = (policy.customBySource.get(source) ?? []).filter((c) => c.streaming || this.#translation);
    if (rules.length === 0 && customs.length === 0) return null;
    if (this.#streams.size >= MAX_STREAMS && !this.#dropSettledStream()) return 'no_room';
    const ids: JsonObject = {};
    for (const k of ['response_id', 'item_id', 'output_index', 'content_index', 'call_id']) if (ev[k] !== undefined) ids[k] = ev[k];
    const seed = this.#seed.get(source) ?? '';
    this.#itemSeeds.note(asString(ev['item_id']) ?? '', source, seed);
    const s: Stream = {
      source,
      policy,
      seed,
      // A growing match is held at most as long as the text one scan runs on (see streamHoldChars).
      scanner: new TextScanner(rules, policy.windowChars, seed, formatOf(source), streamHoldChars(policy)),
      customs,
      responseId: asString(ev['response_id']),
      itemId: asString(ev['item_id']) ?? '',
      deltaType,
      ids,
      withdrawals: this.#withdrawals,
      tripped: false,
      overHeld: false,
      redacted: false,
      contextOpen: null,
    };
    this.#streams.set(key, s);
    return s;
  }

  /**
   * Streams end with their .done or response.done; an upstream that never ends them cannot grow
   * #streams without bound. Drops the oldest stream whose later deltas and `.done`, judged afresh
   * (with the source's context now), are shown as they would have been: false when there is none.
   */
  #dropSettledStream(): boolean {
    for (const [key, s] of this.#streams) {
      if (!this.#settledStream(s)) continue;
      this.#streams.delete(key);
      return true;
    }
    return false;
  }

  /**
   * Nothing held back (no match can span its end and what follows), nothing redacted (its context did
   * not change what it showed; its `.done` with another context shows at least as little), or
   * stopped where its later text is withheld without it (a blocked turn, a suppressed response).
   */
  #settledStream(s: Stream): boolean {
    if (s.tripped) return (s.source === 'input' && this.#blockedItems.has(s.itemId)) || (s.responseId !== null && this.#ctx.isSuppressed(s.responseId));
    if (s.redacted || s.scanner.held !== '') return false;
    // A streaming custom guardrail judges each delta with the text before it (`recent`), and nothing
    // says what it needs of it: started afresh it saw the delta alone (until 2026-12-07 "wire the",
    // 256 other streams, then " money" passed one stopping "wire the money"; same test file as below).
    if (s.customs.length > 0) return false;
    // Its scanner counts what it said: started afresh, a `maxChars` rule would count from 0 again
    // (until 2026-12-07 an answer capped at 40 characters streamed 66; test/policies/redteam-19g-settled-streams.test.ts).
    const rules = rulesFor(s.policy, s.source, s.deltaType);
    if (rules.some((r) => r.maxChars !== null && r.action !== 'log' && !s.scanner.hasTripped(r))) return false;
    // Nothing of its own held, but its context (the seed, when its own text so far folds to nothing: an
    // empty delta) may end in an open match that its next delta completes. Until 2026-12-07 such a
    // stream was dropped and its next delta met the source's context as it was by then (same test file).
    s.contextOpen ??= endsOpen(s.policy, s.source, s.deltaType, s.scanner.recent);
    return !s.contextOpen;
  }

  /** No stream could make room for a new one (#dropSettledStream). */
  #streamsUntracked(): ProxyError {
    return new ProxyError('governance_failed', { message: 'Too many texts were streamed at once, each still needing what it had seen; the session was ended.', details: { policy: this.#policy.name } });
  }

  #delta(frame: Frame, path: ContentPath): Verdict | Promise<Verdict> {
    const source = path.stream!;
    const policy = this.#policy;
    if (!hasSource(policy, source) && this.#blockedItems.size === 0) return CONTINUE;
    // perf: read without parsing when the frame allows it exactly (checked-members.ts), else parsed.
    const read = deltaMembers(frame);
    const itemId = read.itemId;
    if (source === 'input' && this.#blockedItems.has(itemId)) return DROP;
    const t0 = this.#ctx.clock.now();
    const key = streamKeyOf(source, read, frame.type);
    // A stream starts from the parsed event (its ids are kept as the event has them).
    const stream = this.#streams.get(key) ?? this.#stream(key, source, frame.json(), frame.type);
    if (stream === 'no_room') return closeWith(this.#streamsUntracked());
    if (!stream) return CONTINUE;
    if (stream.tripped) return DROP;
    const delta = read.delta;
    const e = this.#scanStream(stream, delta, false);
    // perf: most streams have no streaming custom guardrail: no event, callbacks or Promise per delta.
    if (stream.customs.length === 0) return this.#deltaVerdict(stream, e, frame, t0, delta);
    const event = this.#event(source, frame.type, stream.scanner.recent, delta, false, stream.responseId, itemId, null);
    const pending = this.#runCustoms(stream.policy, source, e, event, (c, v) => this.#late(c, v, source, frame.type, stream.responseId, itemId), stream.customs);
    return pending ? pending.then(() => this.#deltaVerdict(stream, e, frame, t0, delta)) : this.#deltaVerdict(stream, e, frame, t0, delta);
  }

  /**
   * What one push to a stream's scanner found: a delta (`final` false), or (`final`) the flush of
   * what it still holds when the stream ends (its `.done`, a response.done without one, a
   * translation session's close). Every path builds its evaluation here, so a rule about what a
   * push reports reaches them all. Per transcript delta: one Evaluation, nothing else (hot path).
   */
  #scanStream(stream: Stream, text: string, final: boolean): Evaluation {
    const r = stream.scanner.push(text, final);
    // What it saw last changed: whether its end could begin a match is learnt again (#settledStream).
    stream.contextOpen = null;
    const e = new Evaluation(r.text);
    e.redacted = r.redacted;
    stream.redacted ||= r.redacted;
    e.addHits(r.hits);
    // Only a push that still holds text can pass the hold bound (a final one holds nothing); reported once per stream.
    if (r.overHold && !stream.overHeld) {
      stream.overHeld = true;
      e.findings.push(scanLimitFinding(stream.policy, 'hold_limit'));
    }
    return e;
  }

  /** A streamed delta's verdict once its text was scanned (and its streaming guardrails answered). */
  #deltaVerdict(stream: Stream, e: Evaluation, frame: Frame, t0: number, delta: string): Verdict {
    const stop = this.#streamVerdict(stream, e, frame.type, t0);
    if (stop) return stop;
    if (e.text.length === 0) return DROP; // all of it is held back
    if (e.text === delta) return CONTINUE;
    return replace(toFrame(withText(frame.json(), 'delta', e.text)));
  }

  #done(frame: Frame, path: ContentPath): Verdict | Promise<Verdict> {
    const source = path.stream!;
    const type = frame.type;
    const ev = frame.json();
    const itemId = asString(ev['item_id']) ?? '';
    if (source === 'input') this.#clearTranscriptTimer(itemId);
    const key = this.#streamKey(source, ev, DELTA_OF_DONE[type] ?? type);
    const stream = this.#streams.get(key) ?? null;
    this.#streams.delete(key);
    // Kept after `completed` (bounded by #block): a `.segment` may still follow.
    if (source === 'input' && this.#blockedItems.has(itemId)) return DROP;
    if (stream?.tripped) return DROP;
    const policy = stream?.policy ?? this.#policy;
    const t0 = this.#ctx.clock.now();
    const field = DONE_FIELD[type] ?? 'text';
    const text = asString(ev[field]) ?? '';
    const responseId = asString(ev['response_id']);
    const functionName = source === 'tool_call' ? (asString(ev['name']) ?? '') : null;
    // The stream's last held text, settled now that it is complete.
    const flushed = stream ? this.#scanStream(stream, '', true) : null;
    // The complete text meets the context its deltas met (until 2026-12-07 none: a redaction reaching
    // into an earlier item was made in the deltas and undone here). Without deltas (a transcription
    // model that sends only `completed`, say) it meets the earlier text of the source now.
    const seed = stream ? stream.seed : (this.#seed.get(source) ?? '');
    if (!stream) this.#itemSeeds.note(itemId, source, seed);
    // A text left the context while this stream ran (refused, deleted): the complete text meets the context without it.
    const changedContext = stream && stream.withdrawals !== this.#withdrawals && conversationSource(source) ? (this.#seed.get(source) ?? '') : null;
    // A spoken turn's transcript comes after the items that follow it in the conversation may have
    // been judged (typed while it was transcribed): they meet its end now.
    const following = source === 'input' ? this.#followingSpoken(itemId, text, policy) : [];
    const steps = function* (): ScanSteps<{ e: Evaluation; seedMattered: boolean }> {
      const e = yield* scanFinalSteps(policy, source, type, text, stream, functionName, seed, formatOf(source));
      // The flush ran first: its hits are rules the stream has tripped, which the full-text scan leaves out.
      if (flushed) e.findings.push(...flushed.findings);
      if (changedContext !== null) {
        const hits = yield* crossSteps(policy, source, type, changedContext, text, 'context_changed');
        if (hits === null) e.addScanTime(policy);
        else e.addHits(hits.filter((h) => !e.findings.some((f) => f.id === h.rule.id)));
      }
      for (const f of following) {
        const hits = yield* crossSteps(policy, source, type, f.seed, f.next, 'next_item');
        if (hits === null) e.addScanTime(policy);
        else e.addHits(hits.filter((h) => !e.findings.some((x) => x.id === h.rule.id)));
      }
      // Redacted with its context: alone, is it shown the same? If not, its later views need that
      // context (ItemSeeds.keep). Only a redaction is scanned twice (last: the scans above come first
      // within the budget); one cut short shows the text unredacted, so the context is kept.
      const seedMattered = e.redacted && seed !== '' && !stops(e.strongest) && (yield* scanFinalSteps(policy, source, type, text, null, functionName, '', formatOf(source))).text !== e.text;
      return { e, seedMattered };
    };
    // Longer than one window: scanned window by window across macrotasks, then judged.
    const budget = budgetFor(policy, type, [{ source, text }]);
    const judge = ({ e, seedMattered }: { e: Evaluation; seedMattered: boolean }) => this.#judgeDone(e, frame, source, stream, policy, t0, text, responseId, itemId, functionName, flushed, seedMattered ? seed : null);
    if (budget === null) return judge(runNow(policy, steps()));
    return runSliced(policy, budget, steps()).then(judge);
  }

  /**
   * The rest of a `.done`'s decision, once its complete text is scanned: custom guardrails, then the
   * verdict. `seedToKeep`: the context its redaction needed (ItemSeeds.keep), kept if it stands.
   */
  #judgeDone(e: Evaluation, frame: Frame, source: Source, stream: Stream | null, policy: CompiledPolicy, t0: number, text: string, responseId: string | null, itemId: string, functionName: string | null, flushed: Evaluation | null, seedToKeep: string | null): Verdict | Promise<Verdict> {
    const type = frame.type;
    const ev = frame.json();
    const field = DONE_FIELD[type] ?? 'text';
    const pending = this.#runCustoms(policy, source, e, this.#event(source, type, text, null, true, responseId, itemId, functionName), (c, v) => this.#late(c, v, source, type, responseId, itemId));
    const finish = (): Verdict => {
      const target: StreamOwner = stream ?? { source, policy, responseId, itemId, tripped: false };
      const stop = this.#streamVerdict(target, e, type, t0);
      if (stop) return stop;
      if (seedToKeep !== null && !this.#itemSeeds.keep(itemId, source, seedToKeep)) return closeWith(this.#seedsUntracked());
      // Context for the next text of the source only once it stands (a stopped one is deleted upstream).
      this.#remember(source, text, policy, itemId, type);
      // The transcript passed (a redaction changes what is shown, not what the model heard); only user items are held.
      this.#hold?.passed(itemId);
      if (source === 'input') this.#placeTranscript(itemId, e.text, policy);
      if (flushed && flushed.text.length > 0 && !(responseId && this.#ctx.isSuppressed(responseId))) {
        this.#ctx.sendClient(heldDelta(stream!, this.#ctx.nextEventId(), flushed.text), GUARDRAILS_FILTER);
      }
      return e.redacted ? replace(toFrame(withText(ev, field, e.text))) : CONTINUE;
    };
    return pending ? pending.then(finish) : finish();
  }

  /** Reports a stream's findings; when they stop it, applies the trip and returns the verdict. */
  #streamVerdict(stream: StreamOwner, e: Evaluation, eventType: string, t0: number): Verdict | null {
    this.#reportStream(stream, e, eventType, t0);
    if (!stops(e.strongest)) return null;
    stream.tripped = true;
    return this.#trip(stream.policy, stream.source, e.findings, stream.responseId, stream.itemId || null, eventType);
  }

  /** Reports a stream's findings not reported for its item yet, and marks the item. */
  #reportStream(stream: StreamOwner, e: Evaluation, eventType: string, t0: number): void {
    const fresh = stream.itemId ? e.findings.filter((f) => this.#firstReport(stream.itemId, f.id)) : e.findings;
    if (stream.itemId) for (const f of e.findings) this.#mark(stream.itemId, f);
    this.#reportAll(stream.policy, fresh, stream.source, eventType, stream.responseId, t0);
  }

  // ---- the decision, once stopped ---------------------------------------------------------------

  /**
   * A text tripped block, cancel_response or end_session. Model content (output, tool calls and
   * outputs) stops its response: `response.cancel`, the relay withholds the rest, and its items
   * are deleted upstream once it is done. User content (input) deletes the user item and cancels
   * the response started from it (or the next one). Content of a finished response (a retrieve)
   * deletes that item. end_session closes.
   */
  #trip(policy: CompiledPolicy, source: Source, findings: readonly Finding[], responseId: string | null, itemId: string | null, eventType: string): Verdict {
    const action = strongestOf(findings)!;
    const details = this.#details(policy, findings);
    const ruleId = findings.find((f) => f.action === action)!.id;
    // A translation session has no response to cancel and no item to delete: the translated audio
    // already spoken cannot be recalled, so a block (or cancel_response) ends it as end_session does.
    if (action === 'end_session' || this.#translation) return closeWith(new ProxyError('policy_violation', { details }));
    if (this.#hold?.isHeld(itemId)) {
      // A held turn (only user items are): every response that started since its commit was
      // cancelled as it started (#responseCreated), and one that starts before the upstream
      // confirms the delete is too (the hold tracks the delete).
      this.#block(itemId);
      this.#deleteItem(itemId, 'blocked', ruleId);
      // Nothing else to cancel: the turn is blocked whatever the rule's action.
      notifyClient(this.#ctx, this.#notice('block', details), GUARDRAILS_FILTER);
      this.#hold.blocked(itemId);
      return DROP;
    }
    if (source === 'input' || source === 'image') {
      const item = itemId ? this.#ctx.conversation.item(itemId) : undefined;
      if (itemId && (item === undefined || item.provenance !== 'model')) {
        this.#block(itemId);
        this.#deleteItem(itemId, 'blocked', ruleId);
      }
      if (!this.#cancelActive(action, ruleId)) notifyClient(this.#ctx, this.#notice(action, details), GUARDRAILS_FILTER);
      return DROP;
    }
    const active = responseId !== null && this.#ctx.conversation.activeResponses().includes(responseId);
    if (active) {
      if (!this.#noteCancelled(responseId, itemId)) return closeWith(this.#cancelsUntracked());
      if (itemId) this.#ctx.markItem(itemId, { kind: 'cancelled', by: GUARDRAILS_FILTER, rule: ruleId });
      this.#ctx.cancelResponse(responseId, GUARDRAILS_FILTER, this.#notice(action, details));
    } else if (itemId) {
      // A finished response's item (shown again, e.g. retrieved): remove it from the conversation.
      this.#deleteItem(itemId, 'blocked', ruleId);
      if (eventType !== 'response.done') notifyClient(this.#ctx, this.#notice(action, details), GUARDRAILS_FILTER);
    } else if (responseId === null) {
      notifyClient(this.#ctx, this.#notice(action, details), GUARDRAILS_FILTER);
    }
    return DROP;
  }

  /** Later transcript events of a blocked user item are withheld (the last 256 items). */
  #block(itemId: string): void {
    this.#blockedItems.add(itemId);
    if (this.#blockedItems.size > 256) this.#blockedItems.delete(this.#blockedItems.values().next().value!);
  }

  /**
   * Remembers a response this filter cancels and the item that tripped in it (MAX_CANCELLED_RESPONSES);
   * false when it cannot (the caller ends the session: nothing of it may be forgotten).
   */
  #noteCancelled(responseId: string, itemId: string | null): boolean {
    // Responses already done whose response.done did not settle them: settled now (their items deleted).
    if (!this.#cancelled.has(responseId) && this.#cancelled.full) {
      const active = this.#ctx.conversation.activeResponses();
      for (const id of this.#cancelled.responseIds()) if (!active.includes(id)) this.#settleCancelled(id);
    }
    return this.#cancelled.note(responseId, itemId);
  }

  /** A cancelled response is done: it and the items it tripped are forgotten, and all its items are deleted upstream. */
  #settleCancelled(responseId: string): void {
    const ids = this.#cancelled.take(responseId);
    if (!ids) return;
    // The view has learnt this response.done already: its items include those of `response.output`.
    for (const itemId of this.#ctx.conversation.response(responseId)?.itemIds ?? []) ids.add(itemId);
    for (const itemId of ids) this.#deleteItem(itemId, 'cancelled');
  }

  #cancelsUntracked(): ProxyError {
    return new ProxyError('governance_failed', { message: 'Too many responses or items were stopped by policy at once to keep track of; the session was ended.', details: { policy: this.#policy.name } });
  }

  #deleteItem(itemId: string, kind: 'blocked' | 'cancelled', ruleId: string | null = null): void {
    this.#ctx.markItem(itemId, { kind, by: GUARDRAILS_FILTER, rule: ruleId });
    if (this.#deleted.has(itemId)) return;
    this.#deleted.add(itemId);
    if (this.#deleted.size > 1024) this.#deleted.delete(this.#deleted.values().next().value!);
    this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: itemId }, GUARDRAILS_FILTER);
    this.#ctx.markItem(itemId, { kind: 'deleted', by: GUARDRAILS_FILTER, rule: ruleId });
  }

  /**
   * An item id the upstream confirmed deleted: a later item with it is new (deleted and reported again
   * when it trips). Until 2026-12-07 the id stayed in #deleted, and a blocked item re-added under its old
   * id was "deleted" into that set and stayed in the conversation (test/calls/redteam-17-reused-item-id.test.ts).
   */
  #freeItemId(itemId: string): void {
    this.#deleted.delete(itemId);
    // A replaced original (or a copy): an item the browser gives its id later is a new one, replaced
    // when a redaction changes it (until 2026-12-07 it was skipped as "already replaced", its address
    // left in the conversation: test/calls/redteam-21-browser-item-id-reused.test.ts).
    this.#replacedItems.delete(itemId);
    if (this.#reported.size === 0) return;
    const prefix = `${itemId}\u0000`;
    for (const key of this.#reported) if (key.startsWith(prefix)) this.#reported.delete(key);
  }

  /** True the first time a rule is reported for an item (bounded memory). */

  #firstReport(itemId: string, ruleId: string): boolean {
    const key = `${itemId}\u0000${ruleId}`;
    if (this.#reported.has(key)) return false;
    if (this.#reported.size >= 4096) this.#reported.delete(this.#reported.values().next().value!);
    this.#reported.add(key);
    return true;
  }

  #mark(itemId: string, f: Finding): void {
    if (f.action === 'log') return;
    const kind = f.action === 'redact' ? 'redacted' : f.action === 'block' ? 'blocked' : 'cancelled';
    this.#ctx.markItem(itemId, { kind, by: GUARDRAILS_FILTER, rule: f.id });
  }

  /** Cancels every response in flight (or arms a cancel for the next one); true when one was cancelled. */
  #cancelActive(action: Action, ruleId: string): boolean {
    const active = this.#ctx.conversation.activeResponses();
    if (active.length === 0) {
      // With held turns no response starts before the offending item is deleted: nothing to arm.
      if (!this.#hold) this.#cancelNext = { action, ruleId };
      return false;
    }
    for (const id of [...active]) this.#cancel(id, action, ruleId);
    return true;
  }

  #cancel(responseId: string, action: Action, ruleId: string): void {
    const policy = this.#policy;
    if (!this.#noteCancelled(responseId, null)) this.#ctx.close(this.#cancelsUntracked());
    this.#ctx.cancelResponse(responseId, GUARDRAILS_FILTER, this.#notice(action, { policy: policy.name, policyVersion: policy.version, rule: ruleId, action }));
  }

  #notice(action: Action, details: Readonly<Record<string, string | number | boolean | null>>): ProxyError {
    return action === 'block' ? new ProxyError('guardrail_blocked', { details }) : new ProxyError('response_cancelled_by_policy', { details });
  }

  // ---- input speech whose transcript failed or did not arrive ---------------------------------

  #committed(frame: Frame): Verdict {
    const { action, timeoutMs: failAfter } = this.#policy.transcriptionFailure;
    const hold = this.#hold;
    // A held turn always has a deadline: the hold's, or the failure policy's when shorter. Unheld,
    // only a failure action that stops the turn needs one.
    const timeoutMs = hold ? Math.min(hold.timeoutMs, failAfter ?? Infinity) : action === 'pass' ? null : failAfter;
    if (timeoutMs === null) return CONTINUE;
    const itemId = asString(frame.json()['item_id']);
    if (!itemId) return CONTINUE;
    if (hold && !hold.committed(itemId)) {
      this.#holdOverflow(itemId);
      return CONTINUE;
    }
    if (this.#transcriptTimers.has(itemId) || this.#transcriptTimers.size >= 64) return CONTINUE;
    // onClose clears every timer: one that fires, fires for an open session.
    const timer = this.#ctx.setTimer(timeoutMs, () => {
      this.#transcriptTimers.delete(itemId);
      this.#failClosed(itemId, 'timeout');
    });
    this.#transcriptTimers.set(itemId, timer);
    return CONTINUE;
  }

  /** More turns waiting for their transcripts than a session may hold: this one is not answered (fail closed). */
  #holdOverflow(itemId: string): void {
    const policy = this.#policy;
    const finding: Finding = { id: HOLD_RULE, action: 'block', label: 'too_many_held_turns', excerpt: null };
    this.#reportAll(policy, [finding], 'input', AUDIO_COMMITTED, null, this.#ctx.clock.now());
    this.#block(itemId);
    this.#deleteItem(itemId, 'blocked', HOLD_RULE);
    this.#hold?.deleting(itemId);
    notifyClient(
      this.#ctx,
      new ProxyError('guardrail_blocked', { message: 'Too many spoken turns are waiting for their transcripts; this one was removed unanswered.', details: this.#details(policy, [finding]) }),
      GUARDRAILS_FILTER,
    );
  }

  #clearTranscriptTimer(itemId: string): void {
    clearTimeout(this.#transcriptTimers.get(itemId));
    this.#transcriptTimers.delete(itemId);
  }

  #transcriptionFailed(frame: Frame): Verdict {
    const policy = this.#policy;
    const itemId = asString(frame.json()['item_id']) ?? '';
    this.#clearTranscriptTimer(itemId);
    this.#streams.delete(`input\u0000\u0000${itemId}\u00000`);
    if (policy.transcriptionFailure.action === 'pass') {
      if (hasSource(policy, 'input')) this.#ctx.log.warn({ itemId, policy: policy.name }, 'input transcription failed: input rules could not check this turn');
      this.#hold?.passed(itemId);
      return CONTINUE;
    }
    this.#failClosed(itemId, 'failed');
    return CONTINUE;
  }

  #failClosed(itemId: string, why: 'failed' | 'timeout'): void {
    const policy = this.#policy;
    const action = policy.transcriptionFailure.action;
    const id = `input-transcription-${why}`;
    const eventType = why === 'failed' ? TRANSCRIPTION_FAILED : 'input_transcription.timeout';
    if (action === 'pass') {
      // A held turn's deadline (or a policy reloaded to `pass` while waiting): it goes on unchecked, as the policy chose.
      this.#reportAll(policy, [{ id, action: 'log', label: why, excerpt: null }], 'input', eventType, null, this.#ctx.clock.now());
      this.#hold?.passed(itemId);
      return;
    }
    const finding: Finding = { id, action: action === 'end_session' ? 'end_session' : 'block', label: why, excerpt: null };
    this.#reportAll(policy, [finding], 'input', eventType, null, this.#ctx.clock.now());
    if (action === 'end_session') {
      this.#ctx.close(new ProxyError('policy_violation', { details: this.#details(policy, [finding]) }));
      return;
    }
    this.#trip(policy, 'input', [finding], null, itemId, TRANSCRIPTION_FAILED);
  }

  // ---- shared pieces --------------------------------------------------------------------------

  /**
   * Where a client item goes when it is not appended: the index in #placed it follows (-1: the
   * start, `previous_item_id: "root"`); null when it goes at the end (no `previous_item_id`, or
   * after the last placed item), or after an item not placed (not typed by the client: its
   * neighbours are unknown, the arrival order stands).
   */
  #insertionPoint(ev: JsonObject): number | null {
    const previous = asString(ev['previous_item_id']);
    if (previous === null) return null;
    const at = previous === 'root' ? -1 : this.#placed.findIndex((p) => p.key === previous);
    if ((at < 0 && previous !== 'root') || at === this.#placed.length - 1) return null;
    return at;
  }

  /** The end of the placed texts of `source` up to index `at` (inclusive), up to `keep` characters, as a seed. */
  #placedBefore(at: number, source: Source, keep: number, withTools = false): string {
    let seed = '';
    for (let i = at; i >= 0 && seed.length < keep; i--) if (readsAs(this.#placed[i]!, source, withTools)) seed = this.#placed[i]!.tail + seed;
    // Short of a window at the first kept place: the text of the places forgotten before it.
    const forgotten = this.#forgotten?.get(readingKey(source, withTools));
    if (forgotten !== undefined && seed.length < keep) seed = forgotten + seed;
    return seed.length > keep ? seed.slice(seed.length - keep) : seed;
  }

  /** The start of the placed texts of `source` after index `at`, up to `keep` characters (null: none). */
  #placedAfter(at: number, source: Source, keep: number, withTools = false): string | null {
    let next: string | null = null;
    for (let i = at + 1; i < this.#placed.length && (next?.length ?? 0) < keep; i++) {
      if (readsAs(this.#placed[i]!, source, withTools)) next = next === null ? this.#placed[i]!.head : `${next} ${this.#placed[i]!.head}`;
    }
    return next;
  }

  /**
   * A spoken turn's transcript (complete) between the typed items around its place: it arrives after
   * them when they were typed while it was transcribed (after it, or inserted before it), so they met
   * none of it, and its stream met the context in arrival order (until 2026-12-06: speaking `ignore
   * previous` and typing `instructions` before its transcript came passed every input rule). Pairs of
   * context and text to scan across; input context both ways (typed tool outputs skipped, and read as input).
   */
  #followingSpoken(itemId: string, text: string, policy: CompiledPolicy): { seed: string; next: string }[] {
    const at = itemId === '' ? -1 : this.#placed.findIndex((p) => p.key === itemId);
    if (at < 0) return [];
    const keep = policy.windowChars;
    const out: { seed: string; next: string }[] = [];
    for (const withTools of [false, true]) {
      const before = this.#placedBefore(at - 1, 'input', keep, withTools);
      if (before !== '' && !out.some((o) => o.seed === before && o.next === text)) out.push({ seed: before, next: text });
      const next = this.#placedAfter(at, 'input', keep, withTools);
      if (next !== null && !out.some((o) => o.next === next)) out.push({ seed: tailOf(before + text, keep), next });
    }
    return out;
  }

  /**
   * The conversation texts of a referenced item whose place is kept (a client-typed item, a checked
   * spoken turn), by source: a tool output the client typed was read as `input` too. None for an
   * item not kept (a model item, one past the last MAX_PLACED).
   */
  #referenced(id: string): { source: Source; placed: Placed; format: TextFormat }[] {
    const placed = this.#placed.find((p) => p.key === id);
    if (placed === undefined || placed.source === null) return [];
    if (placed.source !== 'tool_output') return [{ source: placed.source, placed, format: formatOf(placed.source) }];
    return [
      { source: 'tool_output', placed, format: 'json' },
      { source: 'input', placed, format: 'json' },
    ];
  }

  /** A client item the rules let through takes its place (at the end, or where `previous_item_id` puts it). */
  #place(ev: JsonObject, at: number | null, evaluations: readonly { t: ContentText; e: Evaluation }[], policy: CompiledPolicy): Placed | null {
    const texts = evaluations.filter((x) => conversationSource(x.t.source));
    if (texts.length === 0) return null;
    const first = texts[0]!;
    const last = texts.filter((x) => x.t.source === first.t.source).at(-1)!;
    const id = asString(asObject(ev['item'])?.['id']);
    const entry: Placed = {
      key: id ?? `anon:${++this.#anonPlaced}`,
      source: first.t.source,
      head: headOf(first.e.text, policy.windowChars),
      tail: tailOf(last.e.text, policy.windowChars),
      print: id === null ? fingerprint(first.e.text) : null,
    };
    if (at === null) this.#placed.push(entry);
    else this.#placed.splice(at + 1, 0, entry);
    this.#keepPlaces();
    return entry;
  }

  // ---- what the upstream refuses is no context ------------------------------------------------

  /**
   * A client item create went upstream (its conversation texts are context now): kept as unanswered
   * with what it added to the context (appended: `#seed`; inserted: its place), so a refusal can take
   * it out again. Until 2026-12-05 an item the upstream refused (an unknown `previous_item_id`, an
   * id already used, an invalid item) stayed context and could push earlier text out of the window.
   */
  #sentItem(ev: JsonObject, at: number | null, evaluations: readonly { t: ContentText; e: Evaluation }[], placed: Placed | null, eventType: string, policy: CompiledPolicy): Sent | null {
    const texts = evaluations.filter((x) => conversationSource(x.t.source));
    const itemId = asString(asObject(ev['item'])?.['id']);
    // One sent without an id is followed whatever its texts: a late verdict on any of them (an image's)
    // finds its echo by this create (until 2026-12-07 only input / tool-output text was followed, and
    // an image-only item's late block deleted the first echo of its URL: an identical twin let through).
    if (texts.length === 0 && (itemId !== null || evaluations.length === 0)) return null;
    // Only an item sent without an id needs its texts' fingerprints (its echo is found by them).
    const prints = itemId === null ? [...new Set(evaluations.filter((x) => x.e.text.length > 0).map((x) => fingerprint(x.e.text)))] : [];
    // The client's event_id only pairs with the relay's stamp (pairStamp): a long one as its hash.
    const clientEvent = asString(ev['event_id']);
    const itemType = asString(asObject(ev['item'])?.['type']) ?? '';
    const sent: Sent = { seq: this.#sentSeq++, itemId, eventId: clientEvent === null ? null : keptId(clientEvent), upstreamId: null, prints, itemType, placed, blockedBy: null, refused: false };
    if (this.#sent.length >= MAX_SENT) this.#forgetSent(this.#unfollow(this.#sent.splice(0, 1))[0]!);
    this.#sent.push(sent);
    if (at !== null) return sent;
    for (const source of CONVERSATION_SOURCES) {
      const own = texts.filter((x) => x.t.source === source).map((x) => x.t.text);
      if (own.length > 0) this.#said.push({ source, eventType, ...saidText(own, policy.windowChars), sent, itemId: null });
    }
    this.#settle();
    return sent;
  }

  /** Past MAX_SAID the oldest item's part joins the base: it stays context whatever becomes of the item. */
  #settle(): void {
    const keep = this.#policy.windowChars;
    while (this.#said.length > MAX_SAID) {
      const said = this.#said.shift()!;
      this.#saidBase.set(said.source, contextAfter(this.#saidBase.get(said.source) ?? '', said, keep));
    }
  }

  /**
   * An upstream `error` naming the `event_id` an unanswered client item create left with: the
   * upstream refused it. Only the relay's id counts (see `Sent.upstreamId`).
   */
  #refusedBy(ev: JsonObject): void {
    const named = asString(asObject(ev['error'])?.['event_id']);
    const at = named === null ? -1 : this.#sent.findIndex((s) => s.upstreamId === named);
    if (at >= 0) this.#takeOut(this.#unfollow(this.#sent.splice(at, 1)));
  }

  /**
   * The upstream echoed a client item: it is in the conversation (found by its id, or by its texts
   * when sent without one). The upstream answers in order: every item sent before it and not
   * echoed was refused (an `error` without an `event_id` names none). True: found by the id the
   * client gave it, so every create before it is settled (#settledBefore) and the late blocks still
   * waiting for an echo (creates no longer followed, all sent before it) will get none: they go.
   * `unpairedType`: the echo's item type when the conversation view did not pair it with a create
   * (it let the create go): a create sent without an id is then answered only by an item of its type.
   */
  #answered(itemId: string, texts: readonly ContentText[], unpairedType: string | null = null): boolean {
    let at = this.#sent.findIndex((s) => s.itemId === itemId);
    const named = at >= 0;
    if (!named && this.#sent.some((s) => s.itemId === null)) {
      const prints = new Set(texts.filter((t) => t.text.length > 0).map((t) => fingerprint(t.text)));
      // A late block waits for an echo of these texts: the create it blocked is no longer followed,
      // so sent before every followed one, and answered first: this is its echo (#noteEcho), not a
      // followed twin's (until 2026-12-07 it was taken for the twin's: the twin's own echo then
      // passed, blocked or not, and every create before the twin was taken for refused).
      if (this.#lateBlocks.size === 0 || ![...prints].some((p) => this.#lateBlocks.has(p))) at = this.#sent.findIndex((s) => s.itemId === null && (unpairedType === null || s.itemType === unpairedType) && s.prints.some((p) => prints.has(p)));
    }
    if (at < 0) return false;
    if (named) {
      this.#settledBefore = this.#sent[at]!.seq;
      this.#lateBlocks.clear();
    }
    const answered = this.#unfollow(this.#sent.splice(0, at + 1));
    const echoed = answered.pop()!;
    echoed.itemId = itemId;
    // Its place learns its id from the create it answers (a twin of the same text placed earlier keeps its own).
    if (echoed.placed !== null && echoed.placed.key.startsWith('anon:') && !this.#isPlaced(itemId)) echoed.placed.key = itemId;
    if (echoed.blockedBy !== null) this.#deleteItem(itemId, 'blocked', echoed.blockedBy);
    if (answered.length > 0) this.#takeOut(answered);
    return named;
  }

  /**
   * A followed create (in #sent, not echoed yet) blocked: its echo is deleted (#answered). The first
   * block names the deletion, whichever came first (a late custom verdict or a built-in rule's
   * retraction), as an echoed item's deletion is named by its first (`#deleteItem`); until 2026-12-07 a
   * retraction overwrote an earlier late block's rule, and a late block kept an earlier retraction's.
   */
  #blockSent(sent: Sent, ruleId: string): void {
    if (sent.blockedBy !== null) return;
    sent.blockedBy = ruleId;
    this.#blockedSent++;
  }

  /** Creates taken out of #sent (answered, refused, or past MAX_SENT): the blocked ones no longer count (#blockedSent). */
  #unfollow(gone: Sent[]): Sent[] {
    for (const sent of gone) if (sent.blockedBy !== null) this.#blockedSent--;
    return gone;
  }

  /**
   * A create no longer followed (past MAX_SENT unanswered): one blocked before its echo falls back to
   * the next echo of its texts (`#lateBlocks`), as a late custom verdict does.
   */
  #forgetSent(sent: Sent): void {
    if (sent.blockedBy === null) return;
    for (const p of sent.prints) {
      if (this.#lateBlocks.size >= MAX_LATE_BLOCKS) return this.#untracked();
      this.#lateBlocks.set(p, sent.blockedBy);
    }
  }

  /**
   * Client items the upstream refused leave the context: the context of each conversation source is
   * built again without them, and every item after one of them that the text before it now meets
   * (within the window) is judged again against it. One that trips a rule stronger than `redact`
   * is deleted upstream (by its id, or at its echo), and the response it may have started is
   * cancelled, as a late verdict on a client item is; its text leaves the context too.
   */
  #takeOut(gone: readonly Sent[]): void {
    for (const sent of gone) sent.refused = true;
    const out = new Set<Sent>(gone);
    this.#unplace(
      gone.flatMap((sent) => (sent.placed ? [sent.placed] : [])),
      () => this.#withdraw(new Set(this.#said.filter((said) => said.sent !== null && out.has(said.sent)))),
    );
  }

  /**
   * Items that left the conversation (refused, or deleted) lose their places, and `withdraw` takes
   * their text out of the appended context (`#withdraw`). The typed item of the same source that now
   * follows the text before a removed one, inserted or appended, is judged against it: it may never
   * have met it (it was inserted, or something was inserted before it). One that trips a rule
   * stronger than `redact` is removed as a late verdict removes a client item (once: `#withdraw` may
   * have blamed it already); its deletion judges what follows it in turn. (Until 2026-12-05 only
   * appended items were judged again: deleting an inserted item joined the halves of a phrase.)
   */
  #unplace(gone: readonly Placed[], withdraw: () => void): void {
    const meets: { next: Placed; source: Source }[] = [];
    for (const entry of gone) {
      const i = this.#placed.indexOf(entry);
      if (i < 0) continue;
      this.#placed.splice(i, 1);
      if (entry.source === null) continue;
      const meet = (next: Placed | undefined, source: Source): void => {
        if (next && !meets.some((m) => m.next === next && m.source === source)) meets.push({ next, source });
      };
      meet(this.#placed.slice(i).find((p) => p.source === entry.source), entry.source);
      // Input text also meets the tool outputs the client typed (read as input too), both ways.
      if (readsAs(entry, 'input', true)) meet(this.#placed.slice(i).find((p) => readsAs(p, 'input', true)), 'input');
    }
    withdraw();
    const policy = this.#policy;
    for (const { next, source } of meets) {
      const at = this.#placed.indexOf(next);
      if (at < 0 || this.#deleted.has(next.key) || (next.print !== null && this.#lateBlocks.has(next.print)) || (this.#blockedSent > 0 && this.#sent.some((s) => s.placed === next && s.blockedBy !== null))) continue;
      let hits = crossHits(policy, source, 'conversation.item.create', this.#placedBefore(at - 1, source, policy.windowChars), next.head, 'refused_item');
      if (hits.length === 0 && source === 'input') hits = crossHits(policy, source, 'conversation.item.create', this.#placedBefore(at - 1, source, policy.windowChars, true), next.head, 'refused_item');
      if (hits.length === 0) continue;
      const said = this.#saidOf(next);
      if (said !== null) this.#retract(said, hits, policy, source);
    }
  }

  /** What a placed item added to the context, as `#retract` takes it: its own, or one made from its place (null: it cannot be named). */
  #saidOf(entry: Placed): Said | null {
    const own = this.#said.find((said) => (said.sent !== null ? said.sent.placed === entry : said.itemId === entry.key));
    if (own !== undefined) return own;
    const sent = this.#sent.find((s) => s.placed === entry) ?? null;
    const anon = entry.key.startsWith('anon:');
    // Sent without an id and no longer waiting for its echo: nothing left to name it by.
    if (anon && sent === null) return null;
    return { source: entry.source!, eventType: 'conversation.item.create', head: entry.head, tail: entry.tail, long: false, sent, itemId: anon ? null : entry.key };
  }

  /** Texts that left the conversation leave the context; what follows them is judged again (see #takeOut). */
  #withdraw(dropped: Set<Said>): void {
    if (dropped.size === 0) return;
    this.#withdrawals++;
    const policy = this.#policy;
    const keep = policy.windowChars;
    const blamed: { said: Said; hits: RuleHit[] }[] = [];
    const contexts = new Map<Source, string>();
    // A blamed item's text of the other source leaves too: once more until nothing changes.
    for (let size = -1; size !== dropped.size; ) {
      size = dropped.size;
      for (const source of CONVERSATION_SOURCES) {
        let context = this.#saidBase.get(source) ?? '';
        // Characters since the last text taken out (none yet: nothing to judge again).
        let since = Infinity;
        for (const said of this.#said) {
          if (said.source !== source) continue;
          if (dropped.has(said)) {
            since = 0;
            continue;
          }
          const hits = since < keep ? crossHits(policy, source, said.eventType, context, said.head, 'refused_item') : [];
          if (hits.length > 0) {
            blamed.push({ said, hits });
            dropped.add(said);
            for (const other of this.#said) if (said.sent !== null && other.sent === said.sent) dropped.add(other);
            since = 0;
            continue;
          }
          context = contextAfter(context, said, keep);
          since += said.long ? keep : said.head.length + 1;
        }
        contexts.set(source, context);
      }
    }
    for (const [source, context] of contexts) if (this.#said.some((said) => said.source === source && dropped.has(said))) this.#seed.set(source, context);
    for (let i = this.#said.length - 1; i >= 0; i--) if (dropped.has(this.#said[i]!)) this.#said.splice(i, 1);
    this.#settle();
    for (const b of blamed) this.#retract(b.said, b.hits, policy);
  }

  /** An item judged again without a refused item before it tripped: removed, as a late verdict removes a client item. */
  #retract(said: Said, hits: readonly RuleHit[], policy: CompiledPolicy, source = said.source): void {
    // Until 2026-12-06 an end_session finding was reported twice (an end_session retraction deletes nothing for #unplace to skip).
    if (this.#retractEnded) return;
    const findings: Finding[] = hits.map((h) => ({ id: h.rule.id, action: h.rule.action, label: h.label, excerpt: h.excerpt }));
    this.#reportAll(policy, findings, source, said.eventType, null, this.#ctx.clock.now());
    const action = strongestOf(findings)!;
    const ruleId = findings.find((f) => f.action === action)!.id;
    const details = this.#details(policy, findings);
    if (action === 'end_session') {
      this.#retractEnded = true;
      return this.#ctx.close(new ProxyError('policy_violation', { details }));
    }
    const itemId = said.sent !== null ? said.sent.itemId : said.itemId;
    if (itemId !== null) {
      // A spoken turn's later transcript events are withheld too.
      if (said.sent === null) this.#block(itemId);
      this.#deleteItem(itemId, 'blocked', ruleId);
    } else if (this.#sent.includes(said.sent!)) {
      // Not echoed yet (sent without an id): the echo that answers this very create is deleted (#answered).
      this.#blockSent(said.sent!, ruleId);
    } else if (!this.#blockEchoed(said.sent!, said.sent!.prints, ruleId)) {
      // No longer followed and no room to wait for its echo (the session is ended), nothing for
      // #unplace to skip: until 2026-12-06 reported twice, as end_session was.
      this.#retractEnded = true;
      return;
    }
    if (!this.#cancelActive(action, ruleId)) notifyClient(this.#ctx, this.#notice(action, details), GUARDRAILS_FILTER);
  }

  /**
   * The upstream added an item. One the client typed is placed already (by id, or named from this
   * echo); any other (a model item, a spoken turn, a client item without text) takes its place
   * here, without text, so an item inserted after it meets its real neighbours.
   */
  #placeAdded(ev: JsonObject, type: string): void {
    const item = asObject(ev['item']);
    const id = asString(item?.['id']);
    if (id === null || this.#isPlaced(id)) return;
    const previous = asString(ev['previous_item_id']);
    const after = previous === null ? -1 : this.#placed.findIndex((p) => p.key === previous);
    if (previous !== null && after < 0 && isSpokenTurn(item) && this.#mayBeForgotten(previous) && hasSource(this.#policy, 'input')) {
      this.#spokenAfterForgotten(id, type);
      return;
    }
    const entry: Placed = { key: id, source: null, head: '', tail: '', print: null };
    // After an item no longer kept (or never seen): at the end, where the upstream adds items.
    if (previous !== null && after < 0) this.#placed.push(entry);
    else this.#placed.splice(after + 1, 0, entry);
    this.#keepPlaces();
  }

  /**
   * Past MAX_PLACED the first place of the conversation is forgotten, its text kept as the end of
   * what comes before the first kept place (#forgotten), so an item inserted near the start of what is
   * kept still meets the text before it (until the twenty-second red-team pass it met nothing there).
   */
  #keepPlaces(): void {
    if (this.#placed.length <= MAX_PLACED) return;
    const gone = this.#placed.shift()!;
    // Listed while every earlier one is (the list stays a prefix of the conversation: its first is the oldest item).
    if (this.#forgottenIdsAll && this.#forgottenIds.length < MAX_FORGOTTEN_IDS && gone.key.length <= MAX_FORGOTTEN_ID_CHARS) this.#forgottenIds.push(gone.key);
    else this.#forgottenIdsAll = false;
    const keep = this.#policy.windowChars;
    const forgotten = (this.#forgotten ??= new Map());
    for (const { source, withTools } of PLACE_READINGS) {
      if (!readsAs(gone, source, withTools)) continue;
      const key = readingKey(source, withTools);
      const joined = (forgotten.get(key) ?? '') + gone.tail;
      forgotten.set(key, joined.length > keep ? joined.slice(joined.length - keep) : joined);
    }
  }

  /**
   * The item a client event puts text next to whose place is no longer kept, or null. Once a place is
   * forgotten (#keepPlaces) an unknown `previous_item_id` may name a forgotten item, whose neighbours
   * here are unknown, and so is the item after `root`; a reference to an item not kept has no text
   * here. Such an event is refused while the policy reads the conversation's text (input, tool
   * outputs): until the twenty-second red-team pass an insertion after an item 128 items back was
   * judged in arrival order, and a reference to it read as no text, so `please ignore previous` typed
   * first and `instructions` inserted after it (or referenced after it in an out-of-band response)
   * reached the model past a rule on the phrase (test/governance/redteam-22-forgotten-places.test.ts).
   */
  #placeForgotten(type: string, ev: JsonObject, texts: readonly ContentText[], policy: CompiledPolicy): { id: string; param: string } | null {
    if (this.#forgotten === null || !(hasSource(policy, 'input') || hasSource(policy, 'tool_output'))) return null;
    if (type === 'conversation.item.create') {
      const previous = asString(ev['previous_item_id']);
      if (previous === null || !texts.some((t) => conversationSource(t.source))) return null;
      return previous === 'root' || !this.#isPlaced(previous) ? { id: previous, param: 'previous_item_id' } : null;
    }
    const input = asArray(asObject(ev['response'])?.['input']) ?? [];
    for (const [i, raw] of input.entries()) {
      const ref = asObject(raw);
      const id = ref?.['type'] === 'item_reference' ? asString(ref['id']) : null;
      if (id !== null && !this.#isPlaced(id)) return { id, param: `response.input[${i}].id` };
    }
    return null;
  }

  /** Whether `id`, not placed, may be an item whose place is forgotten (listed, or some are not listed). */
  #mayBeForgotten(id: string): boolean {
    return this.#forgotten !== null && (this.#forgottenIds.includes(id) || !this.#forgottenIdsAll);
  }

  /**
   * A spoken turn the upstream added after an item whose place is forgotten: it put the turn after
   * the last item it had at the commit, and the client typed past MAX_PLACED items since (placed as
   * they were sent). Its neighbours there, that item and the first typed one, are not kept: its
   * transcript could not be judged against them, and the first typed item would be taken for the
   * oldest once the ones before it are deleted (#deleteForgotten). Removed as a blocked turn
   * (deleted, responses from it cancelled; CONTEXT_NOT_KEPT_RULE). Until the twenty-fourth session it
   * was placed at the end, and `please ignore previous` spoken then `instructions now` typed first in
   * the burst reached the model (src/policies/guardrails-spoken-after-forgotten.test.ts).
   */
  #spokenAfterForgotten(id: string, type: string): void {
    const policy = this.#policy;
    const finding: Finding = { id: CONTEXT_NOT_KEPT_RULE, action: 'block', label: 'previous_item_id', excerpt: null };
    this.#reportAll(policy, [finding], 'input', type, null, this.#ctx.clock.now());
    const v = this.#trip(policy, 'input', [finding], null, id, type);
    if (v.kind === 'close') this.#ctx.close(v.error);
  }

  /** Whether the item `id` has a place kept (one of the last MAX_PLACED). */
  #isPlaced(id: string): boolean {
    return this.#placed.some((p) => p.key === id);
  }

  /**
   * A client's delete of an item whose place is no longer kept, but the conversation's oldest (the
   * first of #forgottenIds, once the upstream confirmed the ones before it deleted: a delete sent
   * right behind theirs waits for that, up to FORGOTTEN_DELETE_WAIT_MS), is refused while
   * the policy reads the conversation's text: it joins the items around it, whose text is not kept,
   * so what follows it cannot be judged again (#unplace). Until 2026-12-07 it was forwarded, and
   * `please ignore previous`, `zz`, `instructions now`, 128 items, then a delete of `zz` gave the
   * model the phrase past a rule on it (test/governance/redteam-22-forgotten-places.test.ts). A
   * browser's delete on a call travels over its data channel, unseen: not covered.
   */
  #deleteForgotten(frame: Frame): Verdict | Promise<Verdict> {
    const policy = this.#policy;
    if (!(hasSource(policy, 'input') || hasSource(policy, 'tool_output'))) return CONTINUE;
    const ev = frame.json();
    const id = asString(ev['item_id']);
    // Not an item id: the upstream refuses it, and deletes nothing.
    if (id === null || this.#isPlaced(id)) return CONTINUE;
    const at = this.#forgottenIds.indexOf(id);
    if (at === 0) return this.#forgottenDeleteSent(id, ev);
    const message = `Deleting item ${id.slice(0, 64)} would join the items around it, which the proxy no longer keeps (the last ${MAX_PLACED} items) and cannot check together. Delete the oldest items first, in order, or a recent one.`;
    const refuse = (): Verdict => this.#refuseForgotten(ev, frame.type, { id, param: 'item_id' }, policy, message);
    // The items before it all being deleted (an app trimming its conversation from the start, its
    // deletes sent together): it is the oldest once their deletes are confirmed. Until the
    // twenty-third pass it was refused unless they were confirmed already
    // (test/governance/redteam-23b-pipelined-trim.test.ts).
    if (at < 0 || this.#deleteWaiter !== null || !this.#forgottenIds.slice(0, at).every((f) => this.#forgottenDeleting.has(f))) return refuse();
    return new Promise<Verdict>((resolve) => {
      const timer = this.#ctx.setTimer(FORGOTTEN_DELETE_WAIT_MS, () => settle(false));
      const settle = (confirmed: boolean): void => {
        clearTimeout(timer);
        this.#deleteWaiter = null;
        // Closed meanwhile: nothing more goes upstream.
        if (this.#closed) return resolve(DROP);
        resolve(confirmed ? this.#forgottenDeleteSent(id, ev) : refuse());
      };
      this.#deleteWaiter = { id, settle };
    });
  }

  /** A client's delete of the oldest forgotten item goes upstream (#forgottenDeleting). */
  #forgottenDeleteSent(id: string, ev: JsonObject): Verdict {
    if (this.#forgottenIds.includes(id)) this.#forgottenDeleting.set(id, asString(ev['event_id']));
    return CONTINUE;
  }

  /** An upstream error about a forgotten item's delete: the item stays, and a delete waiting behind it is refused. */
  #forgottenDeleteRefused(ev: JsonObject): void {
    const about = asString(asObject(ev['error'])?.['event_id']);
    if (about === null) return;
    for (const [id, eventId] of this.#forgottenDeleting) {
      if (eventId !== about) continue;
      this.#forgottenDeleting.delete(id);
      this.#deleteWaiter?.settle(false);
      return;
    }
  }

  /** The refusal of an event #placeForgotten or #deleteForgotten names (reported as CONTEXT_NOT_KEPT_RULE, a block). */
  #refuseForgotten(ev: JsonObject, type: string, forgotten: { id: string; param: string }, policy: CompiledPolicy, message?: string): Verdict {
    const finding: Finding = { id: CONTEXT_NOT_KEPT_RULE, action: 'block', label: forgotten.param, excerpt: null };
    this.#reportAll(policy, [finding], 'input', type, null, this.#ctx.clock.now());
    const where = forgotten.id === 'root' ? 'at the start of the conversation' : `next to item ${forgotten.id.slice(0, 64)}`;
    return reject(
      new ProxyError('guardrail_blocked', {
        message: message ?? `The text ${where} cannot be checked against the conversation around it: the proxy no longer keeps that part of it (the last ${MAX_PLACED} items). Append the item, or reference a recent one.`,
        param: forgotten.param,
        eventId: clientEventId(ev),
        details: this.#details(policy, [finding]),
      }),
    );
  }

  /** The texts of an item a call's browser wrote (as forwarded) become the context of their sources, and its place's text. */
  #rememberBrowserItem(ev: JsonObject, texts: readonly ContentText[], forwarded: ReadonlyMap<ContentText, string>, policy: CompiledPolicy, type: string): void {
    const itemId = asString(asObject(ev['item'])?.['id']) ?? '';
    const kept = texts.filter((t) => conversationSource(t.source) && forwarded.has(t)).map((t) => ({ source: t.source, text: forwarded.get(t)! }));
    for (const k of kept) this.#remember(k.source, k.text, policy, itemId, type);
    const first = kept[0];
    const entry = first === undefined ? undefined : this.#placed.find((p) => p.key === itemId);
    if (first === undefined || entry === undefined || entry.source !== null) return;
    const own = kept.filter((k) => k.source === first.source);
    entry.source = first.source;
    entry.head = headOf(first.text, policy.windowChars);
    entry.tail = tailOf(own.at(-1)!.text, policy.windowChars);
  }

  /**
   * An item a call's browser wrote, redacted where it first shows (`copy`: the event with its texts
   * redacted): the upstream holds it unredacted, and every later response would read it. It is
   * deleted and its redacted copy created at its place (a new id: the browser sees
   * `conversation.item.deleted`, then the copy's `conversation.item.added`). Not replaced: a redacted
   * copy itself, or an item already replaced (the judgement is not repeated in a loop), one with
   * parts a copy cannot carry (audio, images: not echoed by the upstream), or an MCP item.
   */
  #replaceBrowserItem(ev: JsonObject, copy: JsonObject, ruleId: string): void {
    const item = asObject(copy['item']);
    const original = asString(item?.['id']);
    if (item === null || original === null || this.#replacedItems.has(original)) return;
    // A function call's arguments and a tool output are texts of the item itself (until 2026-12-07 a
    // function call was not copied: its arguments stayed as the browser wrote them). MCP items are not:
    // the upstream pairs them by id (a request, its approval) and acts on an approval; a copy is another item.
    const parts = item['type'] === 'message' ? asArray(item['content']) : item['type'] === 'function_call' || item['type'] === 'function_call_output' ? [] : null;
    if (parts === null || parts.some((p) => !TEXT_PARTS.has(asString(asObject(p)?.['type']) ?? ''))) return;
    const copyId = `item_${randomBytes(12).toString('hex')}`;
    this.#noteReplaced(original, 'original');
    this.#noteReplaced(copyId, 'copy');
    // At the original's place: after the item before it (the first: at the root); after its copy when
    // that item is an original being replaced too (deleted by the time this create lands: until
    // 2026-12-07 the create was refused, and a function call's output went at the end of the
    // conversation, after later turns: test/calls/redteam-21-browser-tool-pair.test.ts).
    const before = asString(ev['previous_item_id']) ?? 'root';
    const previous = this.#browserRedactions.find((x) => x.original === before)?.copy ?? before;
    this.#ctx.markItem(original, { kind: 'deleted', by: GUARDRAILS_FILTER, rule: ruleId });
    this.#ctx.sendUpstream({ type: 'conversation.item.delete', item_id: original }, GUARDRAILS_FILTER);
    // The upstream's own item shape, echoed back with its texts redacted.
    const redacted = { ...item, id: copyId } as unknown as ClientEventOf<'conversation.item.create'>['item'];
    this.#ctx.sendUpstream({ type: 'conversation.item.create', previous_item_id: previous, item: redacted }, GUARDRAILS_FILTER);
    if (this.#browserRedactions.length >= MAX_BROWSER_REDACTIONS) this.#browserRedactions.shift();
    this.#browserRedactions.push({ original, copy: copyId, rule: ruleId, previous, item: redacted, appended: false, open: true, copyAdded: false, cancelled: null, owed: false });
  }

  #noteReplaced(itemId: string, kind: 'original' | 'copy'): void {
    if (this.#replacedItems.size >= 128) this.#replacedItems.delete(this.#replacedItems.keys().next().value!);
    this.#replacedItems.set(itemId, kind);
  }

  /**
   * A response started while a browser item's unredacted original was still in the conversation: it
   * read the address. Cancelled (its items are deleted when it is done, #responseDone); one in the
   * conversation is the turn's answer, asked for again once it is done (#answerRedacted), whoever
   * started it: the browser, server VAD, or the proxy (another redaction's answer, a held turn's).
   * Until 2026-12-07 one the proxy started, or one started after the held one was done, was not held:
   * the turn got no answer (guardrails-twentyfirst-survivors.test.ts). The upstream runs one response
   * in the conversation at a time: none is held yet when one starts.
   */
  #startedUnredacted(responseId: string): void {
    const r = this.#browserRedactions.find((x) => x.open);
    if (r === undefined || this.#ctx.isSuppressed(responseId)) return;
    const policy = this.#policy;
    if (!this.#noteCancelled(responseId, null)) this.#ctx.close(this.#cancelsUntracked());
    const notice = new ProxyError('guardrail_redacted', {
      message: 'A response started from an item before its redaction replaced it; it was cancelled, and the turn is answered from the redacted item.',
      details: { policy: policy.name, policyVersion: policy.version, rule: r.rule, action: 'redact' },
    });
    this.#ctx.cancelResponse(responseId, GUARDRAILS_FILTER, notice);
    const view = this.#ctx.conversation.response(responseId);
    if (r.cancelled === null && view?.outOfBand !== true) r.cancelled = responseId;
  }

  /**
   * The upstream deleted an item. A replaced original: a response starting from here on does not
   * read it. The item a copy was to follow, before the copy showed (the browser deleted it first):
   * the upstream, which answers in order, will refuse the copy's create (that error stays with the
   * relay, as any about an item gone), so the copy is created again at the end of the conversation.
   */
  #redactionItemDeleted(itemId: string | null): void {
    for (const r of this.#browserRedactions) {
      if (r.original === itemId) r.open = false;
      if (r.previous !== itemId || r.copyAdded || r.appended) continue;
      r.appended = true;
      this.#ctx.sendUpstream({ type: 'conversation.item.create', item: r.item }, GUARDRAILS_FILTER);
    }
  }

  /** A redacted copy stands (its create came after the original's delete, so that is done too). */
  #copyAdded(itemId: string | null): void {
    const r = this.#browserRedactions.find((x) => x.copy === itemId);
    if (r === undefined) return;
    r.open = false;
    r.copyAdded = true;
    this.#answerRedacted(r);
  }

  /** A response a redaction cancelled is done: cancelled in time, its turn is owed an answer; finished first, the browser has it. */
  #redactedTurnDone(responseId: string): void {
    const r = this.#browserRedactions.find((x) => x.cancelled === responseId);
    if (r === undefined) return;
    r.cancelled = null;
    r.owed = this.#ctx.conversation.response(responseId)?.state !== 'completed';
    this.#answerRedacted(r);
  }

  /**
   * Once the copy stands and the cancelled response is done, the turn it owes is answered: one
   * `response.create` (none when a response already runs in the conversation: it reads the copy and answers).
   */
  #answerRedacted(r: BrowserRedaction): void {
    if (!r.copyAdded || r.cancelled !== null) return;
    this.#browserRedactions.splice(this.#browserRedactions.indexOf(r), 1);
    if (!r.owed) return;
    const conversation = this.#ctx.conversation;
    if (conversation.activeResponses().some((id) => conversation.response(id)?.outOfBand !== true)) return;
    this.#ctx.sendUpstream({ type: 'response.create' }, GUARDRAILS_FILTER);
  }

  /** A spoken turn's transcript passed: its place gets the text (as forwarded), context for an item inserted next to it. */
  #placeTranscript(itemId: string, text: string, policy: CompiledPolicy): void {
    const entry = this.#placed.find((p) => p.key === itemId);
    if (entry === undefined || entry.source !== null) return;
    entry.source = 'input';
    entry.head = headOf(text, policy.windowChars);
    entry.tail = tailOf(text, policy.windowChars);
  }

  /** The upstream echoed a client item: an item placed without an id learns it (the first with that text). */
  #namePlaced(itemId: string, text: string): void {
    if (this.#isPlaced(itemId)) return;
    const print = fingerprint(text);
    const entry = this.#placed.find((p) => p.key.startsWith('anon:') && p.print === print);
    if (entry) entry.key = itemId;
    if (!this.#placed.some((p) => p.key.startsWith('anon:'))) this.#anonPlaced = 0;
  }

  /**
   * Keeps the end of a finished text, after the context it had, as context for the next one of
   * the same source: a phrase split over three items or more still meets itself.
   */
  #remember(source: Source, text: string, policy: CompiledPolicy, itemId: string, eventType: string): void {
    // Kept apart too, in case an item before it leaves the conversation.
    if (conversationSource(source)) this.#said.push({ source, eventType, ...saidText([text], policy.windowChars), sent: null, itemId: itemId || null });
    this.#seed.set(source, tailOf((this.#seed.get(source) ?? '') + text, policy.windowChars));
    this.#settle();
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
    goesLate?: () => void,
  ): Promise<void> | null {
    // Deltas pass their stream's (streaming) guardrails as `only`: every guardrail of the source sees complete texts.
    const customs = only ?? policy.customBySource.get(source) ?? [];
    // Over the scan limit custom code does not run either (the scan_limit finding decides).
    if (event.text.length > policy.maxScanChars) return null;
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
        goesLate?.();
        void v.then((verdict) => late(c, verdict));
      }
    }
    return waits.length > 0 ? Promise.all(waits).then(() => undefined) : null;
  }

  /**
   * A verdict that arrived after its frame went on: only stopping the response or the session still
   * helps, and removing a blocked item from the conversation. `anon`: a client item sent without an
   * id, its texts (as judged, as forwarded) and its create: its id comes from the upstream's echo.
   */
  #late(c: CompiledCustom, v: CustomVerdict, source: Source, eventType: string, responseId: string | null, itemId?: string, anon: { texts: readonly string[]; create: AnonCreate } | null = null): void {
    if (this.#closed || v.action === 'allow') return;
    const t0 = this.#ctx.clock.now();
    const policy = this.#policy;
    let applied: Action = 'log';
    const details = { policy: policy.name, policyVersion: policy.version, rule: c.id, action: v.action };
    // A translation session: nothing to cancel or delete, the translation already spoken (see #trip).
    if (v.action === 'end_session' || (this.#translation && (v.action === 'block' || v.action === 'cancel_response'))) {
      this.#ctx.close(new ProxyError('policy_violation', { details }));
      applied = 'end_session';
    } else if (v.action === 'block' || v.action === 'cancel_response') {
      applied = v.action;
      if (anon !== null) {
        if (v.action === 'block') this.#blockCreate(anon.create, anon.texts, c.id);
        this.#cancelActive(v.action, c.id);
      } else if ((source === 'input' || eventType === 'conversation.item.create') && itemId) {
        if (v.action === 'block') this.#deleteItem(itemId, 'blocked', c.id);
        this.#cancelActive(v.action, c.id);
      } else if (responseId && this.#ctx.conversation.activeResponses().includes(responseId)) {
        if (!this.#noteCancelled(responseId, itemId ?? null)) this.#ctx.close(this.#cancelsUntracked());
        this.#ctx.cancelResponse(responseId, GUARDRAILS_FILTER, this.#notice(v.action, details));
      } else if (source !== 'output' && source !== 'tool_call') {
        this.#cancelActive(v.action, c.id);
      } else {
        applied = 'log';
      }
    }
    this.#reportAll(policy, [{ id: c.id, action: applied, label: `custom:${v.via}:late`, excerpt: null }], source, eventType, responseId, t0);
  }

  /**
   * A late block of a client item sent without an id, found by its create: still followed (#sent),
   * the echo that answers it is deleted (#answered, as a built-in rule's retraction); echoed, the
   * item it got; refused (upstream or here), nothing is there. Only a create no longer followed (past
   * MAX_SENT unanswered) falls back to the echoes of its texts (#blockEchoed).
   */
  #blockCreate(create: AnonCreate, texts: readonly string[], ruleId: string): void {
    if (create.state === 'judging') {
      create.early.push({ texts, ruleId });
      return;
    }
    const sent = create.sent;
    if (create.state === 'refused' || sent?.refused === true) return;
    if (sent !== null && this.#sent.includes(sent)) this.#blockSent(sent, ruleId);
    else if (sent?.itemId) {
      this.#forgetEcho(sent.itemId);
      this.#deleteItem(sent.itemId, 'blocked', ruleId);
    } else this.#blockEchoed(sent, [...new Set(texts.map(fingerprint))], ruleId);
  }

  /** An echoed item deleted: its fingerprints are no longer kept (nor counted) for a late verdict. */
  #forgetEcho(itemId: string): void {
    const echoed = this.#echoes.get(itemId);
    if (echoed === undefined) return;
    this.#echoes.delete(itemId);
    this.#echoPrints -= echoed.size;
  }

  /** A client item sent without an id went upstream (`sent`: its create as followed): late blocks that came while it was judged apply now. */
  #forwarded(create: AnonCreate, sent: Sent | null): void {
    create.state = 'forwarded';
    create.sent = sent;
    for (const { texts, ruleId } of create.early.splice(0)) this.#blockCreate(create, texts, ruleId);
  }

  /**
   * A block of a client item sent without an id whose create is no longer followed (past MAX_SENT
   * unanswered; `sent` null: never followed): the item the upstream echoed with one of its texts
   * (`prints`) is deleted; if the echo has not come yet, it is deleted when it comes (#noteEcho),
   * unless the upstream has answered or refused its create already (#settledBefore: until
   * 2026-12-07 the block waited, and the next echo of its texts, a later twin's, was deleted).
   * False: no room to wait, the session is ended.
   */
  #blockEchoed(sent: Sent | null, prints: readonly string[], ruleId: string): boolean {
    let found = false;
    for (const [itemId, echoed] of [...this.#echoes]) {
      if (!prints.some((p) => echoed.has(p))) continue;
      this.#forgetEcho(itemId);
      this.#deleteItem(itemId, 'blocked', ruleId);
      found = true;
    }
    if (found || (sent !== null && sent.seq < this.#settledBefore)) return true;
    for (const p of prints) {
      if (this.#lateBlocks.size >= MAX_LATE_BLOCKS) {
        this.#untracked();
        return false;
      }
      this.#lateBlocks.set(p, ruleId);
    }
    return true;
  }

  /** More client items awaiting a late verdict or its echo than are kept: the session cannot be governed. */
  #untracked(): void {
    this.#ctx.close(new ProxyError('governance_failed', { message: 'Too many client items are waiting for a late guardrail verdict; the session was ended.', details: { policy: this.#policy.name } }));
  }

  /**
   * The upstream echoed a client item, not one the client named by its id (#answered): remembered for
   * a late verdict on a create no longer followed, or deleted if one already blocked it (its echo is
   * the first of its text: that create was sent before every followed one, and #answered leaves
   * such an echo to it; until 2026-12-07 a named twin's echo, or a followed twin's, spent the block).
   */
  #noteEcho(itemId: string, text: string): void {
    const p = fingerprint(text);
    const ruleId = this.#lateBlocks.get(p);
    if (ruleId !== undefined) {
      this.#lateBlocks.delete(p);
      this.#deleteItem(itemId, 'blocked', ruleId);
      return;
    }
    // Only a verdict still to come needs it (not an item deleted already: the echo that answered a blocked create).
    if (this.#anonPending === 0 || this.#deleted.has(itemId)) return;
    let echoed = this.#echoes.get(itemId);
    if (!echoed) {
      if (this.#echoes.size >= MAX_ECHOES) return this.#untracked();
      this.#echoes.set(itemId, (echoed = new Set()));
    }
    // Every text of it (a block of its 17th must find it too), bounded over all items.
    if (echoed.has(p)) return;
    if (this.#echoPrints >= MAX_ECHO_PRINTS) return this.#untracked();
    echoed.add(p);
    this.#echoPrints++;
  }

  /** The policy and the strongest finding (the first of equal rank); `findings` is never empty. */
  #details(policy: CompiledPolicy, findings: readonly Finding[]): Record<string, string | number | boolean | null> {
    let top = findings[0]!;
    for (const f of findings) if (ACTION_RANK[f.action] > ACTION_RANK[top.action]) top = f;
    return { policy: policy.name, policyVersion: policy.version, rule: top.id, action: top.action };
  }

  /**
   * Reports each finding. `direction`: of the event it was on; by default read off `eventType` (a
   * client event type is in the content-path table's client rows; every other, a held turn's timer
   * included, came from the upstream). An event no table knows passes its own.
   */
  #reportAll(policy: CompiledPolicy, findings: readonly Finding[], source: Source, eventType: string, responseId: string | null, t0: number, direction: Direction = tripDirection(eventType)): void {
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
        direction,
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
          ...(f.excerpt !== null ? matchExcerpt(f.excerpt) : {}),
        },
        'guardrail tripped',
      );
    }
  }

  /**
   * The relay stamped a client event on its way upstream: an item create or a commit this filter
   * let through learns the id the upstream's `error` about it will name (`pairStamp`). One a later
   * filter refused stays unstamped, and is answered by the echoes of the items after it, or by its timer.
   */
  onReport(report: Report): void {
    if (report.kind !== 'stamped') return;
    if (report.eventType === 'input_audio_buffer.commit') this.#hold?.commitStamped(report.clientEventId, report.eventId);
    else if (report.eventType === 'conversation.item.create') pairStamp(this.#sent, report.clientEventId, report.eventId);
  }

  onClose(): void {
    this.#closed = true;
    this.#deleteWaiter?.settle(false);
    this.#hold?.close();
    for (const timer of this.#transcriptTimers.values()) clearTimeout(timer);
    this.#transcriptTimers.clear();
    this.#streams.clear();
    this.#customState.clear();
  }

  summary(): Readonly<Record<string, string | number | boolean | null>> {
    return { policy: this.#entry.name, policyVersion: this.#entry.current.version, guardrailTrips: this.#trips, ...(this.#hold ? { heldTurnResponses: this.#hold.created } : {}) };
  }
}

