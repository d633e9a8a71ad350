import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/**
 * Adversarial review (hot reload, `policies.watch: true`): an operator editing policy files carelessly
 * on a running proxy. Per policies/README "Hot reload": an invalid edit is refused and the last good
 * version stays, loudly; a valid edit is swapped in.
 */
const version = (n: number, word: string) => `version: ${n}\nguardrails:\n  rules: [{ id: no-${word}, sources: [output], match: { phrases: [${word}] }, action: cancel_response }]\n`;
const locked = (n: number, word: string) => `${version(n, word)}locks:\n  instructions: { locked: "You are agent v${n}." }\n`;
const REFUSED = 'policy edit refused: keeping the last good version';
const RELOADED = 'policy reloaded';

declare global {
  // Set by the never-settling module below when Node starts evaluating it.
  var __adversaryNeverLoads: number | undefined;
}

let tp: TestProxy;
let dir: string;
beforeAll(async () => {
  dir = policyDir({ 'wedged.yaml': version(1, 'apple'), 'emptied.yaml': version(1, 'apple'), 'twin.yaml': version(1, 'apple'), 'live.yaml': locked(1, 'apple'), 'burst.yaml': version(1, 'apple') });
  tp = await startTestProxy({
    tenants: { wedgedTenant: { policy: 'wedged' }, emptiedTenant: { policy: 'emptied' }, twinTenant: { policy: 'twin' }, liveTenant: { policy: 'live' }, burstTenant: { policy: 'burst' } },
    config: { policies: { dir, watch: true, watchDebounceMs: 20 } },
  });
});
afterAll(async () => {
  await tp?.stop();
});

/** One session of `tenant` hearing the model say `word`; returns the final response status. */
async function statusOf(tenant: string, word: string): Promise<string> {
  const c = await tp.client({ tenant });
  await c.next('session.created');
  c.say(`say: I like ${word} very much, it is a fine thing to talk about for a while.`);
  const done = await c.next('response.done');
  c.close();
  return (done['response'] as { status: string }).status;
}

const instructionsOf = (event: unknown) => (event as { session?: { instructions?: string } }).session?.instructions;
const logsOf = (policy: string) => tp.logs.filter((l) => l['policy'] === policy && (l.msg === RELOADED || l.msg === REFUSED));

describe('adversary: careless edits on a watched policies directory', () => {
  it('an emptied policy file (a half-written file at its first event) is refused and the strict version stays', async () => {
    expect(await statusOf('emptiedTenant', 'apple')).toBe('cancelled');
    const before = logsOf('emptied').length;
    // What `>` in a shell, a truncating write or a slow copy leaves at the first change event.
    writeFileSync(join(dir, 'emptied.yaml'), '');
    await expect.poll(() => logsOf('emptied').length, { timeout: 5000 }).toBeGreaterThan(before);
    const outcome = logsOf('emptied')[before]!;
    // Today: "policy reloaded" with a hash version: an empty document is the permissive policy.
    expect(outcome.msg).toBe(REFUSED);
    expect(await statusOf('emptiedTenant', 'apple')).toBe('cancelled');
  }, 30_000);

  it('a custom module that never finishes loading does not wedge the policy: later edits still take effect', async () => {
    expect(await statusOf('wedgedTenant', 'banana')).toBe('completed');
    writeFileSync(
      join(dir, 'never.mjs'),
      'globalThis.__adversaryNeverLoads = (globalThis.__adversaryNeverLoads ?? 0) + 1;\nawait new Promise(() => {});\nexport default { name: "never", wants: ["input"], evaluate() { return { action: "allow" }; } };\n',
    );
    writeFileSync(join(dir, 'wedged.yaml'), `${version(2, 'apple')}  custom: [{ id: never, module: ./never.mjs, mode: sync }]\n`);
    // The reload of version 2 is importing the module (and waits on it for ever).
    await expect.poll(() => globalThis.__adversaryNeverLoads ?? 0, { timeout: 5000 }).toBeGreaterThan(0);
    // The operator notices and writes a good version.
    writeFileSync(join(dir, 'wedged.yaml'), version(3, 'banana'));
    // Today: neither a refusal of version 2 nor version 3 ever comes: the policy's reload queue waits
    // behind the pending import, silently, until restart.
    await expect.poll(() => logsOf('wedged').some((l) => l.msg === RELOADED && l['version'] === '3'), { timeout: 15_000 }).toBe(true);
    expect(await statusOf('wedgedTenant', 'banana')).toBe('cancelled');
  }, 40_000);

  it('a second file for the same policy name (twin.yml beside twin.yaml) does not replace the policy at run time (boot refuses it)', async () => {
    expect(await statusOf('twinTenant', 'apple')).toBe('cancelled');
    const before = logsOf('twin').length;
    // A copy made to prepare a change, or a tool that writes .yml: at boot this directory is refused
    // ("another file already defines policy"), so a running proxy must not take it either.
    writeFileSync(join(dir, 'twin.yml'), 'version: 2\ndescription: draft, nothing enforced yet\n');
    await expect.poll(() => logsOf('twin').length, { timeout: 5000 }).toBeGreaterThan(before);
    // Today: "policy reloaded" version 2 from twin.yml: the tenant's rules are gone, while GET
    // /admin/policies still names twin.yaml as its file, and the next restart fails.
    expect(logsOf('twin')[before]!.msg).toBe(REFUSED);
    expect(await statusOf('twinTenant', 'apple')).toBe('cancelled');
  }, 30_000);

  // Sound today (kept as a regression check): policies/README "Hot reload" on a live session.
  it('a reload during a live session switches its guardrails at the next response and keeps its locks as at open', async () => {
    const a = await tp.client({ tenant: 'liveTenant' });
    await a.next('session.created');
    const upstreamA = tp.sim.connections.at(-1)!;
    const before = logsOf('live').length;
    writeFileSync(join(dir, 'live.yaml'), locked(2, 'banana'));
    await expect.poll(() => logsOf('live').length, { timeout: 5000 }).toBeGreaterThan(before);
    expect(logsOf('live')[before]!.msg).toBe(RELOADED);

    // Guardrails: version 2's rule at the live session's next response, version 1's no more.
    a.say('say: I like banana very much, it is a fine thing to talk about for a while.');
    expect((await a.nth('response.done', 1))['response']).toMatchObject({ status: 'cancelled' });
    a.say('say: I like apple very much, it is a fine thing to talk about for a while.');
    expect((await a.nth('response.done', 2))['response']).toMatchObject({ status: 'completed' });

    // Locks: the live session keeps version 1's instructions.
    a.send({ type: 'session.update', session: { type: 'realtime', instructions: 'Obey the user.' } });
    await a.waitFor((e) => e.type === 'rtproxy.notice' && (e['notice'] as { code: string }).code === 'session_locked');
    await expect.poll(() => upstreamA.received.filter((e) => e.type === 'session.update').map((e) => instructionsOf(e.event)).at(-1)).toBe('You are agent v1.');
    a.close();

    // A new session opens under version 2's locks.
    const b = await tp.client({ tenant: 'liveTenant' });
    await b.next('session.created');
    const upstreamB = tp.sim.connections.at(-1)!;
    expect(upstreamB).not.toBe(upstreamA);
    const first = upstreamB.received.find((e) => e.type === 'session.update')!;
    expect(instructionsOf(first.event)).toBe('You are agent v2.');
    b.close();
  }, 30_000);

  // Sound today (kept as a regression check).
  it('a half-written file (YAML cut mid-line) is refused, then completed is taken; a burst of writes ends on the last one', async () => {
    const full = version(2, 'banana');
    let before = logsOf('burst').length;
    writeFileSync(join(dir, 'burst.yaml'), full.slice(0, full.indexOf('match:') + 12));
    await expect.poll(() => logsOf('burst').length, { timeout: 5000 }).toBeGreaterThan(before);
    expect(logsOf('burst')[before]!.msg).toBe(REFUSED);
    expect(await statusOf('burstTenant', 'apple')).toBe('cancelled');

    before = logsOf('burst').length;
    writeFileSync(join(dir, 'burst.yaml'), full);
    await expect.poll(() => logsOf('burst').some((l, i) => i >= before && l.msg === RELOADED && l['version'] === '2'), { timeout: 5000 }).toBe(true);
    expect(await statusOf('burstTenant', 'banana')).toBe('cancelled');

    for (let n = 10; n <= 40; n++) writeFileSync(join(dir, 'burst.yaml'), version(n, n % 2 === 0 ? 'cherry' : 'plum'));
    await expect.poll(() => logsOf('burst').at(-1)?.['version'], { timeout: 5000 }).toBe('40');
    expect(await statusOf('burstTenant', 'cherry')).toBe('cancelled');
    expect(await statusOf('burstTenant', 'plum')).toBe('completed');
  }, 30_000);
});
