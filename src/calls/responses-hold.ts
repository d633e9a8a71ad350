import type { Logger } from 'pino';
import type { JsonObject } from '../pipeline/frame.js';
import { asObject, keptId } from '../protocol/json.js';

/**
 * What the app's first forwarded `session.update` on a call said about turn detection: nothing
 * (`untouched`), turned it off (`off`), or set it, with `create_response` as written (null: not written).
 */
export type AppTurnChoice = { readonly kind: 'untouched' } | { readonly kind: 'off' } | { readonly kind: 'set'; readonly createResponse: boolean | null };

/** The app's choice in a `session.update` it sends (its `session`, as the proxy forwards it). */
export function appTurnChoice(session: unknown): AppTurnChoice {
  const input = asObject(asObject(asObject(session)?.['audio'])?.['input']);
  if (!input || !('turn_detection' in input) || input['turn_detection'] === undefined) return { kind: 'untouched' };
  const detection = input['turn_detection'];
  if (detection === null) return { kind: 'off' };
  const written = asObject(detection)?.['create_response'];
  return { kind: 'set', createResponse: typeof written === 'boolean' ? written : null };
}

/** The scalar members of a turn detection as the app wrote them (WrittenTurnDetection). */
export type WrittenTurnDetection = Readonly<Record<string, string | number | boolean | null>>;
/** Members of the app's turn detection kept for the match, at most; longer strings are left out (the upstream refuses them). */
const MAX_WRITTEN_MEMBERS = 16;
const MAX_WRITTEN_STRING = 64;

/**
 * The scalar members the app's update wrote in its turn detection (`type`, `eagerness`, `threshold`,
 * `create_response`, …), which the upstream's answer to it reports as written; null when it wrote
 * no turn detection object. Objects, arrays and long strings are left out (bounded).
 */
export function writtenTurnDetection(session: unknown): WrittenTurnDetection | null {
  const detection = asObject(asObject(asObject(asObject(session)?.['audio'])?.['input'])?.['turn_detection']);
  if (!detection) return null;
  const written: Record<string, string | number | boolean | null> = {};
  let kept = 0;
  for (const [key, value] of Object.entries(detection)) {
    if (kept >= MAX_WRITTEN_MEMBERS) break;
    if (value === null || typeof value === 'number' || typeof value === 'boolean' || (typeof value === 'string' && value.length <= MAX_WRITTEN_STRING)) {
      written[key] = value;
      kept++;
    }
  }
  return written;
}

/**
 * The turn detection a session the upstream reported has (session.created / session.updated): null
 * when off, undefined when it says nothing readable (absent, or not an object).
 */
export function reportedTurnDetection(session: unknown): JsonObject | null | undefined {
  const detection = asObject(asObject(asObject(session)?.['audio'])?.['input'])?.['turn_detection'];
  if (detection === null) return null;
  return asObject(detection) ?? undefined;
}

/** Why a hold ended (logged with `call_responses_released`). */
export type HoldRelease = 'governed' | 'app_updated' | 'wait_elapsed' | 'no_app';

export interface ResponsesHoldDeps {
  /** The route's own turn-back-on (withResponsesHeld's `restore`); null: nothing is held. */
  readonly restore: Readonly<Record<string, unknown>> | null;
  /** How long to wait for the app (`notify.waitForAppMs`); 0: turn responses on as the sideband starts. */
  readonly waitForAppMs: number;
  /** Sends a proxy-made event upstream on the governing sideband (through the filters: metering reserves a create). */
  send(event: { type: 'session.update'; session: Record<string, unknown> } | { type: 'response.create' }): void;
  setTimer(ms: number, fn: () => void): NodeJS.Timeout;
  readonly log: Logger;
  /**
   * The app's first update, recorded by another process whose client socket saw it take effect (the
   * call's store record, CallRecord.appUpdate); null: not yet. Asked every APP_UPDATE_POLL_MS while
   * held, one read at a time; a read that fails counts as not yet (the wait's bound still ends the
   * hold). Absent: nothing is asked (the app is seen on this process only).
   */
  readonly appUpdatedElsewhere?: () => Promise<AppUpdateSeen | null>;
  /**
   * The hold ended (responses turned back on, or left to the app): the call's later sidebands (a
   * takeover) must not turn them on again over what the app set since. Not called by `stop`.
   */
  readonly released?: (why: HoldRelease) => void;
}

/**
 * What a client socket of the call on another process saw: the app's choice, and the turn detection
 * the upstream then reported (null: off; undefined: not reported) in the session.updated whose
 * `event_id` is `answerEventId` (absent: not said).
 */
export interface AppUpdateSeen {
  readonly choice: AppTurnChoice;
  readonly turnDetection?: Readonly<Record<string, unknown>> | null;
  readonly answerEventId?: string;
}

/** An app's update forwarded on this process: its id as kept, its choice and the turn detection it wrote. */
interface AppUpdateForwarded {
  readonly eventId: string | null;
  readonly choice: AppTurnChoice;
  readonly written: WrittenTurnDetection | null;
}

/** How often a governing sideband holding responses asks the store whether the app's update took effect elsewhere. */
export const APP_UPDATE_POLL_MS = 200;
/** Event ids of updates sent before the app's (and its own) kept for the `error` that may answer one; more are counted, not kept. */
const MAX_AWAITED_UPDATES = 64;
/** Event ids of the session events read while held, the newest kept (a record naming an older one counts as not read here). */
const MAX_SESSION_EVENTS_READ = 64;

/**
 * A SIP call's responses held on its governing sideband (the call was accepted with turn detection's
 * `create_response` off: see withResponsesHeld), and turned back on once. Without a wait (a route
 * without `notify`, `waitForAppMs: 0`, a call taken over after a crash) as the sideband starts, with
 * the route's `restore`. With one (a route whose app is announced the call), once the app's first
 * `session.update` took effect upstream: forwarded on this process, at its answer (the governing
 * sideband reads every socket's). The upstream answers each update with one session.updated or one
 * error, in the order it read them: the updates this process sent before the app's (the sideband's
 * locked state, a relock) are answered first, and are counted (`updateSent`) so that the answer
 * released on is the app's own (until 2026-12-07 the next session.updated released, an earlier
 * update's among them; an error about the app's update releases too, its choice discarded with it:
 * by the event_id each update left with, the relay's own, not the app's). Every app update forwarded
 * here before the release is waited for, the last that chose turn detection deciding (appUpdated).
 * A session.updated names no update, so the answer to one sent through another process (another
 * socket on the call) is counted too: where the release writes turn detection it waits for an answer
 * showing the app's (#reportsAppTurns); otherwise it can come one answer early (README, *Browser and
 * phone calls*).
 * Through another process or instance sharing the calls
 * store, once that process recorded it (asked every APP_UPDATE_POLL_MS: `appUpdatedElsewhere`; until
 * 2026-12-07 such a call waited the whole bound), on the turn detection recorded there unless this
 * sideband read that very answer already (it read the newer ones too: until 2026-12-07 the older
 * record replaced them). So the first answer has the app's instructions and tools;
 * or when `waitForAppMs` elapsed; or at once when the app will not come (its announcement failed,
 * was dropped or skipped). Turned back on as the session is then: the app's turn detection if it set
 * one (its `create_response` when it wrote it: false, or turn detection off, stays so), else the
 * upstream's current one with `create_response` on (the route's `restore` before the upstream
 * reported any). A turn committed while held and not answered since gets one answer then (a
 * `response.create`), unless responses stay off: a caller who spoke into the wait is answered once,
 * not left waiting for a second turn. A turn whose item was deleted meanwhile (an input guardrail
 * blocked it) is owed nothing: until 2026-12-07 it was answered anyway. An out-of-band response
 * (`conversation_id: null`) is not its answer (until 2026-12-07 it was, and the turn went unanswered).
 */
export class ResponsesHold {
  /** The server events whose body onServer reads (the others' it is given as {}). */
  static readsBody(type: string): boolean {
    return type.startsWith('session.') || type === 'input_audio_buffer.committed' || type === 'conversation.item.deleted' || type === 'response.created' || type === 'error';
  }

  readonly #deps: ResponsesHoldDeps;
  #held: boolean;
  /** The items of the turns committed while held, unanswered and not deleted since (a committed event without one: a key of its own). */
  readonly #owed = new Set<string>();
  #unidentified = 0;
  /** The turn detection the upstream last reported (session.created/updated); undefined: none read yet. */
  #current: JsonObject | null | undefined = undefined;
  /** The app's update (forwarded here, or recorded elsewhere): released at its answer. */
  #app: AppTurnChoice | null = null;
  /**
   * The app's updates forwarded here while held, in order (the first, then any sent before the hold
   * released; at most MAX_AWAITED_UPDATES, by their ids as kept: keptId): the last one that chose turn
   * detection decides at release (an update the upstream refused, by an error, chose nothing).
   */
  readonly #appUpdates: AppUpdateForwarded[] = [];
  /** Updates sent upstream from this process before the app's, not answered yet (answers to others' updates take none below 0). */
  #unanswered = 0;
  /** The event ids of those and of the app's: an `error` about one answers it, once. */
  readonly #awaitedIds = new Set<string>();
  /** Answers to read until the app's (its own the last); null until the app's update was forwarded here. */
  #answersToApp: number | null = null;
  /**
   * Updates this process sent after the app's last one (answered after it: not waited for), by their
   * ids as kept (at most MAX_AWAITED_UPDATES): awaited once the app sends another (answered before it).
   */
  readonly #sentSinceApp: (string | null)[] = [];
  /** The event ids of the session.created/updated read while held, oldest first. */
  readonly #sessionEventsRead = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  /** The next ask of `appUpdatedElsewhere`, while held. */
  #poll: NodeJS.Timeout | null = null;

  constructor(deps: ResponsesHoldDeps) {
    this.#deps = deps;
    this.#held = deps.restore !== null;
  }

  /** Whether responses are still held (waiting for the app). */
  get held(): boolean {
    return this.#held;
  }

  /** The sideband starts: released now without a wait, else the bound starts. */
  start(): void {
    if (!this.#held) return;
    if (this.#deps.waitForAppMs <= 0) return this.#release('governed');
    this.#timer = this.#deps.setTimer(this.#deps.waitForAppMs, () => this.#release('wait_elapsed'));
    this.#schedulePoll();
  }

  #schedulePoll(): void {
    const ask = this.#deps.appUpdatedElsewhere;
    if (!ask || !this.#held) return;
    this.#poll = this.#deps.setTimer(APP_UPDATE_POLL_MS, () => {
      this.#poll = null;
      // Released meanwhile (a timer that fired as the hold ended): nothing more to ask.
      if (!this.#held) return;
      void ask().then(
        (seen) => {
          if (seen) this.#appUpdatedElsewhere(seen);
          else this.#schedulePoll();
        },
        () => this.#schedulePoll(),
      );
    });
  }

  /**
   * The app's first update took effect through another process's socket: released now, on the turn
   * detection that socket read after it (the state the app left), or this sideband's own when it did
   * not say. This sideband read that session.updated too, most likely before the store said so.
   */
  #appUpdatedElsewhere(seen: AppUpdateSeen): void {
    if (!this.#held) return;
    this.#app ??= seen.choice;
    // Read here already: this sideband's view is that answer's or a newer one's (the app may have
    // updated again within one poll), never older.
    const readHere = seen.answerEventId !== undefined && this.#sessionEventsRead.has(seen.answerEventId);
    if (!readHere && seen.turnDetection === null) this.#current = null;
    else if (!readHere && seen.turnDetection !== undefined) this.#current = { ...seen.turnDetection };
    this.#release('app_updated');
  }

  /** A server event the governing sideband read. */
  onServer(type: string, event: JsonObject): void {
    if (type === 'session.created' || type === 'session.updated') {
      this.#sessionEventRead(event['event_id']);
      const detection = reportedTurnDetection(event['session']);
      if (detection !== undefined) this.#current = detection;
      if (type === 'session.updated') this.#answered();
    } else if (type === 'error') {
      const about = asObject(event['error'])?.['event_id'];
      // An error about nothing sent from here (or told already: every socket of the call reads it) answers nothing counted.
      if (typeof about !== 'string') return;
      const id = keptId(about);
      if (!this.#awaitedIds.delete(id)) return;
      const refused = this.#appUpdates.findIndex((u) => u.eventId === id);
      if (refused < 0) return this.#answered();
      // An update of the app's refused: the upstream applied none of it, its choice included.
      this.#appUpdates.splice(refused, 1);
      // The last one the app sent: released now (every update before it was answered first).
      if (refused === this.#appUpdates.length) return this.#release('app_updated');
      this.#answered();
    } else if (type === 'input_audio_buffer.committed') {
      const itemId = event['item_id'];
      if (this.#held) this.#owed.add(typeof itemId === 'string' ? itemId : `#${++this.#unidentified}`);
    } else if (type === 'conversation.item.deleted') {
      // Governance removed the turn (an input guardrail's block): nothing to answer for it.
      const itemId = event['item_id'];
      if (typeof itemId === 'string') this.#owed.delete(itemId);
    } else if (type === 'response.created') {
      // An out-of-band response (`conversation_id: null`: the app's classifier, a summary) answers
      // nothing of the conversation: the held turn is still owed (until 2026-12-07 it was taken for
      // its answer, and the caller went unanswered: test/calls/redteam-21-hold-out-of-band.test.ts).
      if (asObject(event['response'])?.['conversation_id'] !== null) this.#owed.clear();
    }
  }

  /**
   * A session.update the governing sideband sends upstream (the proxy's own: the locked state, a
   * relock), by its event id. One sent before the app's is answered before it; one after, after it.
   */
  updateSent(eventId: string | null): void {
    if (!this.#held || (this.#app !== null && this.#answersToApp === null)) return;
    if (this.#answersToApp !== null) {
      if (this.#sentSinceApp.length < MAX_AWAITED_UPDATES) this.#sentSinceApp.push(eventId === null ? null : keptId(eventId));
      return;
    }
    this.#unanswered++;
    this.#await(eventId);
  }

  /**
   * A session.update of the app's on the call was forwarded (this process), by the event id it left
   * with: released at the answer to the last one forwarded before the hold released. Until the
   * twenty-third red-team pass only the first counted, and an app's second update sent right behind
   * it (turn detection off) was applied before the hold's own, written from the first one's answer,
   * which turned turn detection on again (test/calls/redteam-23-hold-app-updates.test.ts).
   */
  appUpdated(choice: AppTurnChoice, eventId: string | null = null, written: WrittenTurnDetection | null = null): void {
    // Recorded elsewhere (released then) or released: the app's later updates are its own business.
    if (!this.#held || (this.#app !== null && this.#answersToApp === null)) return;
    const id = eventId === null ? null : keptId(eventId);
    this.#app ??= choice;
    if (this.#appUpdates.length < MAX_AWAITED_UPDATES) this.#appUpdates.push({ eventId: id, choice, written });
    // Updates this process sent since the app's last are answered before this one.
    for (const sent of this.#sentSinceApp) this.#await(sent);
    this.#answersToApp = (this.#answersToApp ?? this.#unanswered) + this.#sentSinceApp.length + 1;
    this.#sentSinceApp.length = 0;
    this.#await(id);
  }

  /** The app's choice at release: the last of its updates here that chose turn detection (none: untouched). */
  #appChoice(): AppTurnChoice | null {
    if (this.#answersToApp === null) return this.#app;
    for (let i = this.#appUpdates.length - 1; i >= 0; i--) if (this.#appUpdates[i]!.choice.kind !== 'untouched') return this.#appUpdates[i]!.choice;
    return { kind: 'untouched' };
  }

  #await(eventId: string | null): void {
    // A client-chosen id may be as long as a frame: kept as keptId keeps it (the error's is mapped the same way).
    if (eventId !== null && this.#awaitedIds.size < MAX_AWAITED_UPDATES) this.#awaitedIds.add(keptId(eventId));
  }

  /** An update sent from somewhere was answered: the app's once every one sent before it was. */
  #answered(): void {
    if (!this.#held) return;
    if (this.#answersToApp === null) {
      if (this.#unanswered > 0) this.#unanswered--;
      return;
    }
    if (--this.#answersToApp <= 0 && this.#reportsAppTurns()) this.#release('app_updated');
  }

  /**
   * Whether the session last reported can be the one the app's update left: it shows the turn
   * detection the app's deciding update wrote (every member kept by writtenTurnDetection, as written).
   * A session.updated names no update, and one answering an update sent through another process (a
   * second app socket, a supervisor's) before the app's is counted too: released on it, the hold
   * wrote that earlier answer's turn detection over the app's (until 2026-12-07; README, *Browser and
   * phone calls*). Such an answer is passed over; one that never matches is released by the wait's
   * bound. Only where the release writes turn detection: the app set one with responses on or unwritten.
   */
  #reportsAppTurns(): boolean {
    let deciding: AppUpdateForwarded | undefined;
    for (let i = this.#appUpdates.length - 1; i >= 0 && !deciding; i--) if (this.#appUpdates[i]!.choice.kind !== 'untouched') deciding = this.#appUpdates[i];
    if (deciding?.choice.kind !== 'set' || deciding.choice.createResponse === false || deciding.written === null) return true;
    const current = this.#current;
    if (current === undefined) return true;
    if (current === null) return false;
    // A member written null asks for the upstream's default: reported null, left out (the API omits
    // unset optional members) or by its value (`eagerness: null` answered "auto"; until 2026-12-07,
    // red team, that answer never matched and the held turn waited the whole bound). Any matches.
    return Object.entries(deciding.written).every(([key, value]) => value === null || current[key] === value);
  }

  #sessionEventRead(eventId: unknown): void {
    if (typeof eventId !== 'string' || !this.#held) return;
    if (this.#sessionEventsRead.size >= MAX_SESSION_EVENTS_READ) this.#sessionEventsRead.delete(this.#sessionEventsRead.values().next().value!);
    this.#sessionEventsRead.add(eventId);
  }

  /** The app will not attach (its announcement failed, was dropped or skipped): released now. */
  noApp(): void {
    if (this.#held) this.#release('no_app');
  }

  /** The sideband ended. */
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#poll) clearTimeout(this.#poll);
    this.#timer = null;
    this.#poll = null;
    this.#held = false;
  }

  #release(why: HoldRelease): void {
    if (!this.#held) return;
    this.stop();
    this.#deps.released?.(why);
    const restore = this.#deps.restore!;
    const app = this.#appChoice();
    const answerOwed = this.#owed.size > 0;
    this.#owed.clear();
    // The app turned turn detection off, or responses: its call (it starts responses itself).
    if (app?.kind === 'off' || (app?.kind === 'set' && app.createResponse === false)) {
      this.#deps.log.info({ event: 'call_responses_released', why, responses: 'left_to_app', heldTurn: answerOwed }, 'call: responses left as the app set them');
      return;
    }
    const current = this.#current;
    if (current === null) {
      this.#deps.log.info({ event: 'call_responses_released', why, responses: 'turn_detection_off', heldTurn: answerOwed }, 'call: turn detection is off, nothing to turn back on');
      return;
    }
    // Nothing read from the upstream yet (no wait, or the wait ended first): the route's own.
    if (current === undefined) this.#deps.send({ type: 'session.update', session: { ...restore } });
    else if (current['create_response'] !== true) this.#deps.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { ...current, create_response: true } } } } });
    if (answerOwed) this.#deps.send({ type: 'response.create' });
    // Without a wait (every call of a route without notify): as before, nothing to tell.
    if (why !== 'governed') this.#deps.log.info({ event: 'call_responses_released', why, responses: 'on', heldTurn: answerOwed }, 'call: responses turned back on');
  }
}
