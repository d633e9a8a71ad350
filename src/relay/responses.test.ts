import { describe, expect, it } from 'vitest';
import { Frame } from '../pipeline/frame.js';
import { Conversation } from '../protocol/conversation.js';
import { ResponseTracker as Tracker } from './responses.js';

/** The tracker with its conversation view fed as the relay core feeds it (view first). */
class ResponseTracker extends Tracker {
  readonly conversation: Conversation;
  constructor() {
    const conversation = new Conversation();
    super(conversation);
    this.conversation = conversation;
  }
  override inspect(frame: Frame): Frame | null {
    this.conversation.observeServer(frame);
    return super.inspect(frame);
  }
}

const f = (e: Record<string, unknown> & { type: string }) => new Frame(e.type, Buffer.from(JSON.stringify(e)));

describe('ResponseTracker', () => {
  it('passes everything through while nothing is suppressed', () => {
    const t = new ResponseTracker();
    const frames = [
      f({ type: 'response.created', response: { id: 'r1' } }),
      f({ type: 'response.output_item.added', response_id: 'r1', item: { id: 'i1', type: 'message' } }),
      f({ type: 'conversation.item.added', item: { id: 'i1', type: 'message' } }),
      f({ type: 'response.output_audio.delta', response_id: 'r1', delta: 'AAAA' }),
    ];
    for (const fr of frames) expect(t.inspect(fr)).toBe(fr);
    expect(t.isActive('r1')).toBe(true);
  });

  it('drops the output of a suppressed response, blanks announced items and the response.done text', () => {
    const t = new ResponseTracker();
    t.inspect(f({ type: 'response.created', response: { id: 'r1' } }));
    t.inspect(f({ type: 'response.output_item.added', response_id: 'r1', item: { id: 'i1', type: 'message' } }));
    t.inspect(f({ type: 'conversation.item.added', item: { id: 'i1', type: 'message' } }));
    expect(t.suppress('r1')).toBe(true);
    expect(t.suppress('r1')).toBe(false);
    const audio = f({ type: 'response.output_audio.delta', response_id: 'r1', delta: 'A'.repeat(6400) });
    expect(t.inspect(audio)).toBeNull();
    // Real-size audio is judged by its sniffed response_id, never parsed.
    expect(audio.parsed).toBe(false);
    expect(t.inspect(f({ type: 'response.output_audio_transcript.delta', response_id: 'r1', delta: 'bad words' }))).toBeNull();
    // Another response's frames are untouched.
    const other = f({ type: 'response.output_audio.delta', response_id: 'r2', delta: 'BBBB' });
    expect(t.inspect(other)).toBe(other);
    const itemDone = t.inspect(
      f({ type: 'conversation.item.done', item: { id: 'i1', type: 'message', status: 'completed', content: [{ type: 'output_audio', transcript: 'bad words' }] } }),
    );
    expect(itemDone!.bytes.toString()).not.toContain('bad words');
    expect((itemDone!.json()['item'] as { status: string }).status).toBe('incomplete');
    const done = t.inspect(
      f({
        type: 'response.done',
        response: {
          id: 'r1',
          status: 'completed',
          output: [
            { id: 'i1', type: 'message', content: [{ type: 'output_audio', transcript: 'bad words' }] },
            { id: 'i2', type: 'function_call', name: 'transfer_funds', arguments: '{}' },
          ],
          usage: { total_tokens: 10 },
        },
      }),
    )!;
    const text = done.bytes.toString();
    expect(text).not.toContain('bad words');
    expect(text).not.toContain('transfer_funds');
    expect(done.json()['response']).toMatchObject({ status: 'cancelled', usage: { total_tokens: 10 } });
    expect(t.isSuppressed('r1')).toBe(false);
    expect(t.isActive('r1')).toBe(false);
  });

  it('drops items of a suppressed response that the client never saw', () => {
    const t = new ResponseTracker();
    t.inspect(f({ type: 'response.created', response: { id: 'r1' } }));
    t.suppress('r1');
    expect(t.inspect(f({ type: 'response.output_item.added', response_id: 'r1', item: { id: 'i9', type: 'function_call' } }))).toBeNull();
    expect(t.inspect(f({ type: 'conversation.item.added', item: { id: 'i9', type: 'function_call' } }))).toBeNull();
    expect(t.inspect(f({ type: 'response.function_call_arguments.done', response_id: 'r1', arguments: '{}' }))).toBeNull();
  });

  it('re-applies suppression to frames that were already inspected before the cancel', () => {
    const t = new ResponseTracker();
    t.inspect(f({ type: 'response.created', response: { id: 'r1' } }));
    // These passed inspection while nothing was suppressed, then waited behind an async verdict.
    const queued = [
      t.inspect(f({ type: 'response.output_audio.delta', response_id: 'r1', delta: 'AAAA' }))!,
      t.inspect(f({ type: 'response.output_audio_transcript.delta', response_id: 'r1', delta: 'late words' }))!,
      t.inspect(f({ type: 'response.done', response: { id: 'r1', status: 'completed', output: [{ id: 'i1', type: 'message', content: [{ type: 'output_audio', transcript: 'late words' }] }] } }))!,
    ];
    t.suppress('r1');
    expect(t.recheck(queued[0]!)).toBeNull();
    expect(t.recheck(queued[1]!)).toBeNull();
    const done = t.recheck(queued[2]!)!;
    expect(done.bytes.toString()).not.toContain('late words');
    expect(t.suppressing).toBe(false);
  });

  it('attributes audio to the only active response without reading it, but reads the frame\'s own id while suppressing', () => {
    const t = new ResponseTracker();
    t.inspect(f({ type: 'response.created', response: { id: 'r1' } }));
    const bytes = (id: string) => Buffer.from(JSON.stringify({ type: 'response.output_audio.delta', response_id: id, delta: 'A'.repeat(6400) }));
    // One response in flight: no read of the frame (a hostile id cannot matter while nothing is suppressed).
    expect(t.audioResponseId(bytes('r9'))).toBe('r1');
    // A suppression makes the frame's own id the judge (an upstream may stream audio for a response it never created).
    t.suppress('r9');
    expect(t.audioResponseId(bytes('r9'))).toBe('r9');
    // A repeated response_id is read as the parser reads it (the last one), never as the first.
    const dup = Buffer.from('{"type":"response.output_audio.delta","response_id":"r1","response_id":"r9","delta":"AAAA"}');
    expect(t.audioResponseId(dup)).toBe('r9');
    // Two responses in flight: sniffed.
    t.inspect(f({ type: 'response.done', response: { id: 'r9' } }));
    t.inspect(f({ type: 'response.created', response: { id: 'r2' } }));
    expect(t.audioResponseId(bytes('r2'))).toBe('r2');
    t.inspect(f({ type: 'response.done', response: { id: 'r1' } }));
    expect(t.audioResponseId(bytes('zz'))).toBe('r2');
  });
});
