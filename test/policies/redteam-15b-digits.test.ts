/**
 * Red team (guardrails, second pass of the fifteenth session): card numbers in the decimal digits of
 * another script.
 *
 * The `card`, `iban` and `phone` detectors take ASCII digits (`\d`), and the fold maps only the
 * compatibility digits (fullwidth, mathematical) to them. Arabic-Indic (`٤١١١`), Devanagari
 * (`४१११`), Thai (`๔๑๑๑`) and the other `Nd` digits were kept. A model reads them as digits. So a
 * user under `customer-support` types a card number in Arabic-Indic digits and it reaches the model
 * whole (`card-numbers-in`, redact: "Card numbers in typed text and tool outputs never reach the
 * model"), and a user who asks the model to read a stored card back "in Hindi numerals" gets it on
 * the client (`no-card-numbers-out`, cancel_response). Decimal digits of every script now fold to
 * ASCII (src/policies/normalize.ts `asciiDigit`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolve } from 'node:path';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { barrier, errorOf, recordingUpstream, type RecordingUpstream } from '../governance/edges-support.js';
import { normalizeText } from '../../src/policies/normalize.js';
import { userMessage } from './support.js';

/** `text` with its ASCII digits written in the script whose zero is `zero`. */
const digitsOf = (zero: number, text: string): string => text.replace(/[0-9]/g, (d) => String.fromCodePoint(zero + Number(d)));
const ARABIC_INDIC = 0x660;
const DEVANAGARI = 0x966;
const CARD = '4111 1111 1111 1111';
/** The upstream answers a response.create with the card read back in Devanagari digits. */
const SPOKEN = ['Your card on file is ', digitsOf(DEVANAGARI, '4111 1111 '), digitsOf(DEVANAGARI, '1111 1111'), ', as requested.'];

let upstream: RecordingUpstream;
let tp: TestProxy;
let n = 0;
beforeAll(async () => {
  upstream = await recordingUpstream((event, send) => {
    if (event.type !== 'response.create') return;
    const ids = { response_id: 'resp_1', item_id: 'item_out', output_index: 0, content_index: 0 };
    send({ type: 'response.created', event_id: 'ev_c', response: { id: 'resp_1', object: 'realtime.response', status: 'in_progress', output: [] } });
    SPOKEN.forEach((delta, i) => send({ type: 'response.output_audio_transcript.delta', event_id: `ev_d${i}`, ...ids, delta }));
    send({ type: 'response.output_audio_transcript.done', event_id: 'ev_t', ...ids, transcript: SPOKEN.join('') });
  });
  tp = await startTestProxy({
    tenants: { acme: { policy: 'customer-support' } },
    config: { upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' }, policies: { dir: resolve(import.meta.dirname, '../../policies'), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
  await upstream?.close();
});

/** Sends one user text item; the text of the item as it reached the upstream. */
async function relayedText(text: string): Promise<string> {
  const c = await tp.client();
  const up = await upstream.connection(++n);
  await c.next('session.created');
  const before = up.raw.length;
  c.send({ type: 'conversation.item.create', event_id: 'evt_item', item: userMessage(text) });
  await barrier(c, up, `dg${n}`);
  const raw = up.raw.slice(before).find((r) => r.includes('conversation.item.create'));
  c.close();
  const item = (JSON.parse(raw ?? '{}') as { item?: { content?: { text?: string }[] } }).item;
  return item?.content?.[0]?.text ?? '(not relayed)';
}

describe('card numbers in other scripts\u2019 digits (customer-support)', () => {
  it('input: an Arabic-Indic card number is redacted before the model sees it', async () => {
    // Old code: 'my card is ٤١١١ ١١١١ ١١١١ ١١١١' reached the upstream unchanged.
    expect(await relayedText(`my card is ${digitsOf(ARABIC_INDIC, CARD)}`)).toBe('my card is [REDACTED:card]');
  });

  it('input: mixed scripts in one number, and Devanagari without separators', async () => {
    expect(await relayedText(`card ${digitsOf(ARABIC_INDIC, '4111')} 1111 1111 1111 thanks`)).toBe('card [REDACTED:card] thanks');
    expect(await relayedText(`card ${digitsOf(DEVANAGARI, '4111111111111111')}`)).toBe('card [REDACTED:card]');
  });

  it('control: digits of other scripts that are no card pass unchanged', async () => {
    const order = `order ${digitsOf(ARABIC_INDIC, '1234')} arrives`;
    expect(await relayedText(order)).toBe(order);
  });

  it('output: a card read back in Devanagari digits stops the response before its digits show', async () => {
    const c = await tp.client();
    await upstream.connection(++n);
    await c.next('session.created');
    c.send({ type: 'response.create', event_id: 'evt_resp' });
    const error = await c.next('error');
    const shown = c.ofType('response.output_audio_transcript.delta').map((e) => String(e['delta'])).join('');
    c.close();
    // Old code: every delta reached the client and no error came (the wait timed out).
    expect(errorOf(error).code).toBe('response_cancelled_by_policy');
    expect(normalizeText(shown)).not.toMatch(/4111/);
  });

  it('normalize: decimal digits of every script read as ASCII digits; other numbers are kept', () => {
    expect(normalizeText(digitsOf(ARABIC_INDIC, '0123456789'))).toBe('0123456789');
    expect(normalizeText(digitsOf(0x0e50, '4242'))).toBe('4242'); // Thai
    expect(normalizeText(digitsOf(0x1d7ce, '42'))).toBe('42'); // mathematical bold (NFKD, as before)
    // Two runs of ten next to each other (U+116D0 and U+116DA, Myanmar Extended-C): each from its own zero.
    expect(normalizeText(digitsOf(0x116da, '42'))).toBe('42');
    expect(normalizeText('Ⅻ ½')).toBe('XII 1⁄2'); // not decimal digits: as NFKD leaves them
  });
});
