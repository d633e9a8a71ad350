import { describe, expect, it } from 'vitest';
import { FakeSession } from '../support/fake-session.js';
import { trackerBudget, wire } from './support.js';
import { TruncationFilter } from '../../src/policies/truncation.js';

/**
 * Red team 18t (truncation, the twin of test/metering/redteam-18-format-switch.test.ts).
 * Adversary: a tenant under a truncation budget appends a minute of G.711 (480,000 bytes, ~600
 * tokens), switches the session to PCM16, waits for `session.updated`, then commits. The filter
 * sized the committed turn as `appended bytes / the rate in force at the commit` (48 bytes/ms):
 * 10 s, ~100 tokens. An upstream that decoded each append in the format of its time (as metering
 * now assumes) reads ~600, and the response reads past `maxTokens` with nothing pruned.
 * Guarantee broken: a response reads at most `maxTokens` (policies/README.md "Truncation").
 */
const g711 = (seconds: number) => Buffer.alloc(seconds * 8_000, 0xff).toString('base64');
const input = (format: Record<string, unknown>) => ({ type: 'realtime', audio: { input: { format, turn_detection: null, transcription: null } } });
const PCMU = { type: 'audio/pcmu' };
const PCM = { type: 'audio/pcm', rate: 24_000 };

describe('red team 18t: truncation sizes each part of the buffer at the format it was appended in', () => {
  const budget = trackerBudget(2_000, { keepLast: 0, keepFirst: 0 });
  const deleted = (s: FakeSession) => s.upstream.filter((e) => e.type === 'conversation.item.delete').map((e) => e['item_id']);

  function started(): { s: FakeSession; f: TruncationFilter } {
    const s = new FakeSession();
    const f = new TruncationFilter(s, budget, 'test');
    s.fromServer(f, wire({ type: 'session.created', session: input(PCMU) }));
    // 1,504 tokens of text: under 2,000 alone, over it with a minute of G.711 (~604).
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: null, item: { id: 'old', type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x'.repeat(6_000) }] } }));
    return { s, f };
  }

  function commitTurn(s: FakeSession, f: TruncationFilter): void {
    s.fromClient(f, wire({ type: 'input_audio_buffer.commit' }));
    s.fromServer(f, wire({ type: 'input_audio_buffer.committed', item_id: 'turn', previous_item_id: 'old' }));
    s.fromServer(f, wire({ type: 'conversation.item.added', previous_item_id: 'old', item: { id: 'turn', type: 'message', role: 'user', content: [{ type: 'input_audio', transcript: null }] } }));
    s.fromClient(f, wire({ type: 'response.create' }));
  }

  it('a minute appended as G.711, committed after the switch to PCM16 was confirmed, still counts a minute', () => {
    const { s, f } = started();
    s.fromClient(f, wire({ type: 'input_audio_buffer.append', audio: g711(60) }));
    s.fromClient(f, wire({ type: 'session.update', session: input(PCM) }));
    s.fromServer(f, wire({ type: 'session.updated', session: input(PCM) }));
    commitTurn(s, f);
    // Old code: the turn was sized 10 s (~104 tokens), 1,608 in all, and nothing was pruned.
    expect(deleted(s)).toContain('old');
  });

  it('control: the same minute committed in G.711 prunes', () => {
    const { s, f } = started();
    s.fromClient(f, wire({ type: 'input_audio_buffer.append', audio: g711(60) }));
    commitTurn(s, f);
    expect(deleted(s)).toContain('old');
  });
});
