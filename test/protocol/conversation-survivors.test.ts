import { describe, expect, it } from 'vitest';
import { Frame, type JsonObject } from '../../src/pipeline/frame.js';
import { Conversation } from '../../src/protocol/conversation.js';
import { parseStrict } from '../../src/protocol/strict-json.js';
import { mergeRedactions } from '../../src/policies/content-paths.js';

/**
 * Mutation survivors of src/protocol/conversation.ts and of content-paths.ts's mergeRedactions
 * that were not equivalent (review of 2026-12-05): each test names the behaviour a surviving
 * mutant changed.
 */

const wire = (event: { type: string; [k: string]: unknown }) => new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));

describe('conversation view: an event that carries a waiting create\'s id', () => {
  it('a client frame the proxy parsed leaves with the fresh id re-serialised from what the proxy read, not its original bytes', () => {
    const c = new Conversation();
    // The proxy's own create waits for its response.created (its id follows the session's scheme: predictable).
    c.observeClient(wire({ type: 'response.create', event_id: 'event_proxy_abcdefgh_1', response: { conversation: 'none' } }), true);
    expect(c.awaitingResponses).toBe(1);
    // A number the proxy reads differently from its text (past 2^53): the filters judged 12345678901234567000.
    const text = '{"type":"conversation.item.truncate","event_id":"event_proxy_abcdefgh_1","item_id":"item_1","content_index":0,"audio_end_ms":12345678901234567890}';
    const bytes = Buffer.from(text, 'utf8');
    const parsed = parseStrict(bytes) as JsonObject;
    const frame = Frame.fromClient('conversation.item.truncate', bytes, parsed);
    let n = 0;
    const out = c.unambiguous(frame, () => `event_proxy_abcdefgh_f${++n}`);
    expect(n).toBe(1);
    // The upstream reads exactly what the filters read, under the fresh id (one reading of every frame).
    expect(out.wireBytes().toString('utf8')).toBe(JSON.stringify({ ...parsed, event_id: 'event_proxy_abcdefgh_f1' }));
    expect(out.wireBytes().toString('utf8')).toContain('"audio_end_ms":12345678901234567000');
    expect(c.clientEventId('event_proxy_abcdefgh_f1')).toBe('event_proxy_abcdefgh_1');
    // An unparsed frame (the hot path) is rewritten in its bytes, nothing else changed.
    const raw = Frame.fromClient('conversation.item.truncate', Buffer.from(text, 'utf8'));
    const rewritten = c.unambiguous(raw, () => `event_proxy_abcdefgh_f${++n}`);
    expect(rewritten.parsed).toBe(false);
    expect(rewritten.wireBytes().toString('utf8')).toBe(text.replace('"event_id":"event_proxy_abcdefgh_1"', '"event_id":"event_proxy_abcdefgh_f2"'));
  });
});

describe('content paths: two redactions of one text merged (mergeRedactions)', () => {
  it('redactions by two sources of adjacent spans (a phone number right before an e-mail address) each replace their own span: nothing of either leaks', () => {
    const original = '555-0100ann@x.io';
    // One source redacted the e-mail address, the other the phone number, with the same placeholder.
    const merged = mergeRedactions(original, '555-0100[redacted]', '[redacted]ann@x.io');
    expect(merged).toBe('[redacted][redacted]');
    // In either order, and after other text.
    expect(mergeRedactions(original, '[redacted]ann@x.io', '555-0100[redacted]')).toBe('[redacted][redacted]');
    expect(mergeRedactions(`card ${original}`, 'card 555-0100[redacted]', 'card [redacted]ann@x.io')).toBe('card [redacted][redacted]');
  });
});
