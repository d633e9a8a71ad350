/**
 * Malformed client frames for the fuzz suite, generated from a seed. Every frame has a
 * deterministic answer: an `error` event from the proxy (its catalogue) or from the upstream (the
 * simulator answers like OpenAI), and the answer echoes the frame's `event_id` whenever the frame
 * could be parsed far enough to have one.
 */

export interface FuzzFrame {
  readonly data: Buffer;
  readonly binary: boolean;
  /** Category, for the per-category tallies in failure messages. */
  readonly kind: string;
  /** The event_id the answer must echo, or null when the answer cannot carry one. */
  readonly id: string | null;
  /** Acceptable `error.code` values of the answer. */
  readonly codes: readonly string[];
}

export function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

const KNOWN = [
  'session.update',
  'input_audio_buffer.append',
  'input_audio_buffer.commit',
  'conversation.item.create',
  'conversation.item.truncate',
  'conversation.item.delete',
  'conversation.item.retrieve',
  'response.create',
  'response.cancel',
];

/** Codes the simulator uses for a well-formed event with bad fields. */
const FIELD_CODES = ['invalid_type', 'invalid_value', 'unknown_parameter', 'missing_required_parameter', 'invalid_request_error', 'item_not_found', 'response_cancel_not_active', 'invalid_event'];

const WRONG_VALUES: readonly unknown[] = [42, -1, 3.5, true, null, [], [1, 'a'], {}, { nested: { deeper: [null] } }, '', 'x'.repeat(300)];

export interface FuzzOptions {
  /** Bytes of the rare huge-string frames (default 1 MiB). */
  readonly hugeBytes?: number;
  /** Nesting depth of the deep frames (default 5,000). */
  readonly depth?: number;
}

/** One session's frame source. `n` numbers frames so ids are unique per session. */
export class FuzzSource {
  readonly #r: () => number;
  readonly #tag: string;
  readonly #huge: number;
  readonly #depth: number;
  #n = 0;

  constructor(seed: number, tag: string, options: FuzzOptions = {}) {
    this.#r = xorshift(seed);
    this.#tag = tag;
    this.#huge = options.hugeBytes ?? 1024 * 1024;
    this.#depth = options.depth ?? 5000;
  }

  #pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#r() * xs.length)]!;
  }

  #text(len: number): string {
    let s = '';
    for (let i = 0; i < len; i++) s += String.fromCharCode(32 + Math.floor(this.#r() * 95));
    return s;
  }

  #b64(len: number): string {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    let s = '';
    for (let i = 0; i < len; i++) s += alphabet[Math.floor(this.#r() * 64)]!;
    return s;
  }

  #frame(kind: string, text: string | Buffer, id: string | null, codes: readonly string[], binary = false): FuzzFrame {
    return { data: typeof text === 'string' ? Buffer.from(text, 'utf8') : text, binary, kind, id, codes };
  }

  next(): FuzzFrame {
    const n = ++this.#n;
    const id = `fz_${this.#tag}_${n}`;
    const roll = this.#r();
    // Rare, expensive shapes first (about 1 in 5,000 each).
    if (roll < 0.0002) return this.#frame('huge-string', JSON.stringify({ type: `no.such.huge${n}`, event_id: id, pad: 'h'.repeat(this.#huge) }), id, ['invalid_value']);
    if (roll < 0.0004) {
      const d = this.#depth;
      // Refused by the proxy's depth limit (server.maxJsonDepth) before the upstream or a filter sees it.
      return this.#frame('deep-nesting', `{"type":"no.such.deep${n}","event_id":"${id}","x":${'['.repeat(d)}${']'.repeat(d)}}`, id, ['invalid_event']);
    }
    if (roll < 0.0006) {
      const d = this.#depth;
      return this.#frame('deep-nesting-before-type', `{"x":${'{"a":'.repeat(d)}1${'}'.repeat(d)},"type":"session.update","event_id":"${id}"}`, id, FIELD_CODES);
    }
    if (roll < 0.0008) {
      const d = this.#depth;
      return this.#frame('deep-array', `${'['.repeat(d)}${']'.repeat(d)}`, null, ['invalid_event']);
    }
    const k = Math.floor(this.#r() * 14);
    switch (k) {
      case 0: {
        // Printable garbage that is not JSON (never starts like an object with a type).
        const t = `~${this.#text(1 + Math.floor(this.#r() * 200))}`;
        return this.#frame('garbage', t, null, ['invalid_json']);
      }
      case 1: {
        // A valid event cut short: the proxy or the upstream must call it invalid JSON.
        const full = JSON.stringify({ type: this.#pick(KNOWN), event_id: id, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: this.#text(40) }] } });
        return this.#frame('truncated', full.slice(0, 1 + Math.floor(this.#r() * (full.length - 1))), null, ['invalid_json']);
      }
      case 2: {
        // A truncated audio append (the relay's fast path): type sniffed, body never parsed by the proxy.
        const full = JSON.stringify({ type: 'input_audio_buffer.append', event_id: id, audio: this.#b64(4 * (1 + Math.floor(this.#r() * 800))) });
        const cut = 40 + Math.floor(this.#r() * (full.length - 41));
        return this.#frame('truncated-append', full.slice(0, cut), null, ['invalid_json']);
      }
      case 3:
        return this.#frame('non-object', this.#pick(['[1,2,3]', '"just a string"', '42', 'null', 'true', '[]', '[{"type":"response.create"}]']), null, ['invalid_event']);
      case 4: {
        const bad = this.#pick([42, null, true, {}, [], '', ['response.create'], { type: 'response.create' }]);
        return this.#frame('type-wrong-type', JSON.stringify({ type: bad, event_id: id }), id, ['invalid_event']);
      }
      case 5:
        return this.#frame('type-missing', JSON.stringify({ event_id: id, audio: this.#b64(8) }), id, ['invalid_event']);
      case 6: {
        const len = 1 + Math.floor(this.#r() * 64);
        const bytes = Buffer.alloc(len);
        for (let i = 0; i < len; i++) bytes[i] = Math.floor(this.#r() * 256);
        return this.#frame('binary', bytes, null, ['invalid_event'], true);
      }
      case 7:
        return this.#frame('unknown-type', JSON.stringify({ type: `no.such.${this.#text(6).replace(/["\\]/g, '_')}.${n}`, event_id: id }), id, ['invalid_value']);
      case 8: {
        // A known type with a field of the wrong type (the upstream's validation answers).
        const type = this.#pick(['session.update', 'conversation.item.create', 'conversation.item.truncate', 'conversation.item.delete', 'conversation.item.retrieve', 'input_audio_buffer.append']);
        const field = { 'session.update': 'session', 'conversation.item.create': 'item', 'conversation.item.truncate': 'item_id', 'conversation.item.delete': 'item_id', 'conversation.item.retrieve': 'item_id', 'input_audio_buffer.append': 'audio' }[type]!;
        let v = this.#pick(WRONG_VALUES);
        // Keep the value wrong for every field: strings are valid ids, `{}` is a valid (empty) session update.
        if (typeof v === 'string' && field !== 'session' && field !== 'item') v = 7;
        if (field === 'session' && typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0) v = 'not an object';
        return this.#frame('field-wrong-type', JSON.stringify({ type, event_id: id, [field]: v }), id, FIELD_CODES);
      }
      case 9:
        return this.#frame('unknown-field', JSON.stringify({ type: 'input_audio_buffer.append', event_id: id, audio: '', [`bogus_${n}`]: this.#text(10) }), id, ['unknown_parameter']);
      case 10:
        // Escapes the sniffer refuses to read: the proxy parses; the upstream answers.
        return this.#frame('escaped-key', `{"typ\\u0065":"no.such.esc${n}","event_id":"${id}"}`, id, ['invalid_value']);
      case 11:
        return this.#frame('escaped-value', `{"type":"no.such\\u002eesc${n}","event_id":"${id}"}`, id, ['invalid_value']);
      case 12:
        // Nothing to cancel: a well-formed event the upstream refuses (exercises the filters' response.cancel path).
        return this.#frame('cancel-nothing', JSON.stringify({ type: 'response.cancel', event_id: id }), id, ['response_cancel_not_active']);
      default:
        // Whitespace, odd spacing and unicode around a bad type.
        return this.#frame('spacing-unicode', `  {\n\t"type" :  "no.such.ünï${n}" , "event_id" : "${id}" }  `, id, ['invalid_value']);
    }
  }
}
