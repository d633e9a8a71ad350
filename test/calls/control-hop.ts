import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startSimulator, type SimulatorHandle } from '../../src/simulator/index.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { WEBHOOK_SECRET } from './support.js';

/**
 * What becomes of the answer to one request through the hop: `pass` it on, `cut` the connection
 * when it comes (the upstream acted on the request; its answer is lost), or hand it to a function
 * that delivers it when it likes (held back until the test lets it through).
 */
export type AnswerFate = 'pass' | 'cut' | ((deliver: () => void) => void);

export interface ControlHop {
  /** The upstream URL to give the proxy: the simulator's, through the hop. */
  readonly url: string;
  /** Stops listening and cuts every connection through the hop (later requests never leave). */
  close(): Promise<void>;
}

/**
 * A TCP hop in front of the simulator (`target`: its URL) that decides, by the request line of each
 * request the proxy sends through it (`POST /v1/realtime/calls/rtc_1/refer HTTP/1.1`), what becomes
 * of its answer: how the calls tests lose or hold an accept's or a refer's answer without timing.
 * A request is read from the first bytes of a chunk (the proxy writes its head in one).
 */
export function controlHop(target: string, fateOf: (requestLine: string) => AnswerFate): Promise<ControlHop> {
  const upstreamUrl = new URL(target);
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: upstreamUrl.hostname, port: Number(upstreamUrl.port) });
    for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
      sockets.add(a);
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
      a.on('error', () => b.destroy());
    }
    let fate: AnswerFate = 'pass';
    client.on('data', (chunk: Buffer) => {
      const line = /^[A-Z]+ \S+ HTTP\/1\.[01]/.exec(chunk.subarray(0, 512).toString('latin1'));
      if (line) fate = fateOf(line[0]);
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (fate === 'pass') client.write(chunk);
      else if (fate === 'cut') {
        client.destroy();
        upstream.destroy();
      } else fate(() => client.write(chunk));
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}${upstreamUrl.pathname}`,
        close: async () => {
          const closed = server.listening ? new Promise<void>((done) => server.close(() => done())) : Promise.resolve();
          for (const s of sockets) s.destroy();
          await closed;
        },
      }),
    ),
  );
}

/** A SIP-calls proxy dialling the simulator through a `controlHop` (see `callsProxyBehindHop`). */
export interface CallsProxyBehindHop {
  readonly sim: SimulatorHandle;
  readonly hop: ControlHop;
  readonly tp: TestProxy;
  /** Stops the proxy, the hop and the simulator. */
  stop(): Promise<void>;
}

/**
 * The simulator (its key `simKey`), a `controlHop` in front of it deciding each control answer's
 * fate, and a proxy (tenant `acme`, calls on with `routes`, `?call_id=` allowed) dialling through it.
 */
export async function callsProxyBehindHop(simKey: string, fateOf: (requestLine: string) => AnswerFate, routes: { tenant: string; to: string; transfer?: { allow: string[] } }[]): Promise<CallsProxyBehindHop> {
  const sim = await startSimulator({ apiKey: simKey });
  const hop = await controlHop(sim.url, fateOf);
  const tp = await startTestProxy({
    tenants: { acme: {} },
    config: {
      upstream: { provider: 'openai', url: hop.url, apiKey: simKey, allowCallId: true },
      calls: { enabled: true, sip: { webhookSecret: WEBHOOK_SECRET, routes } },
    },
  });
  return {
    sim,
    hop,
    tp,
    stop: async () => {
      await tp.stop();
      await hop.close();
      await sim.close();
    },
  };
}
