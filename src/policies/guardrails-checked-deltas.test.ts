import { describe, expect, it } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { entryOf, policyFrom, responseCreated } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import { Frame, MalformedFrameError } from '../pipeline/frame.js';
import { GuardrailFilter } from './guardrails.js';

/**
 * A streamed delta is read without JSON.parse when its bytes allow an exact reading
 * (protocol/checked-members.ts, perf 2026-12-07): every other frame must be judged exactly as the
 * parsed event reads, and a malformed one must still reach the chain as malformed (dropped there).
 */

const POLICY = `guardrails:
  rules:
    - { id: secret, sources: [output], match: { phrases: ["forbidden word"] }, action: block }
    - { id: card, sources: [output], match: { pii: [card] }, action: redact }
`;

async function setup() {
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(POLICY, 'checked')));
  const server = (f: Frame) => session.fromServer(filter, f) as Verdict;
  server(responseCreated('resp_1'));
  return { session, server };
}

/** A transcript delta written exactly as given (members, order, escapes, duplicates). */
const raw = (text: string) => new Frame('response.output_audio_transcript.delta', Buffer.from(text, 'utf8'));
const ids = '"type":"response.output_audio_transcript.delta","response_id":"resp_1","item_id":"item_1","output_index":0,"content_index":0';

describe('streamed deltas read without a parse', () => {
  it('passes a plain delta unparsed, and holds and releases text as before', async () => {
    const { server } = await setup();
    // The first delta starts the stream (from the parsed event); the next ones are read unparsed.
    expect(server(raw(`{${ids},"delta":"Sure, "}`)).kind).toBe('continue');
    const plain = raw(`{${ids},"delta":"here "}`);
    expect(server(plain).kind).toBe('continue');
    expect(plain.parsed).toBe(false);
    // Members in another order, the same stream: the start of a card number is held back.
    const v = server(raw(`{"delta":"is 4111 1111 ","content_index":0,"item_id":"item_1","response_id":"resp_1","type":"response.output_audio_transcript.delta"}`));
    expect(v.kind).toBe('replace');
    expect(v.kind === 'replace' && v.frame.json()['delta']).toBe('is ');
  });

  it('judges a repeated delta member by the last one, as the parsed event reads', async () => {
    const { server, session } = await setup();
    const v = server(raw(`{${ids},"delta":"harmless ","delta":"the forbidden word "}`));
    expect(v.kind).toBe('drop');
    expect(session.cancelled.map((c) => c.notice.details?.['rule'])).toEqual(['secret']);
  });

  it('judges a delta member spelled with escapes (its key or its text) as the parsed event reads', async () => {
    const escapedKey = await setup();
    expect(escapedKey.server(raw(`{${ids},"delta":"harmless ","d\\u0065lta":"the forbidden word "}`)).kind).toBe('drop');
    const escapedText = await setup();
    expect(escapedText.server(raw(`{${ids},"delta":"the forbidd\\u0065n word "}`)).kind).toBe('drop');
    const ok = await setup();
    const v = ok.server(raw(`{${ids},"delta":"say \\"hi\\"\\n"}`));
    expect(v.kind).toBe('continue');
  });

  it('reads the stream ids as the parsed event does: a repeated content_index is two streams only if the parse says so', async () => {
    const { server } = await setup();
    // "forbidden" may begin the phrase: held back (the delta is rewritten without it).
    const first = server(raw(`{${ids},"delta":"the forbidden "}`));
    expect(first.kind === 'replace' && first.frame.json()['delta']).toBe('the ');
    // content_index given twice: the parsed event says 0 (the last), the same stream: the phrase completes.
    expect(server(raw(`{"type":"response.output_audio_transcript.delta","response_id":"resp_1","item_id":"item_1","content_index":7,"content_index":0,"delta":"word "}`)).kind).toBe('drop');
  });

  it('leaves a frame malformed past its members malformed: the chain drops it', async () => {
    for (const text of [`{${ids},"delta":"hi"}{"delta":"the forbidden word"}`, `{${ids},"delta":"hi"`, `{${ids},"delta":"hi",}`, `{${ids},"delta":"hi","x":01}`]) {
      const { server } = await setup();
      expect(() => server(raw(text)), text).toThrow(MalformedFrameError);
    }
  });
});
