import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TextScanner } from '../../src/policies/matchers.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir, policyFrom } from './support.js';

/**
 * Red team 16 (denial of service): a rule with an unbounded pattern (`\d+`, `[A-Z]+`, `acct-\w+`,
 * `secret.*`: an operator's "redact account numbers") held a match that is still growing from its
 * start. A tenant asks the model for a long run of digits (or a compromised upstream streams one
 * without end): the match never settles, so the proxy held every character of it, and every delta
 * re-normalised and re-scanned all of the held text. Memory per stream grew with the stream and CPU
 * with its square (5,000 deltas of 8 digits: 40,000 characters held, ~100 M characters scanned),
 * against "every buffer has a byte budget" and the scan budget other sessions rely on. Now the hold
 * reaches back the streaming window at most (as the README says of unbounded patterns: their longer
 * matches are released in pieces, each piece redacted).
 */

const RULE = (pattern: string, source: string, action = 'redact') => `
guardrails:
  rules:
    - { id: unbounded, sources: [${source}], match: { regex: ["${pattern}"] }, action: ${action} }
`;

/** The bound streams use (guardrails.ts streamHoldChars). */
const holdChars = (p: { windowChars: number; maxInputChars: number }) => Math.max(p.windowChars, p.maxInputChars);

describe('a growing match of an unbounded pattern, streamed', () => {
  it.each([
    ['\\\\d+', '', '12345678'],
    ['[A-Z]+', '', 'ABCDEFGH'],
    ['acct-[0-9a-z]+', 'acct-', 'abcd1234'],
    ['secret.*', 'secret ', 'xx yy zz'],
  ])('%s: text held and text scanned per delta stay bounded', async (pattern, first, chunk) => {
    const policy = await policyFrom(RULE(pattern, 'output'));
    const scanner = new TextScanner(policy.rules, policy.windowChars, '', 'text', holdChars(policy));
    if (first) scanner.push(first);
    let mostHeld = 0;
    let mostScanned = 0;
    let overHold = false;
    let released = '';
    for (let i = 0; i < 2000; i++) {
      const r = scanner.push(chunk);
      overHold ||= r.overHold === true;
      if (!overHold) released += r.text;
      mostHeld = Math.max(mostHeld, scanner.held.length);
      // `recent` is the text the push normalised and matched: the work of one delta.
      mostScanned = Math.max(mostScanned, scanner.recent.length);
    }
    // Held: at most the bound (plus the delta that has just arrived). Before the fix: 16,000.
    expect(mostHeld).toBeLessThanOrEqual(holdChars(policy) + chunk.length);
    // Scanned per delta: released context (the window) + held + delta. Before the fix: 16,000.
    expect(mostScanned).toBeLessThanOrEqual(policy.windowChars + holdChars(policy) + 2 * chunk.length);
    // The caller is told (it applies overScanLimit), and nothing of the run left before it was.
    expect(overHold).toBe(true);
    expect(released).not.toContain(chunk);
  });

  it('a match that fits the bound is still held and redacted whole, without overHold', async () => {
    const policy = await policyFrom(RULE('\\\\d+', 'output'));
    const scanner = new TextScanner(policy.rules, policy.windowChars, '', 'text', holdChars(policy));
    let out = '';
    const run = '0123456789'.repeat(90);
    for (const d of ['call me on ', ...run.match(/.{1,7}/g)!, ' now', ' thanks']) {
      const r = scanner.push(d);
      expect(r.overHold ?? false).toBe(false);
      out += r.text;
    }
    out += scanner.push('', true).text;
    expect(out).toBe('call me on [REDACTED:regex] now thanks');
  });
});

const DIGITS = Array.from({ length: 12_000 }, (_, i) => String((i * 7) % 10)).join('');
/** A stopped stream refuses nothing the client sent: the client is told with a notice. */
const noticesOf = (events: readonly { type: string; [k: string]: unknown }[]) => events.filter((e) => e.type === 'rtproxy.notice').map((e) => e['notice'] as { code?: string; details?: { rule?: string } });

describe('through the proxy: tool-call arguments of 12,000 digits under a `\\d+` redact rule', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await startTestProxy({
      tenants: { acme: { policy: 'digits' }, lenient: { policy: 'digits-pass' } },
      config: {
        policies: {
          dir: policyDir({
            'digits.yaml': RULE('\\\\d+', 'tool_call'),
            'digits-pass.yaml': `${RULE('\\\\d+', 'tool_call')}  overScanLimit: pass_unscanned\n`,
          }),
          watch: false,
        },
      },
    });
  });
  afterAll(async () => {
    await tp?.stop();
  });

  it('overScanLimit block (the default): the stream stops once the run passes the hold bound, no digit sent', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.say(`call:lookup {"code":"${DIGITS}"}`);
    await c.next('response.done');
    const streamed = c.ofType('response.function_call_arguments.delta').map((e) => e['delta'] as string).join('');
    expect(streamed).not.toMatch(/\d/);
    // Before the fix the whole run was held (and rescanned per delta) and released redacted at `.done`: no error.
    expect(noticesOf(c.events).map((e) => e.code)).toContain('guardrail_blocked');
    expect(tp.logs.some((l) => JSON.stringify(l).includes('hold_limit'))).toBe(true);
    c.close();
  });

  it('overScanLimit pass_unscanned: redacted pieces leave as the run streams, instead of all of it held until .done', async () => {
    const c = await tp.client({ tenant: 'lenient' });
    await c.next('session.created');
    c.say(`call:lookup {"code":"${DIGITS}"}`);
    await c.next('response.done');
    const deltas = c.ofType('response.function_call_arguments.delta').map((e) => e['delta'] as string);
    // The simulator streams 4-16 characters a delta (~1,200 deltas). Before the fix the client got
    // the opening `{"code":"` and then one delta at `.done`: the proxy held all 12,000 digits.
    expect(deltas.length).toBeGreaterThan(12_000 / 16 / 4);
    const streamed = deltas.join('');
    expect(streamed).not.toMatch(/\d/);
    expect(streamed.startsWith('{"code":"[REDACTED:regex]')).toBe(true);
    c.close();
  });
});

/**
 * The same hold, reached without an unbounded pattern: a possible phrase match is bounded in folded
 * characters, and combining marks fold to nothing. A model told to write "ignore prev" and then
 * combining accents without end (or an upstream streaming them) made the proxy hold and re-scan
 * every one of them: 3,000 deltas of 8 marks held 24,011 characters, each delta scanning them all.
 */
describe('a phrase prefix followed by endless combining marks', () => {
  it('is held at most the bound, and the caller is told (overScanLimit decides)', async () => {
    const policy = await policyFrom(`
guardrails:
  rules:
    - { id: injection, sources: [output], match: { phrases: ["ignore previous instructions"] }, action: block }
`);
    const scanner = new TextScanner(policy.rules, policy.windowChars, '', 'text', holdChars(policy));
    let released = scanner.push('please ignore prev').text;
    let most = 0;
    let overHold = false;
    for (let i = 0; i < 3000; i++) {
      const r = scanner.push('\u0301'.repeat(8));
      overHold ||= r.overHold === true;
      if (!overHold) released += r.text;
      most = Math.max(most, scanner.held.length, scanner.recent.length);
    }
    expect(most).toBeLessThanOrEqual(policy.windowChars + holdChars(policy) + 16);
    expect(overHold).toBe(true);
    // Nothing of the prefix left before the caller was told.
    expect(released).toBe('please ');
  });
});

describe('through the proxy: "ignore prev" and 3,000 combining accents in tool-call arguments', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await startTestProxy({
      tenants: { acme: { policy: 'phrase' } },
      config: {
        policies: {
          dir: policyDir({ 'phrase.yaml': 'guardrails:\n  rules:\n    - { id: injection, sources: [tool_call], match: { phrases: ["ignore previous instructions"] }, action: block }\n' }),
          watch: false,
        },
      },
    });
  });
  afterAll(async () => {
    await tp?.stop();
  });

  it('stops the stream at the hold bound (overScanLimit block) without sending the prefix', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.say(`call:lookup {"q":"ignore prev${'\u0301'.repeat(3000)}"}`);
    await c.next('response.done');
    const streamed = c.ofType('response.function_call_arguments.delta').map((e) => e['delta'] as string).join('');
    expect(streamed).not.toContain('ignore');
    // Before the fix all of it was held until `.done` (no match there: released whole), no error.
    expect(noticesOf(c.events).map((e) => e.code)).toContain('guardrail_blocked');
    c.close();
  });
});
