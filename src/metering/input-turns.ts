import type { JsonObject } from '../pipeline/frame.js';
import type { ConversationView } from '../protocol/conversation.js';
import { asString as str } from '../protocol/json.js';
import { DEFAULT_PREFIX_PADDING_MS, turnDetectionOf } from './session-fields.js';

/**
 * Audio a client sends beyond real time (more audio than wall time since the input buffer started),
 * by more than this, was sent faster than it could have been spoken: a turn server VAD may have found
 * and committed in it before the session ended unread (MeteringFilter.#billUnreadTurn). Real-time
 * clients stay within it (network jitter, chunking).
 */
const REAL_TIME_SLACK_MS = 500;
/** The least audio the upstream commits as a turn (`input_audio_buffer_commit_empty` below it). */
export const MIN_TURN_MS = 100;
/** Client commits metering keeps waiting for their answer (#clientCommits). */
const MAX_CLIENT_COMMITS = 64;

/** Turn detection as metering reads it: its prefix padding, and whether it starts a response per turn. */
export interface TurnDetection {
  readonly padMs: number;
  readonly createResponse: boolean;
}

/**
 * The input buffer's turns as metering follows them: turn detection, the speech server VAD heard, the
 * client's commits and clears on their way, and the proxy's own clear when the client left. What the
 * close bills for a turn (or its response) the upstream may have committed unread, and whether the
 * session lingers for the upstream's answer, are read from here.
 */
export class InputTurns {
  /**
   * Turn detection as the upstream reported it (`audio.input.turn_detection`: null = off; on by
   * default), and one a client `session.update` in flight turns on (`n`: its place among the updates).
   * Server VAD commits the input buffer itself, so at the close a turn it committed may be unread.
   */
  #vad: TurnDetection | null = { padMs: DEFAULT_PREFIX_PADDING_MS, createResponse: true };
  #vadAsked: { readonly padMs: number; readonly createResponse: boolean; readonly n: number } | null = null;
  /**
   * Server VAD committed a turn (`input_audio_buffer.committed` read while turn detection starts a
   * response per turn) and no conversation `response.created` was read since: the upstream may have
   * started that turn's response, which the close bills if it was never read (MeteringFilter.#billUnreadVadResponse).
   */
  #vadResponseDue = false;
  /**
   * The `event_id` of the `input_audio_buffer.clear` the proxy sent when the client left with audio
   * in the input buffer under turn detection (onClientGone), until the upstream's `cleared` (or an
   * error naming it) is read: every append before it has been read upstream by then, so a turn server
   * VAD committed in it has had its `committed` read, and the rest of the buffer is gone.
   */
  #goneClear: string | null = null;
  /**
   * Client `input_audio_buffer.clear`s sent upstream whose `cleared` has not been read yet. The
   * upstream answers clears in order and a `cleared` names none, so while one is counted the next
   * `cleared` answers the client's, not #goneClear (the audio the client sent after its own clear is
   * still in the buffer then). Until 2026-12-06 (thirteenth session) a client that cleared, sent a
   * whole turn and left had the answer to its own clear taken for the proxy's: the linger ended and
   * the response server VAD started for that turn went unread and unbilled
   * (test/metering/redteam-money-4.test.ts). A client clear the upstream refuses stays counted: the
   * proxy's `cleared` is then not recognised and the close bills its estimate (never less).
   */
  #clientClears = 0;
  /**
   * A client clear counted in #clientClears dropped a buffer that held a turn's worth of audio (or
   * speech heard): server VAD may commit that turn, and start its response, before it reads the
   * clear. Until every client clear is answered (it is reset when the count returns to 0), a client
   * leaving is handled as one leaving with that audio in the buffer (onClientGone). Until 2026-12-06 (thirteenth session) a client that sent a
   * whole turn and its own clear with the close had nothing read and nothing billed.
   */
  #turnBeforeClientClear = false;
  /**
   * Client commits on their way upstream, not answered yet (by the id the relay stamped each with,
   * from its `stamped` report; null until then), oldest first: the `committed` that answers one is
   * not a turn server VAD committed (no response follows a client's commit). A commit the upstream
   * refuses (its `error` names the stamped id) leaves. At most MAX_CLIENT_COMMITS (the oldest dropped:
   * a VAD turn is then never taken for a client's commit).
   */
  readonly #clientCommits: (string | null)[] = [];
  /**
   * Server VAD heard speech in the input buffer (`input_audio_buffer.speech_started`, its item id and
   * `audio_start_ms`) and its `committed` was not read yet: the upstream commits the turn when the
   * speech stops, and transcribes it (MeteringFilter.#billUnreadTurn).
   */
  #speech: { readonly itemId: string | null; readonly startMs: number | null } | null = null;
  /** Proxy time (`ctx.clock`) when the input buffer last started again: the session's start, a commit, a clear, a committed item. */
  #bufferStartedAt: number;

  constructor(
    private readonly clock: { now(): number },
    private readonly conversation: Pick<ConversationView, 'sessionUpdatesAnswered'>,
  ) {
    this.#bufferStartedAt = clock.now();
  }

  /** The relay stamped the oldest client commit not named yet with `eventId` (stamped events leave in the order the client sent them). */
  commitStamped(eventId: string): void {
    const i = this.#clientCommits.indexOf(null);
    if (i >= 0 && !this.#clientCommits.includes(eventId)) this.#clientCommits[i] = eventId;
  }

  /** A client commit leaves for the upstream. */
  clientCommitLeft(): void {
    if (this.#clientCommits.length >= MAX_CLIENT_COMMITS) this.#clientCommits.shift();
    this.#clientCommits.push(null);
    this.#bufferRestarted();
  }

  /**
   * A client clear leaves for the upstream; `turnInBuffer`: the buffer it drops holds a turn's worth
   * of audio (MIN_TURN_MS). The buffer starts again here, as the upstream reads it.
   */
  clientClear(turnInBuffer: boolean): void {
    if (turnInBuffer || this.#speech !== null) this.#turnBeforeClientClear = true;
    this.#clientClears++;
    this.#bufferRestarted();
  }

  /** The proxy sent a clear (`eventId`) because the client left (MeteringFilter.onClientGone). */
  clearSentForGoneClient(eventId: string): void {
    this.#goneClear = eventId;
  }

  /** A client session.update (the `n`th) asks turn detection `td`. */
  turnDetectionAsked(td: JsonObject, n: number): void {
    this.#vadAsked = { ...turnDetectionOf(td), n };
  }

  /** The upstream reports turn detection (null: off). */
  turnDetectionReported(td: JsonObject | null): void {
    this.#vad = td ? turnDetectionOf(td) : null;
  }

  /** `input_audio_buffer.speech_started`. */
  speechStarted(ev: JsonObject): void {
    const start = ev['audio_start_ms'];
    this.#speech = { itemId: str(ev['item_id']), startMs: typeof start === 'number' && Number.isFinite(start) && start >= 0 ? start : null };
  }

  /**
   * `input_audio_buffer.committed`: the upstream's answer to the oldest client commit in flight, or a
   * turn server VAD committed (a response is due for it when turn detection starts one per turn and
   * `startsResponses`: not a transcription session).
   */
  committed(startsResponses: boolean): void {
    // Server VAD starts a response for a turn it commits (create_response): due until a conversation
    // response.created is read. The answer to a client's own commit starts none, nor does a
    // transcription session (?intent=transcription): until 2026-12-06 (thirteenth session) a response
    // stayed due there for the session's life after its first turn, and every client leaving kept its
    // session lingering (awaitingUpstream) for all of lingerAfterClientCloseMs (test/security/redteam-linger-1.test.ts).
    const clientCommit = this.#clientCommits.shift() !== undefined;
    if (!clientCommit && startsResponses && this.vadNow()?.createResponse === true) this.#vadResponseDue = true;
    this.#bufferRestarted();
  }

  /**
   * `input_audio_buffer.cleared`: the answer to a client clear (the oldest one counted: what the
   * client sent after it is in the buffer), or to the proxy's own. True for the proxy's: the buffer is
   * empty upstream now.
   */
  cleared(): boolean {
    if (this.#clientClears > 0) {
      if (--this.#clientClears === 0) this.#turnBeforeClientClear = false;
      return false;
    }
    // Ours (the client is gone: its clears were all answered).
    if (this.#goneClear === null) return false;
    this.#goneClear = null;
    this.#bufferRestarted();
    return true;
  }

  /** An upstream `error` naming `eventId`: the proxy's clear, or a client commit, refused. */
  refused(eventId: string): void {
    // The clear sent when the client left was refused: nothing more will tell what the buffer held
    // (the close bills its estimate, MeteringFilter.#billUnreadTurn).
    if (eventId === this.#goneClear) this.#goneClear = null;
    const refused = this.#clientCommits.indexOf(eventId);
    if (refused >= 0) this.#clientCommits.splice(refused, 1);
  }

  /** A conversation response started: the turn server VAD committed has its response (or one runs instead). */
  responseStarted(): void {
    this.#vadResponseDue = false;
  }

  /** See #vadResponseDue. */
  get vadResponseDue(): boolean {
    return this.#vadResponseDue;
  }

  /** The upstream's answer the session waits for when its client left: the proxy's clear, or a turn's response. */
  awaitingUpstream(): boolean {
    return this.#goneClear !== null || this.#vadResponseDue;
  }

  /** A client leaving with `uncommittedMs` of audio in the buffer left one the upstream may still commit as a turn. */
  mayHoldTurn(uncommittedMs: number): boolean {
    // Less audio than any turn: nothing the upstream could commit (the estimate is an upper bound),
    // unless a client clear not answered yet dropped a turn the upstream may commit before reading it.
    return !(uncommittedMs < MIN_TURN_MS && this.#speech === null && !this.#turnBeforeClientClear);
  }

  /**
   * Turn detection as a turn the upstream commits now would find it: as reported, or turned on by an
   * update in flight (it applies before anything sent after it); `createResponse` if either starts a
   * response per turn. Null: off.
   */
  vadNow(): TurnDetection | null {
    const asked = this.#vadAsked !== null && this.#vadAsked.n > this.conversation.sessionUpdatesAnswered ? this.#vadAsked : null;
    if (this.#vad === null) return asked;
    return asked !== null && asked.createResponse && !this.#vad.createResponse ? { padMs: this.#vad.padMs, createResponse: true } : this.#vad;
  }

  /**
   * A turn server VAD may have committed in the input buffer without the proxy reading its committed
   * (see MeteringFilter.#billUnreadTurn): its audio (ms, 0: none) and its name. `bufferMs`: the audio
   * not committed; `appendedMs`: all the session appended (the upstream's audio clock).
   */
  unreadTurn(vad: { readonly padMs: number }, bufferMs: number, appendedMs: number): { ms: number; ref: string } {
    let ms = 0;
    let ref = 'vad:unread';
    if (bufferMs <= 0) return { ms, ref };
    if (this.#speech !== null) {
      ms = this.#speech.startMs !== null ? Math.min(bufferMs, Math.max(0, appendedMs - this.#speech.startMs)) : bufferMs;
      ref = this.#speech.itemId ?? ref;
    } else {
      const excess = bufferMs - (this.clock.now() - this.#bufferStartedAt);
      if (excess > REAL_TIME_SLACK_MS) ms = Math.min(bufferMs, Math.ceil(excess) + vad.padMs);
    }
    return { ms, ref };
  }

  /** The input buffer starts again (a commit leaving, a clear, a committed item). */
  #bufferRestarted(): void {
    this.#bufferStartedAt = this.clock.now();
    // A clear drops the speech server VAD heard; a commit takes it (its committed comes next).
    this.#speech = null;
  }
}
