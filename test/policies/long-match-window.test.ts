import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/**
 * Regression (2026-12-06): a rule whose longest match is finite but longer than
 * `streamWindowChars` (128) was held back at most 128 characters, so the simulator's small deltas
 * (function-call arguments of 4-16 characters, transcript words) carried the start of a
 * 200-character match to the client before the match was complete. The policy's window now
 * covers the longest finite match of every rule (src/policies/compile.ts).
 */

const POLICY = `
guardrails:
  rules:
    - { id: long-code, sources: [tool_call], match: { regex: ["[A-Za-z0-9]{200}"] }, action: block }
    - { id: secret-code, sources: [output], match: { regex: ["secret code:.{150,180}end"] }, action: redact }
`;

/** 200 letters and digits, no 8 of them repeated elsewhere in it. */
const SECRET = Array.from({ length: 200 }, (_, i) => 'ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789'[(i * 7 + (i >> 3)) % 54]).join('');

let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy({
    tenants: { acme: { policy: 'long' } },
    config: { policies: { dir: policyDir({ 'long.yaml': POLICY }), watch: false } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

const errorCodes = (c: TestClient) => c.events.filter((e) => e.type === 'error').map((e) => (e['error'] as { code?: string }).code);
// A response stopped by a rule refuses nothing the client sent: told as a notice.
const noticeCodes = (c: TestClient) => c.ofType('rtproxy.notice').map((e) => (e['notice'] as { code?: string }).code);
/** Every 8-character piece of `s`. */
const pieces = (s: string) => Array.from({ length: s.length - 7 }, (_, i) => s.slice(i, i + 8));

describe('a finite match longer than streamWindowChars, streamed in small deltas', () => {
  it('function-call arguments: a 200-character code is blocked before any part of it reaches the client', async () => {
    const c = await tp.client();
    await c.next('session.created');
    c.say(`call:lookup {"code":"${SECRET}"}`);
    const done = await c.next('response.done');
    // Everything the client got of the response (the user's own item echo carries the code: not counted).
    const responseEvents = c.events.filter((e) => e.type.startsWith('response.'));
    const streamed = c.ofType('response.function_call_arguments.delta').map((e) => e['delta'] as string).join('');
    expect(streamed).toBe('{"code":"');
    const seen = JSON.stringify(responseEvents);
    expect(pieces(SECRET).filter((p) => seen.includes(p))).toEqual([]);
    expect(noticeCodes(c)).toContain('guardrail_blocked');
    expect((done as unknown as { response: { status: string } }).response.status).not.toBe('completed');
    c.close();
  });

  it('function-call arguments: one character short of a match passes whole (the rule is not a blanket block)', async () => {
    const c = await tp.client();
    await c.next('session.created');
    const code = SECRET.slice(1);
    c.say(`call:lookup {"code":"${code}"}`);
    await c.next('response.done');
    expect(c.ofType('response.function_call_arguments.delta').map((e) => e['delta'] as string).join('')).toBe(`{"code":"${code}"}`);
    expect([...errorCodes(c), ...noticeCodes(c)]).toEqual([]);
    c.close();
  });

  it('transcript deltas, word by word: `secret code:.{150,180}end` is redacted whole, none of it sent first', async () => {
    const c = await tp.client();
    await c.next('session.created');
    const filler = 'lorem ipsum dolor sit amet '.repeat(7).slice(0, 165);
    c.say(`say: OK. Your secret code: ${filler} end. Bye now.`);
    await c.next('response.done');
    const deltas = c.ofType('response.output_audio_transcript.delta').map((e) => e['delta'] as string);
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe('OK. Your [REDACTED:regex]. Bye now.');
    expect(c.ofType('response.output_audio_transcript.done').map((e) => e['transcript'])).toEqual(['OK. Your [REDACTED:regex]. Bye now.']);
    expect(JSON.stringify(c.events.filter((e) => e.type.startsWith('response.')))).not.toMatch(/secret code|lorem/);
    c.close();
  });
});
