import { describe, expect, it } from 'vitest';
import { FakeSession } from '../support/fake-session.js';
import { trackerBudget, wire } from './support.js';
import { TruncationFilter } from '../../src/policies/truncation.js';

/*
 * G.711 audio and the truncation budget at the filter (the end-to-end cases, through the proxy and
 * the simulator, are in test/policies/redteam-17f-created-audio-e2e.test.ts).
 */

/** `seconds` of G.711 μ-law silence (0xFF), base64: 8,000 bytes a second, ~10 tokens a second of user audio. */
const g711 = (seconds: number) => Buffer.alloc(seconds * 8_000, 0xff).toString('base64');
const MINUTE = g711(60);

/**
 * The format the filter sizes by, at the filter: the one the upstream confirmed, and, while a
 * client's update asking a denser one is unanswered, that one (audio sent right behind the update
 * is in it once the upstream applies it). 60 s of G.711 is 604 tokens (4 framing); read as PCM16, 104.
 */
describe('truncation: which format sizes the audio', () => {
  const budget = trackerBudget(2_000, { keepLast: 0, keepFirst: 0 });
  const typed = (chars: number) => ({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(chars) }] });
  const spoken = (audio: string) => ({ type: 'message', role: 'user', content: [{ type: 'input_audio', audio }] });
  const deleted = (s: FakeSession) => s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

  /** A filter on a session the upstream created as `session`, with a 1,504-token item in it: under 2,000 alone, over it with a G.711 minute. */
  function started(session: Record<string, unknown>): { s: FakeSession; f: TruncationFilter } {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromServer(f, wire({ type: 'session.created', session: { type: 'realtime', ...session } }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', ...typed(6_000) } }));
    return { s, f };
  }

  it("the preview protocol's g711_ulaw, confirmed at session.created", () => {
    const { s, f } = started({ input_audio_format: 'g711_ulaw' });
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(MINUTE) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deleted(s)).toContain('old');
  });

  it("an out-of-band response whose own input is 4 min of G.711 audio (~2,400 tokens, ~400 read as PCM16) is refused under a 2,000 budget", () => {
    const { s, f } = started({ audio: { input: { format: { type: 'audio/pcmu' } } } });
    const v = s.fromClient(f, wire({ type: 'response.create', event_id: 'evt_oob', response: { conversation: 'none', input: [spoken(g711(240))] } }));
    expect(v).toMatchObject({ kind: 'reject', error: { code: 'context_budget_exceeded' } });
    expect(s.upstream.filter((e) => e.type === 'response.create')).toHaveLength(0);
  });

  it('a G.711 format a client update asked, before the upstream answers it', () => {
    const { s, f } = started({ audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } });
    s.fromClient(f, wire({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcma' } } } } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(MINUTE) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deleted(s)).toContain('old');
  });

  it('the same bytes in a session confirmed PCM16 count a sixth: nothing is pruned', () => {
    const { s, f } = started({ audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } });
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(MINUTE) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deleted(s)).toEqual([]);
  });

  it('a G.711 format the upstream confirmed at session.updated keeps counting once the update is answered', () => {
    const { s, f } = started({ audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } });
    s.fromClient(f, wire({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } }));
    s.fromServer(f, wire({ type: 'session.updated', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(MINUTE) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deleted(s)).toContain('old');
  });

  it('a G.711 format an update asked stops counting once the upstream refuses that update (the session stayed PCM16)', () => {
    const { s, f } = started({ audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } });
    s.fromClient(f, wire({ type: 'session.update', event_id: 'evt_g711', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } } } } }));
    s.fromServer(f, wire({ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', event_id: s.upstreamIdOf('evt_g711') } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(MINUTE) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deleted(s)).toEqual([]);
  });

  it('a PCM16 format a client update asks does not count before the upstream confirms it (the session is G.711 until then)', () => {
    const { s, f } = started({ audio: { input: { format: { type: 'audio/pcmu' } } } });
    s.fromClient(f, wire({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } } } }));
    s.fromClient(f, wire({ type: 'conversation.item.create', item: spoken(MINUTE) }));
    s.fromClient(f, wire({ type: 'response.create' }));
    expect(deleted(s)).toContain('old');
  });
});
