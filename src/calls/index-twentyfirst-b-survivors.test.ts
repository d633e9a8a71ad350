import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from './index.js';
import { startSimulator, type SimCall, type SimulatorHandle } from '../simulator/index.js';
import { startTestProxy, type TestProxy } from '../../test/support/harness.js';
import { tempDir } from '../../test/support/temp-dir.js';
import { controlHop, type ControlHop } from '../../test/calls/control-hop.js';
import { post, sipHeadersTo, until, WEBHOOK_SECRET } from '../../test/calls/support.js';

/**
 * The survivors of the transfer claim (src/calls/index.ts, `transfer <callId>` in the calls store,
 * 8557db1), twenty-first session: two proxy instances in this process share one SQLite file, so the
 * claim (not each process's Set) is what keeps one call's second refer from going upstream. The
 * refers' answers are held by a TCP hop in front of the simulator (no timing); the store's failures
 * are SQLite triggers on the transfer claims' rows (the call's own record still reads).
 */
const SIM_KEY = 'sk-sim-refer-claim-survivors';
const TO = '+15551230001';
let sim: SimulatorHandle;
let hop: ControlHop;
let ledger = '';
let a: TestProxy;
let b: TestProxy;
const held: (() => void)[] = [];
let holding = true;
const releaseAll = (): void => {
  for (const go of held.splice(0)) go();
};

beforeAll(async () => {
  sim = await startSimulator({ apiKey: SIM_KEY });
  hop = await controlHop(sim.url, (line) => (/^POST \S+\/refer /.test(line) ? (deliver) => (holding ? held.push(deliver) : deliver()) : 'pass'));
  ledger = `${tempDir('rp-refer-claim-')}/ledger.sqlite`;
  const instance = () =>
    startTestProxy({
      tenants: { acme: {} },
      config: {
        upstream: { provider: 'openai', url: hop.url, apiKey: SIM_KEY, allowCallId: true },
        metering: { ledger: { path: ledger } },
        calls: { enabled: true, sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: TO, transfer: { allow: ['tel:+1415555*'] } }] } },
      },
    });
  a = await instance();
  b = await instance();
}, 60_000);
afterAll(async () => {
  holding = false;
  releaseAll();
  await b?.stop();
  await a?.stop();
  await hop?.close();
  await sim?.close();
});

async function ring(): Promise<SimCall> {
  const rang = await sim.calls.ring({ webhookUrl: `${a.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders: sipHeadersTo(TO) });
  expect(JSON.parse(rang.body)['status']).toBe('accepted');
  await until(() => rang.call.sidebands.length >= 1, 'the governing sideband');
  return rang.call;
}
const refer = (tp: TestProxy, call: SimCall, target: string) => post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: JSON.stringify({ target_uri: target }) });
const refersUpstream = (call: SimCall) => call.control.filter((c) => c.action === 'refer').length;
const codeOf = (r: { json: Record<string, unknown> }) => (r.json['error'] as { code?: string } | undefined)?.code;

/** Runs `sql` on the instances' shared file from a connection of the test's own. */
function onLedger(sql: string): void {
  const db = new Database(ledger);
  try {
    db.pragma('busy_timeout = 5000');
    db.exec(sql);
  } finally {
    db.close();
  }
}

describe('the transfer claim shared by instances', () => {
  it("a refer in flight through one instance: the other refuses the call's next 409 (not retried); another call's refer goes; the claim is gone before the answer", async () => {
    const call = await ring();
    const other = await ring();
    const first = refer(a, call, 'tel:+14155550100');
    await until(() => refersUpstream(call) === 1 && held.length === 1, 'the first refer upstream, its answer held');

    // Another instance: only the store's claim (leased, not lapsed) knows the refer in flight.
    const elsewhere = await refer(b, call, 'tel:+14155550101');
    expect([elsewhere.status, codeOf(elsewhere), elsewhere.headers.get('x-should-retry')]).toEqual([409, 'transfer_in_progress', 'false']);
    // The same instance: in progress whatever the target (checked before the allow-list), nothing refused or counted.
    const refused = await refer(a, call, 'tel:+19005550100');
    expect([refused.status, codeOf(refused)]).toEqual([409, 'transfer_in_progress']);
    expect(a.logs.some((l) => l['event'] === 'call_transfer_refused')).toBe(false);
    expect(refersUpstream(call)).toBe(1);

    // The claim is the call's own: another call's refer, through the other instance, goes meanwhile.
    const otherReferred = refer(b, other, 'tel:+14155550102');
    await until(() => refersUpstream(other) === 1 && held.length === 2, "the other call's refer upstream");

    holding = false;
    releaseAll();
    expect((await first).status).toBe(200);
    expect((await otherReferred).status).toBe(200);
    // Forgotten before the first's answer was passed on: the next, from the other instance, goes at once.
    const next = await refer(b, call, 'tel:+14155550103');
    expect(next.status).toBe(200);
    expect(refersUpstream(call)).toBe(2);
  });

  it('the store refuses the claim: 503 calls_store_unavailable, nothing upstream; the call is not left in progress', async () => {
    // Answers pass (the test may run alone).
    holding = false;
    const call = await ring();
    onLedger(`CREATE TRIGGER refuse_transfer_claims BEFORE INSERT ON call_bindings WHEN NEW.kind = 'webhook' AND NEW.id LIKE 'transfer %' BEGIN SELECT RAISE(ABORT, 'the test refuses transfer claims'); END`);
    try {
      const down = await refer(a, call, 'tel:+14155550110');
      expect([down.status, codeOf(down)]).toEqual([503, 'calls_store_unavailable']);
    } finally {
      onLedger('DROP TRIGGER refuse_transfer_claims');
    }
    expect(refersUpstream(call)).toBe(0);
    // Not in flight in this process either: the next refer goes.
    const next = await refer(a, call, 'tel:+14155550111');
    expect(next.status).toBe(200);
    expect(refersUpstream(call)).toBe(1);
  });

  it('a claim that cannot be forgotten: logged with the call, the answer passed on all the same', async () => {
    // Answers pass (the test may run alone).
    holding = false;
    const call = await ring();
    onLedger(`CREATE TRIGGER keep_transfer_claims BEFORE DELETE ON call_bindings WHEN OLD.kind = 'webhook' AND OLD.id LIKE 'transfer %' BEGIN SELECT RAISE(ABORT, 'the test keeps transfer claims'); END`);
    try {
      const done = await refer(a, call, 'tel:+14155550120');
      expect(done.status).toBe(200);
    } finally {
      onLedger('DROP TRIGGER keep_transfer_claims');
    }
    const line = a.logs.find((l) => l['call'] === call.id && typeof l['msg'] === 'string' && l['msg'].includes('transfer claim could not be forgotten'));
    expect(line).toMatchObject({ level: 50, call: call.id, msg: "a transfer claim could not be forgotten: the call's next transfer waits for its lease" });
    expect(typeof line?.['err']).toBe('string');
  });
});
