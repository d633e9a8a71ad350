import { describe, expect, it } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { entryOf, policyFrom, responseCreated } from '../../test/policies/support.js';
import type { Verdict } from '../pipeline/filter.js';
import { Frame } from '../pipeline/frame.js';
import { GuardrailFilter } from './guardrails.js';

/**
 * Survivors of the first mutation run of the guardrail filter's delta reading (deltaIds, deltaMembers,
 * streamKeyOf; twenty-second session, 2026-12-07): a delta read by the walk and one read from the
 * parsed event (an escape sends it there) must name the same stream and carry the same text.
 */

const POLICY = `guardrails:
  rules:
    - { id: secret, sources: [output], match: { phrases: ["forbidden word"] }, action: block }
`;

async function setup() {
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(POLICY, 'deltas22')));
  const server = (f: Frame) => session.fromServer(filter, f) as Verdict;
  server(responseCreated('resp_1'));
  return { session, server };
}

const TYPE = 'response.output_audio_transcript.delta';
/** A transcript delta written exactly as given (members, order, escapes). */
const raw = (text: string) => new Frame(TYPE, Buffer.from(text, 'utf8'));
const idsAt = (contentIndex: string, itemId = 'item_1') => `"type":"${TYPE}","response_id":"resp_1","item_id":"${itemId}","output_index":0,"content_index":${contentIndex}`;

describe('a delta read from the parsed event names the stream the unparsed read names', () => {
  it('reads content_index 1 from the parsed event as 1: the phrase split across both readings is caught', async () => {
    const { server, session } = await setup();
    const first = server(raw(`{${idsAt('1')},"delta":"the forbidden "}`));
    expect(first.kind === 'replace' && first.frame.json()['delta']).toBe('the ');
    // An escape in the text: this one is read from the parsed event.
    const second = raw(`{${idsAt('1')},"delta":"w\\u006frd "}`);
    expect(server(second).kind).toBe('drop');
    expect(second.parsed).toBe(true);
    expect(session.cancelled.map((c) => c.notice.details?.['rule'])).toEqual(['secret']);
  });

  it('reads a content_index that is not a number as 0 on both readings', async () => {
    const { server, session } = await setup();
    const first = server(raw(`{${idsAt('"1"')},"delta":"the forbidden "}`));
    expect(first.kind === 'replace' && first.frame.json()['delta']).toBe('the ');
    expect(server(raw(`{${idsAt('0')},"n\\u006fte":1,"delta":"word "}`)).kind).toBe('drop');
    expect(session.cancelled.map((c) => c.notice.details?.['rule'])).toEqual(['secret']);
  });

  it('reads a delta member that is not a string as no text, parsed or not', async () => {
    for (const extra of ['', '"n\\u006fte":1,']) {
      const { server, session } = await setup();
      const first = server(raw(`{${idsAt('0')},"delta":"the forbidden "}`));
      expect(first.kind === 'replace' && first.frame.json()['delta']).toBe('the ');
      // No text: nothing to show while "forbidden " is held (an empty delta is withheld as "" would be).
      expect(server(raw(`{${idsAt('0')},${extra}"delta":null}`)).kind, extra).toBe('drop');
      expect(server(raw(`{${idsAt('0')},"delta":"word "}`)).kind, extra).toBe('drop');
      expect(session.cancelled.map((c) => c.notice.details?.['rule'])).toEqual(['secret']);
    }
  });
});
