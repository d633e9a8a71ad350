import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

const version = (n: number, word: string) => `version: ${n}\nguardrails:\n  rules: [{ id: no-${word}, sources: [output], match: { phrases: [${word}] }, action: cancel_response }]\n`;
const REFUSED = 'policy edit refused: keeping the last good version';
const ADMIN = 'admin-key-for-policy-tests-0123456789';

let tp: TestProxy;
let dir: string;
beforeAll(async () => {
  dir = policyDir({ 'live.yaml': version(1, 'apple') });
  tp = await startTestProxy({
    tenants: { acme: { policy: 'live' } },
    config: { policies: { dir, watch: true, watchDebounceMs: 20 }, admin: { key: ADMIN } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

/** One session saying `text`; returns the final response status. */
async function statusOf(text: string): Promise<string> {
  const c = await tp.client();
  await c.next('session.created');
  c.say(`say: I like ${text} very much, it is a fine thing to talk about for a while.`);
  const done = await c.next('response.done');
  c.close();
  return (done['response'] as { status: string }).status;
}

function waitForLog(msg: string, pred: (l: Record<string, unknown>) => boolean = () => true): Promise<void> {
  return expect.poll(() => tp.logs.some((l) => l.msg === msg && pred(l)), { timeout: 5000 }).toBe(true);
}

describe('policy hot reload', () => {
  it('new sessions follow an edited policy; an invalid edit is refused and the last good version stays', async () => {
    expect(await statusOf('apple')).toBe('cancelled');
    expect(await statusOf('banana')).toBe('completed');

    writeFileSync(join(dir, 'live.yaml'), version(2, 'banana'));
    await waitForLog('policy reloaded', (l) => l['version'] === '2');
    expect(await statusOf('apple')).toBe('completed');
    expect(await statusOf('banana')).toBe('cancelled');

    writeFileSync(join(dir, 'live.yaml'), 'version: 3\nguardrails:\n  rules: [{ id: bad, sources: [output], match: { regex: ["(a|a)+b"] }, action: nuke }]\n');
    await waitForLog(REFUSED);
    const refused = tp.logs.find((l) => l.msg === REFUSED)!;
    expect(refused['keptVersion']).toBe('2');
    expect(JSON.stringify(refused['problems'])).toMatch(/guardrails\.rules\.0\.action/);
    expect(await statusOf('banana')).toBe('cancelled');

    const res = await fetch(`${tp.adminUrl}/admin/policies`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { policies: { name: string; version: string; lastError: string | null }[] };
    const live = body.policies.find((p) => p.name === 'live')!;
    expect(live.version).toBe('2');
    expect(live.lastError).toMatch(/action/);
  });
});
