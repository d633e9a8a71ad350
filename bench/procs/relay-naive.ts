import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer, type RawData } from 'ws';
import { serveChild } from '../lib/ipc.js';

/**
 * Child process: the relay most tutorials show: `ws` on both sides, every event parsed and
 * re-serialised (`JSON.stringify(JSON.parse(frame))`), no governance.
 */
const upstreamPort = Number(process.argv[2]);
let errors = 0;

const text = (data: RawData): string => (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer)).toString('utf8');

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
wss.on('connection', (client, req) => {
  const query = req.url?.includes('?') ? req.url.slice(req.url.indexOf('?')) : '';
  const upstream = new WebSocket(`ws://127.0.0.1:${upstreamPort}/v1/realtime${query}`, {
    headers: { authorization: 'Bearer sk-bench' },
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
  });
  const queued: string[] = [];
  client.on('message', (data) => {
    let out: string;
    try {
      out = JSON.stringify(JSON.parse(text(data)));
    } catch {
      errors++;
      return;
    }
    if (upstream.readyState === WebSocket.OPEN) upstream.send(out);
    else queued.push(out);
  });
  upstream.on('open', () => {
    for (const q of queued.splice(0)) upstream.send(q);
  });
  upstream.on('message', (data) => {
    if (client.readyState === WebSocket.OPEN) client.send(JSON.stringify(JSON.parse(text(data))));
  });
  const closeBoth = () => {
    if (client.readyState === WebSocket.OPEN) client.close(1000);
    if (upstream.readyState === WebSocket.OPEN) upstream.close(1000);
    else if (upstream.readyState === WebSocket.CONNECTING) upstream.terminate();
  };
  client.on('close', closeBoth);
  upstream.on('close', closeBoth);
  client.on('error', () => errors++);
  upstream.on('error', () => errors++);
});
await new Promise<void>((resolve) => wss.once('listening', () => resolve()));

serveChild({ port: (wss.address() as AddressInfo).port }, { counters: () => ({ errors, sessions: wss.clients.size }) });
