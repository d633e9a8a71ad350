import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import httpProxy from 'http-proxy';
import { serveChild } from '../lib/ipc.js';

/**
 * Child process: a byte-level WebSocket passthrough (http-proxy with `ws: true`). After the
 * upgrade it pipes the two TCP sockets; frames are never looked at. The floor for a relay.
 */
const upstreamPort = Number(process.argv[2]);
const proxy = httpProxy.createProxyServer({ target: `ws://127.0.0.1:${upstreamPort}`, ws: true });
let errors = 0;
proxy.on('error', () => {
  errors++;
});
const server = createServer((_req, res) => {
  res.writeHead(404).end();
});
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head));
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));

serveChild({ port: (server.address() as AddressInfo).port }, { counters: () => ({ errors }) });
