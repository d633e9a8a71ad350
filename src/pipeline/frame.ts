import { sniffString } from '../protocol/sniff.js';
import { DuplicateMemberError, parseStrict } from '../protocol/strict-json.js';
import type { ClientEventOf, ClientEventType, ServerEventOf, ServerEventType } from '../protocol/events.js';

const UNPARSED: unique symbol = Symbol('unparsed');

/** Below this size `string()` parses instead of sniffing. */
const SNIFF_MIN_BYTES = 1024;

/** Thrown by `Frame.json()` when the bytes are not valid JSON. */
export class MalformedFrameError extends Error {
  override readonly name: string = 'MalformedFrameError';
  constructor(
    readonly eventType: string,
    message = `frame of type ${eventType} is not valid JSON`,
  ) {
    super(message);
  }
}

/** Thrown by `Frame.json()` of a client frame that repeats a member name or nests too deeply (see strict-json.ts). */
export class DuplicateMemberFrameError extends MalformedFrameError {
  override readonly name = 'DuplicateMemberFrameError';
  constructor(
    eventType: string,
    readonly path: string,
    readonly reason: 'duplicate_member' | 'too_deep',
    readonly eventId: string | null,
  ) {
    super(eventType, `frame of type ${eventType}: ${reason} at ${path}`);
  }
}

export type JsonObject = { [key: string]: unknown };

/**
 * One Realtime event on the wire. `bytes` are the original frame bytes and are forwarded as-is
 * unless a filter replaces the frame; `json()` parses lazily and caches.
 *
 * The relay hands ownership of `bytes` to the socket when it forwards: a filter MUST NOT keep a
 * reference to `bytes` past its callback (the client-direction send may mask them in place).
 */
export class Frame {
  readonly type: string;
  readonly bytes: Buffer;
  #parsed: JsonObject | typeof UNPARSED;
  /**
   * A client frame: parsed strictly (a repeated member name at any depth is refused), and once
   * parsed, forwarded re-serialised from what the filters read (`wireBytes`).
   */
  #client: boolean;

  constructor(type: string, bytes: Buffer, parsed?: JsonObject) {
    this.type = type;
    this.bytes = bytes;
    this.#parsed = parsed ?? UNPARSED;
    this.#client = false;
  }

  /**
   * A frame from the client. `parsed` must come from `parseStrict` (the relay parses frames
   * whose type it could not sniff).
   */
  static fromClient(type: string, bytes: Buffer, parsed?: JsonObject): Frame {
    const frame = new Frame(type, bytes, parsed);
    frame.#client = true;
    return frame;
  }

  /** Build a frame for an event the proxy creates or rewrites. */
  static fromEvent(event: { readonly type: string }): Frame {
    return Frame.rewritten(event.type, event as unknown as JsonObject);
  }

  /** Build a frame of type `type` for a rewritten copy of a parsed event (its bytes are the event serialised). */
  static rewritten(type: string, event: JsonObject): Frame {
    return new Frame(type, Buffer.from(JSON.stringify(event)), event);
  }

  get size(): number {
    return this.bytes.length;
  }

  get parsed(): boolean {
    return this.#parsed !== UNPARSED;
  }

  /**
   * The parsed event. A frame whose type was sniffed may still be malformed past the type: then
   * this throws `MalformedFrameError`, which the chain answers with `invalid_json` (the client's
   * fault, not the filter's).
   */
  json(): JsonObject {
    if (this.#parsed === UNPARSED) {
      try {
        this.#parsed = (this.#client ? parseStrict(this.bytes) : JSON.parse(this.bytes.toString('utf8'))) as JsonObject;
      } catch (err) {
        if (err instanceof DuplicateMemberError) throw new DuplicateMemberFrameError(this.type, err.path, err.reason, err.eventId);
        throw new MalformedFrameError(this.type);
      }
    }
    return this.#parsed;
  }

  /**
   * The bytes to forward. A client frame a filter parsed leaves as what the filters read, re-
   * serialised from the parsed object: the upstream can never see a member, number or escape
   * the proxy read differently. Unparsed frames (audio) and server frames leave as they came.
   */
  wireBytes(): Buffer {
    if (!this.#client || this.#parsed === UNPARSED) return this.bytes;
    return Buffer.from(JSON.stringify(this.#parsed));
  }

  /**
   * A top-level string member, read without parsing when the frame is large (audio). Small
   * frames are parsed once and cached: a few sniffs of a small frame cost more than one parse.
   */
  string(key: string): string | null {
    if (this.#parsed === UNPARSED && this.bytes.length > SNIFF_MIN_BYTES) {
      const sniffed = sniffString(this.bytes, key);
      if (sniffed !== undefined) return sniffed;
    }
    const value = this.json()[key];
    return typeof value === 'string' ? value : null;
  }

  /** The event typed as the client event `type`, or undefined when the frame is another type. */
  client<T extends ClientEventType>(type: T): ClientEventOf<T> | undefined {
    return this.type === type ? (this.json() as unknown as ClientEventOf<T>) : undefined;
  }

  /** The event typed as the server event `type`, or undefined when the frame is another type. */
  server<T extends ServerEventType>(type: T): ServerEventOf<T> | undefined {
    return this.type === type ? (this.json() as unknown as ServerEventOf<T>) : undefined;
  }
}
