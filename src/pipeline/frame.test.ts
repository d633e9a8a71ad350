import { describe, expect, it } from 'vitest';
import { DuplicateMemberFrameError, Frame, MalformedFrameError } from './frame.js';

const bytesOf = (text: string) => Buffer.from(text, 'utf8');
/** An audio append as a client sends it: large enough that `string()` sniffs rather than parses. */
const append = (audioChars: number, extra = '') => bytesOf(`{"type":"input_audio_buffer.append","event_id":"evt_a"${extra},"audio":"${'A'.repeat(audioChars)}"}`);

describe('frame bytes on the wire', () => {
  it('a server frame leaves as the very bytes it came in, even after a filter parsed it', () => {
    const bytes = bytesOf('{ "type" : "response.output_text.delta",  "delta":"h\\u00e9", "n": 1.50 }');
    const frame = new Frame('response.output_text.delta', bytes);
    expect(frame.type).toBe('response.output_text.delta');
    expect(frame.size).toBe(bytes.length);
    expect(frame.json()).toEqual({ type: 'response.output_text.delta', delta: 'hé', n: 1.5 });
    expect(frame.wireBytes()).toBe(bytes);
  });

  it('an audio frame no filter read is forwarded as the original buffer and never parsed', () => {
    const bytes = append(4000);
    const frame = Frame.fromClient('input_audio_buffer.append', bytes);
    expect(frame.string('event_id')).toBe('evt_a');
    expect(frame.string('type')).toBe('input_audio_buffer.append');
    expect(frame.parsed).toBe(false);
    expect(frame.wireBytes()).toBe(bytes);
  });

  it('a client frame a filter parsed leaves as what the filter read (re-serialised), not as the original bytes', () => {
    const bytes = bytesOf('{ "type":"session.update",\n "session": { "instructions": "h\\u00e9llo", "n": 1.50 } }');
    const frame = Frame.fromClient('session.update', bytes);
    const ev = frame.json();
    expect(frame.parsed).toBe(true);
    expect(frame.wireBytes().toString('utf8')).toBe('{"type":"session.update","session":{"instructions":"héllo","n":1.5}}');
    // The object the filters checked is the one that leaves: a change made while checking shows.
    (ev['session'] as Record<string, unknown>)['instructions'] = 'checked';
    expect(JSON.parse(frame.wireBytes().toString('utf8'))).toEqual({ type: 'session.update', session: { instructions: 'checked', n: 1.5 } });
  });

  it('a client frame handed in already parsed leaves as that parse', () => {
    const bytes = bytesOf('{"type":"x",  "a":1}');
    const frame = Frame.fromClient('x', bytes, { type: 'x', a: 2 });
    expect(frame.parsed).toBe(true);
    expect(frame.json()).toEqual({ type: 'x', a: 2 });
    expect(frame.wireBytes().toString('utf8')).toBe('{"type":"x","a":2}');
  });

  it('a frame the proxy built leaves as its own bytes (already the serialised event)', () => {
    const event = { type: 'conversation.item.delete', item_id: 'item_1' };
    const frame = Frame.fromEvent(event);
    expect(frame.type).toBe('conversation.item.delete');
    expect(frame.parsed).toBe(true);
    expect(frame.json()).toBe(event);
    expect(frame.bytes.toString('utf8')).toBe(JSON.stringify(event));
    expect(frame.wireBytes()).toBe(frame.bytes);
    const rewritten = Frame.rewritten('session.update', { type: 'session.update', session: { type: 'realtime' } });
    expect(rewritten.type).toBe('session.update');
    expect(rewritten.wireBytes()).toBe(rewritten.bytes);
    expect(rewritten.bytes.toString('utf8')).toBe('{"type":"session.update","session":{"type":"realtime"}}');
  });
});

describe('frame parsing', () => {
  it('parses once and caches', () => {
    const frame = new Frame('x', bytesOf('{"type":"x","a":[1]}'));
    expect(frame.parsed).toBe(false);
    const first = frame.json();
    expect(frame.parsed).toBe(true);
    expect(frame.json()).toBe(first);
  });

  it('a client frame repeating a member name is refused with where and why (and its event id)', () => {
    const frame = Frame.fromClient('session.update', bytesOf('{"type":"session.update","event_id":"evt_9","session":{"instructions":"ok","instructions":"evil"}}'));
    let caught: unknown;
    try {
      frame.json();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DuplicateMemberFrameError);
    expect(caught).toBeInstanceOf(MalformedFrameError);
    const dup = caught as DuplicateMemberFrameError;
    expect(dup.name).toBe('DuplicateMemberFrameError');
    expect(dup.eventType).toBe('session.update');
    expect(dup.path).toBe('session.instructions');
    expect(dup.reason).toBe('duplicate_member');
    expect(dup.eventId).toBe('evt_9');
    expect(dup.message).toBe('frame of type session.update: duplicate_member at session.instructions');
    expect(frame.parsed).toBe(false);
  });

  it('a server frame is read like JSON.parse (the upstream is not held to the strict reading)', () => {
    const frame = new Frame('x', bytesOf('{"type":"x","a":1,"a":2}'));
    expect(frame.json()).toEqual({ type: 'x', a: 2 });
  });

  it('bytes that are not JSON throw MalformedFrameError naming the event type, on every read', () => {
    for (const frame of [new Frame('response.done', bytesOf('{"type":"response.done",')), Frame.fromClient('session.update', bytesOf('{"type":"session.update"'))]) {
      let caught: unknown;
      try {
        frame.json();
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(MalformedFrameError);
      expect(caught).not.toBeInstanceOf(DuplicateMemberFrameError);
      const err = caught as MalformedFrameError;
      expect(err.name).toBe('MalformedFrameError');
      expect(err.eventType).toBe(frame.type);
      expect(err.message).toBe(`frame of type ${frame.type} is not valid JSON`);
      expect(() => frame.json()).toThrow(MalformedFrameError);
      expect(frame.parsed).toBe(false);
    }
  });
});

describe('frame.string', () => {
  it('a small frame is parsed (once) instead of sniffed', () => {
    const frame = new Frame('x', bytesOf('{"type":"x","name":"n","count":3}'));
    expect(frame.string('name')).toBe('n');
    expect(frame.parsed).toBe(true);
    expect(frame.string('count')).toBeNull();
    expect(frame.string('missing')).toBeNull();
  });

  it('sniffs only frames over 1 KiB: a frame of exactly 1024 bytes is parsed', () => {
    const exact = append(0);
    const pad = 1024 - exact.length;
    const at1024 = append(pad);
    expect(at1024.length).toBe(1024);
    const frame1024 = new Frame('input_audio_buffer.append', at1024);
    expect(frame1024.string('event_id')).toBe('evt_a');
    expect(frame1024.parsed).toBe(true);
    const frame1025 = new Frame('input_audio_buffer.append', append(pad + 1));
    expect(frame1025.string('event_id')).toBe('evt_a');
    expect(frame1025.parsed).toBe(false);
  });

  it('a large frame: an absent member is null without parsing; a member the sniffer cannot read falls back to the parser', () => {
    const frame = new Frame('input_audio_buffer.append', append(4000));
    expect(frame.string('item_id')).toBeNull();
    expect(frame.parsed).toBe(false);
    // A repeated member has no single sniffed reading: the parser decides (last one, for a server frame).
    const dup = new Frame('input_audio_buffer.append', append(4000, ',"event_id":"evt_b"'));
    expect(dup.string('event_id')).toBe('evt_b');
    expect(dup.parsed).toBe(true);
    // A non-string member is not a string.
    const num = new Frame('input_audio_buffer.append', append(4000, ',"n":5'));
    expect(num.string('n')).toBeNull();
  });

  it('a large frame already parsed answers from the parse', () => {
    const frame = new Frame('input_audio_buffer.append', append(4000), { type: 'input_audio_buffer.append', event_id: 'from_parse' });
    expect(frame.string('event_id')).toBe('from_parse');
  });
});

describe('typed views', () => {
  it('client() and server() give the event only for their own type', () => {
    const c = new Frame('response.create', bytesOf('{"type":"response.create","response":{"instructions":"hi"}}'));
    expect(c.client('response.create')?.response?.instructions).toBe('hi');
    expect(c.client('session.update')).toBeUndefined();
    expect(c.server('response.done')).toBeUndefined();
    const s = new Frame('response.done', bytesOf('{"type":"response.done","response":{"id":"r1"}}'));
    expect(s.server('response.done')?.response.id).toBe('r1');
    expect(s.server('response.created')).toBeUndefined();
    // Neither parses a frame of another type.
    const other = new Frame('x', bytesOf('not json'));
    expect(other.client('response.create')).toBeUndefined();
    expect(other.server('response.done')).toBeUndefined();
  });
});
