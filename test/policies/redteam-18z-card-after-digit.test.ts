/**
 * Red team 18z (guardrails, PII): a card number right after another digit run.
 *
 * The card detector's candidate (`\d(?:[ ./_-]?\d){12,18}`) starts at the first digit of a run and
 * its validator keeps only a Luhn-valid *prefix* of it. "ref 1 4111 1111 1111 1111" gave the
 * candidate "1 4111 1111 1111 111…", no prefix of which is a card; the finder then went on after the
 * whole candidate, past the card that starts one separator later, and nothing was redacted.
 *
 * Adversary: a tenant key under the shipped `customer-support` policy (card → redact) sends
 * `my card is 1 4111 1111 1111 1111` (any digit and a space before it): the number reaches the
 * model unchanged. The same holds across items, through the context an answer streams with
 * (#itemSeeds): an answer ending with a digit hides a card said at the start of the next one, on
 * every view of it. Guarantee broken: PII the policy redacts never reaches the model / the client
 * (policies/README.md).
 *
 * Fixed 2026-12-07 (src/policies/matchers.ts regexFinder): a rejected candidate is looked for again
 * from its next character, a trimmed one from its end.
 */
import { describe, expect, it } from 'vitest';
import type { Verdict } from '../../src/pipeline/filter.js';
import type { Frame } from '../../src/pipeline/frame.js';
import { customerSupportProxy } from './shipped-policy.js';
import { guardrailsWith, wire } from './support.js';

const CARD = '4111 1111 1111 1111';
const { relayedText } = customerSupportProxy();

const POLICY = `
guardrails:
  rules:
    - { id: card-number, sources: [output, input], match: { pii: [card] }, action: redact, replacement: "[card]" }
`;
const assistant = (id: string, status: string, transcript: string | null) => ({ id, object: 'realtime.item', type: 'message', role: 'assistant', status, content: transcript === null ? [] : [{ type: 'output_audio', transcript }] });

/** The frames of one streamed spoken answer (deltas word by word, its .done, response.done). */
function answer(n: number, text: string): Frame[] {
  const responseId = `resp_${n}`;
  const itemId = `item_${n}`;
  const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
  return [
    wire({ type: 'response.created', response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [] } }),
    wire({ type: 'response.output_item.added', response_id: responseId, output_index: 0, item: assistant(itemId, 'in_progress', null) }),
    wire({ type: 'conversation.item.added', previous_item_id: null, item: assistant(itemId, 'in_progress', null) }),
    ...text.split(/(?<= )/).map((delta) => wire({ type: 'response.output_audio_transcript.delta', ...ids, delta })),
    wire({ type: 'response.output_audio_transcript.done', ...ids, transcript: text }),
    wire({ type: 'response.done', response: { id: responseId, object: 'realtime.response', status: 'completed', output: [assistant(itemId, 'completed', text)] } }),
  ];
}

/** What the client gets of a server frame ('' when dropped). */
const shown = (frame: Frame, v: Verdict): string => (v.kind === 'replace' ? v.frame.wireBytes().toString('utf8') : v.kind === 'continue' ? frame.wireBytes().toString('utf8') : '');

describe('red team 18z: a card number after another digit run (customer-support: card, redact)', () => {
  it('a digit and a space before a card number do not hide it', async () => {
    // Old code: 'my card is 1 4111 1111 1111 1111' reached the upstream unchanged.
    expect(await relayedText(`my card is 1 ${CARD}`)).toBe('my card is 1 [REDACTED:card]');
    expect(await relayedText(`order 123456 ${CARD} please`)).toBe('order 123456 [REDACTED:card] please');
  });

  it("an answer ending with a digit does not hide a card said at the start of the next", async () => {
    const { server } = await guardrailsWith(POLICY);
    const out: string[] = [];
    for (const f of [...answer(1, 'Your order number is 123456'), ...answer(2, `${CARD} is the card on file.`)]) {
      const v = await server(f);
      out.push(v.kind === 'close' ? `close ${v.error.code}` : shown(f, v));
    }
    // Old code: the deltas, the .done and response.done of the second answer showed the card whole.
    expect(out.filter((t) => t.includes('4111') || t.includes('1111 1111'))).toEqual([]);
    expect(out.some((t) => t.includes('[card]'))).toBe(true);
  });
});
