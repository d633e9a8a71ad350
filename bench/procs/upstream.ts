import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startFakeUpstream, type FakeUpstreamOptions } from '../fake-upstream.js';
import { serveChild } from '../lib/ipc.js';

/**
 * Child process: the fast fake upstream, plus an OTLP/HTTP sink that accepts and discards trace
 * exports (so a governed proxy exports for real without a collector on the relay's core).
 * argv[2]: FakeUpstreamOptions as JSON.
 */
const options = JSON.parse(process.argv[2] ?? '{}') as FakeUpstreamOptions;
const up = await startFakeUpstream(options);

const otlp = { requests: 0, bytes: 0 };
const sink = createServer((req, res) => {
  otlp.requests++;
  req.on('data', (c: Buffer) => (otlp.bytes += c.length));
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
});
await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));

serveChild(
  { port: up.port, otlpUrl: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces` },
  {
    counters: () => ({ ...up.stats, otlpRequests: otlp.requests, otlpBytes: otlp.bytes }),
    record: (on) => {
      if (on === true) up.latency.reset();
      up.recording = on === true;
      return null;
    },
    latency: () => up.latency.toJSON(),
    pacing: (p) => {
      up.pacing = p === 'burst' ? 'burst' : 'realtime';
      return null;
    },
    closeAll: (code) => {
      up.closeAll(typeof code === 'number' ? code : 1000);
      return null;
    },
  },
);
