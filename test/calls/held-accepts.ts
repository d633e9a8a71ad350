import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { SIP_WEBHOOK_PATH } from '../../src/calls/index.js';
import { simSignWebhook } from '../../src/simulator/index.js';
import { post } from './support.js';

/** The SIP headers of a call to the number the redelivery tests route to tenant `acme`. */
export const SIP_TO_ACME = [
  { name: 'From', value: '"Caller" <sip:+15550001111@example.net>;tag=abc' },
  { name: 'To', value: '<sip:+15551230001@sip.api.openai.com>' },
];

export interface HeldAccepts {
  /** The sideband URL for `upstream.url`. */
  readonly url: string;
  /** Every call id whose accept the stand-in received, in order. */
  readonly accepts: string[];
  /** Whether the first accept of this call is being held. */
  holding(callId: string): boolean;
  /** Ends the held first accept of this call with a network error. */
  fail(callId: string): void;
  close(): Promise<void>;
}

/**
 * An OpenAI stand-in for SIP redelivery tests: the first accept of each call hangs until `fail`
 * (then the connection drops, a network error); later accepts, rejects and hangups succeed. Its
 * sideband is a GA session that says `session.created` and nothing more.
 */
export async function heldAccepts(): Promise<HeldAccepts> {
  const accepts: string[] = [];
  const held = new Map<string, () => void>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const m = /\/calls\/([^/]+)\/(accept|reject|hangup)$/.exec(req.url ?? '');
    if (m?.[2] === 'accept') {
      const callId = m[1]!;
      accepts.push(callId);
      if (!held.has(callId)) {
        held.set(callId, () => req.socket.destroy());
        return;
      }
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  const sidebands = new WebSocketServer({ server, perMessageDeflate: false });
  sidebands.on('connection', (ws) => {
    ws.on('error', () => undefined);
    ws.send(JSON.stringify({ type: 'session.created', event_id: 'ev_1', session: { type: 'realtime', object: 'realtime.session', id: 'sess_1', model: 'gpt-realtime', output_modalities: ['audio'], instructions: '', tools: [], tool_choice: 'auto', tracing: null, truncation: 'auto', prompt: null, max_output_tokens: 'inf', audio: { input: { transcription: null, turn_detection: null }, output: { voice: 'marin' } } } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/v1/realtime`,
    accepts,
    holding: (callId) => held.has(callId),
    fail: (callId) => held.get(callId)?.(),
    close: async () => {
      for (const ws of sidebands.clients) ws.terminate();
      sidebands.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** One signed delivery of a call's `realtime.call.incoming` (a redelivery: same id, new timestamp). */
export function deliverIncoming(httpUrl: string, secret: string, webhookId: string, callId: string) {
  const now = Math.floor(Date.now() / 1000);
  const body = JSON.stringify({ id: `evt_${webhookId}`, object: 'event', created_at: now, type: 'realtime.call.incoming', data: { call_id: callId, sip_headers: SIP_TO_ACME } });
  const headers = { 'webhook-id': webhookId, 'webhook-timestamp': String(now), 'webhook-signature': simSignWebhook(secret, webhookId, now, body) };
  return post(`${httpUrl}${SIP_WEBHOOK_PATH}`, { contentType: 'application/json', body, headers });
}
