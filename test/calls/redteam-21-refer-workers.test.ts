import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { tempDir } from '../support/temp-dir.js';
import { controlHop, type ControlHop } from './control-hop.js';
import { sipHeadersTo, until, WEBHOOK_SECRET } from './support.js';

/**
 * One transfer at a time per call, with `server.workers: 2`. A looping agent (or a compromised app
 * with the tenant's key) sends one call's refers as fast as it can, each on a connection of its own,
 * as an HTTP client pool does. The relay workers share the client port (SO_REUSEPORT): the kernel
 * spreads the connections over them. Until 2026-12-07 the refer in flight was known only to the
 * worker that sent it (a Set in its process): a refer landing in the other worker passed the check
 * and went upstream as a second SIP REFER while the first waited for its answer, so the guarantee
 * ("one at a time per call, so a looping agent cannot send REFERs without bound") held per process,
 * not per instance. Now the refer in flight is claimed in the calls store every worker (and
 * instance) shares. Refers' answers are held by a TCP hop in front of the simulator (no timing).
 */
const SIM_KEY = 'sk-sim-refer-workers';
let sim: SimulatorHandle;
let hop: ControlHop;
let tp: TestProxy;
const held: (() => void)[] = [];
beforeAll(async () => {
  sim = await startSimulator({ apiKey: SIM_KEY });
  hop = await controlHop(sim.url, (line) => (/^POST \S+\/refer /.test(line) ? (deliver) => held.push(deliver) : 'pass'));
  const dir = tempDir('rp-refer-workers-');
  tp = await startTestProxy({
    tenants: { acme: {} },
    config: {
      // Workers share the calls store and ledger through a file (an in-memory one is each process's own).
      server: { workers: 2 },
      metering: { ledger: { path: `${dir}/ledger.sqlite` } },
      upstream: { provider: 'openai', url: hop.url, apiKey: SIM_KEY, allowCallId: true },
      calls: { enabled: true, sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001', transfer: { allow: ['tel:+1415555*'] } }] } },
    },
  });
}, 60_000);
afterAll(async () => {
  for (const go of held.splice(0)) go();
  await tp?.stop();
  await hop?.close();
  await sim?.close();
});

/** A refer on a connection of its own (the kernel picks its worker): its status and error code. */
async function refer(callId: string, target: string): Promise<[number, string]> {
  const res = await fetch(`${tp.httpUrl}/v1/realtime/calls/${callId}/refer`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tp.key('acme')}`, 'content-type': 'application/json', connection: 'close' },
    body: JSON.stringify({ target_uri: target }),
  });
  const text = await res.text();
  const body = (text ? JSON.parse(text) : {}) as { error?: { code?: string } };
  return [res.status, body.error?.code ?? ''];
}

describe('one transfer at a time per call across relay workers', () => {
  it('while a refer waits for its answer, refers on other connections (either worker) are refused 409 and never reach OpenAI', { timeout: 90_000 }, async () => {
    const rang = await sim.calls.ring({ webhookUrl: `${tp.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: sipHeadersTo('+15551230001') });
    expect(JSON.parse(rang.body)['status']).toBe('accepted');
    const call = rang.call;
    await until(() => call.sidebands.length >= 1, 'the governing sideband', 30_000);
    const refersUpstream = () => call.control.filter((c) => c.action === 'refer').length;

    const first = refer(call.id, 'tel:+14155550100');
    await until(() => refersUpstream() === 1 && held.length === 1, 'the first refer upstream, its answer held', 30_000);
    // 24 more, one connection each: that all land in the first refer's worker is a chance of 2^-24.
    const answers: Array<[number, string] | 'second refer upstream'> = [];
    for (let i = 0; i < 24; i++) {
      const secondUpstream = until(() => refersUpstream() > 1, 'a second refer upstream', 60_000).then(() => 'second refer upstream' as const);
      answers.push(await Promise.race([refer(call.id, `tel:+1415555${String(i).padStart(4, '0')}`), secondUpstream]));
      if (answers.at(-1) === 'second refer upstream') break;
    }
    // Old code: 'second refer upstream' (a refer sent by the other worker while the first waited).
    expect(new Set(answers.map((a) => JSON.stringify(a)))).toEqual(new Set([JSON.stringify([409, 'transfer_in_progress'])]));
    expect(refersUpstream()).toBe(1);

    // Once the first is answered, the next refer goes (from whichever worker).
    for (const go of held.splice(0)) go();
    expect((await first)[0]).toBe(200);
    const next = refer(call.id, 'tel:+14155550199');
    await until(() => refersUpstream() === 2 && held.length === 1, 'the next refer upstream', 30_000);
    for (const go of held.splice(0)) go();
    expect((await next)[0]).toBe(200);
  });
});
