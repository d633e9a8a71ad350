import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { post, until, WEBHOOK_SECRET } from './support.js';

/**
 * One transfer at a time per call. A looping agent (or a burst from a compromised app) asked for a
 * call's transfers as fast as it could, and each went upstream as a SIP REFER: nothing bounded them
 * (the red team of transfers, 2026-12-07). Now a refer while another of the same call waits for
 * OpenAI's answer is refused 409 `transfer_in_progress`, and nothing goes upstream; once the answer
 * came, the next may go. The first refer's answer is held by a TCP hop until the test lets it through
 * (no timing).
 */
const SIM_KEY = 'sk-simulator-refer-one-at-a-time';
let sim: SimulatorHandle;
let hop: Server;
let tp: TestProxy;
const sockets = new Set<Socket>();
/** Answers to refers held back, released by `release()`. */
const held: (() => void)[] = [];
let holding = true;
const release = (): void => {
  holding = false;
  for (const go of held.splice(0)) go();
};

/** A TCP hop to the simulator that holds the answer to a refer while `holding`. */
function holdingHop(target: URL): Promise<Server> {
  const server = createServer((client) => {
    sockets.add(client);
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    sockets.add(upstream);
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
      a.on('error', () => b.destroy());
    }
    let referAnswer = false;
    client.on('data', (chunk: Buffer) => {
      if (/^POST \S+\/refer /.test(chunk.toString('latin1'))) referAnswer = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (referAnswer && holding) held.push(() => client.write(chunk));
      else client.write(chunk);
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

beforeAll(async () => {
  sim = await startSimulator({ apiKey: SIM_KEY });
  hop = await holdingHop(new URL(sim.url));
  const url = `ws://127.0.0.1:${(hop.address() as AddressInfo).port}${new URL(sim.url).pathname}`;
  tp = await startTestProxy({
    tenants: { acme: {} },
    config: {
      upstream: { provider: 'openai', url, apiKey: SIM_KEY, allowCallId: true },
      calls: { enabled: true, sip: { webhookSecret: WEBHOOK_SECRET, routes: [{ tenant: 'acme', to: '+15551230001', transfer: { allow: ['tel:+1415555*'] } }] } },
    },
  });
});
afterAll(async () => {
  release();
  await tp?.stop();
  for (const s of sockets) s.destroy();
  if (hop?.listening) await new Promise<void>((resolve) => hop.close(() => resolve()));
  await sim?.close();
});

describe('call transfers, one at a time per call', () => {
  it('a refer while another waits for its answer is refused 409 transfer_in_progress and never reaches OpenAI; after the answer the next goes', async () => {
    const sipHeaders = [{ name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' }];
    const rang = await sim.calls.ring({ webhookUrl: `${tp.httpUrl}${SIP_WEBHOOK_PATH}`, webhookSecret: WEBHOOK_SECRET, sipHeaders });
    expect(JSON.parse(rang.body)['status']).toBe('accepted');
    const call = rang.call;
    await until(() => call.sidebands.length >= 1, 'the governing sideband');
    const refer = (target: string) => post(`${tp.httpUrl}/v1/realtime/calls/${call.id}/refer`, { key: tp.key('acme'), contentType: 'application/json', body: JSON.stringify({ target_uri: target }) });
    const refersUpstream = () => call.control.filter((c) => c.action === 'refer').map((c) => (c.body as { target_uri: string }).target_uri);

    const first = refer('tel:+14155550100');
    await until(() => refersUpstream().length === 1 && held.length > 0, 'the first refer upstream, its answer held');
    const burst = await Promise.all(['tel:+14155550101', 'tel:+14155550102', 'tel:+14155550103'].map(refer));
    expect(burst.map((r) => [r.status, (r.json['error'] as { code: string }).code])).toEqual([
      [409, 'transfer_in_progress'],
      [409, 'transfer_in_progress'],
      [409, 'transfer_in_progress'],
    ]);
    expect(refersUpstream()).toEqual(['tel:+14155550100']);
    // The openai SDK retries a 409 by itself: after the first answered, that retry would transfer again.
    expect(burst.map((r) => r.headers.get('x-should-retry'))).toEqual(['false', 'false', 'false']);

    release();
    expect((await first).status).toBe(200);
    const next = await refer('tel:+14155550104');
    expect(next.status).toBe(200);
    expect(refersUpstream()).toEqual(['tel:+14155550100', 'tel:+14155550104']);
  });
});
