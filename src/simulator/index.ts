/**
 * An embedded stand-in for `wss://api.openai.com/v1/realtime` (GA protocol): the proxy's upstream
 * when no OpenAI key is configured, and the upstream of every test suite. It behaves like the live
 * service on the wire (handshake refusals, validation errors, event order, usage, audio) so that
 * real clients can hold a spoken conversation with it.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { defaultBrain } from './brain.js';
import { SimCallRegistry } from './calls.js';
import { Connection, type ConnectionSettings } from './connection.js';
import { DEFAULT_MAX_HELD_BYTES, HeldBytes } from './held-bytes.js';
import { createRealtimeSession, createTranscriptionSession, isKnownModel } from './session.js';
import type { SimConnection, SimulatorHandle, SimulatorOptions } from './types.js';
import { defaultTranslator, TranslationConnection } from './translation.js';

export type { Brain, BrainContext, BrainReply, ResponseParams } from './brain.js';
export { defaultBrain } from './brain.js';
export type { SimConnection, SimulatorHandle, SimulatorOptions, SimulatorTiming, ReceivedEvent, SentEvent } from './types.js';
export { synthesizeSpeech, silence, concatPcm, pcmToBase64, encodeAudio, decodeAudio } from './audio.js';
export { usageViolations } from './usage.js';
export { KNOWN_MODELS } from './session.js';
export { answerFor, simSignWebhook, type SimCall, type SimCalls, type SimSecret } from './calls.js';
export { observeSentEvents, type SentEventObserver } from './observe.js';
export { defaultTranslator, TRANSLATION_FRAME_MS, type TranslatedFrame, type Translator } from './translation.js';

const REALTIME_PATHS = new Set(['/v1/realtime', '/openai/realtime', '/openai/v1/realtime']);
/** Translation sessions (openai `OpenAIRealtimeTranslationWS`), OpenAI's and Azure's GA shape. */
const TRANSLATION_PATHS = new Set(['/v1/realtime/translations', '/openai/v1/realtime/translations']);
const KEY_PROTOCOL = 'openai-insecure-api-key.';
const BETA_PROTOCOL = 'openai-beta.realtime-v1';

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 408: 'Request Timeout',
  429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable',
};

function rejectUpgrade(socket: Duplex, status: number, code: string | null, message: string): void {
  const body = JSON.stringify({ error: { message, type: status === 429 ? 'rate_limit_error' : status >= 500 ? 'server_error' : 'invalid_request_error', param: null, code } });
  const retry = status === 429 || status === 503 ? 'retry-after: 1\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${retry}connection: close\r\n\r\n${body}`,
  );
}

function offeredProtocols(req: IncomingMessage): string[] {
  const raw = req.headers['sec-websocket-protocol'];
  return raw ? raw.split(',').map((p) => p.trim()).filter((p) => p.length > 0) : [];
}

function credential(req: IncomingMessage): string | null {
  const auth = req.headers['authorization'];
  if (auth) {
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    if (m) return m[1]!.trim();
  }
  const azure = req.headers['api-key'];
  if (typeof azure === 'string' && azure.length > 0) return azure;
  for (const p of offeredProtocols(req)) if (p.startsWith(KEY_PROTOCOL)) return p.slice(KEY_PROTOCOL.length);
  return null;
}

function redactKey(key: string): string {
  if (key.length <= 8) return `${key.slice(0, 2)}${'*'.repeat(Math.max(0, key.length - 2))}`;
  return `${key.slice(0, Math.min(8, key.length - 4))}${'*'.repeat(Math.max(4, key.length - 12))}${key.slice(-4)}`;
}

function lowerHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

export async function startSimulator(options: SimulatorOptions = {}): Promise<SimulatorHandle> {
  const host = options.host ?? '127.0.0.1';
  const realtime = options.timing?.realtime ?? false;
  const settings: ConnectionSettings = {
    timing: {
      firstAudioDelayMs: options.timing?.firstAudioDelayMs ?? 0,
      deltaIntervalMs: options.timing?.deltaIntervalMs ?? 0,
      realtime,
      rateLimitsDelayMs: options.timing?.rateLimitsDelayMs ?? (realtime ? 40 : 1),
      transcriptionDelayMs: options.timing?.transcriptionDelayMs ?? 0,
    },
    brain: options.brain ?? defaultBrain,
    transcribe: options.transcribe ?? (({ audioMs }) => `(${(audioMs / 1000).toFixed(1)} s of audio)`),
    pingIntervalMs: options.pingIntervalMs ?? 20_000,
    recordAudio: options.recordAudio ?? true,
    keepHistory: options.keepHistory ?? true,
    maxSessionMs: options.maxSessionMs ?? 3_600_000,
    held: new HeldBytes(options.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES),
  };
  const connections: SimConnection[] = [];
  /** A new connection, listed while it is open (and after, with keepHistory). */
  const listed = (conn: SimConnection): void => {
    connections.push(conn);
    if (settings.keepHistory) return;
    void conn.closed.then(() => {
      const at = connections.indexOf(conn);
      if (at >= 0) connections.splice(at, 1);
    });
  };
  const listeners: Array<(c: SimConnection) => void> = [];

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: options.perMessageDeflate ?? true,
    maxPayload: 64 * 1024 * 1024,
    // Browsers need `realtime` echoed; the key entry is never echoed.
    handleProtocols: (protocols) => {
      if (protocols.has('realtime')) return 'realtime';
      for (const p of protocols) if (!p.startsWith(KEY_PROTOCOL)) return p;
      return false;
    },
  });

  // WebRTC / SIP REST routes (client secrets, calls, call control): see calls.ts.
  const calls = new SimCallRegistry(options.apiKey ?? null, settings);
  const httpRoutes: RequestListener = (req, res) => {
    if (calls.handle(req, res, credential(req))) return;
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: 'Not found', type: 'invalid_request_error', param: null, code: null } }));
  };
  const server: Server = options.tls ? createTlsServer({ cert: options.tls.cert, key: options.tls.key }, httpRoutes) : createServer(httpRoutes);

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://simulator');
    if (options.rejectUpgradeStatus !== undefined) {
      rejectUpgrade(socket, options.rejectUpgradeStatus, null, `The simulator refuses upgrades with HTTP ${options.rejectUpgradeStatus}.`);
      return;
    }
    if (!REALTIME_PATHS.has(url.pathname) && !TRANSLATION_PATHS.has(url.pathname)) {
      rejectUpgrade(socket, 404, null, `Invalid URL (GET ${url.pathname})`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, req, url));
  });

  function accept(ws: WebSocket, req: IncomingMessage, url: URL): void {
    // A sideband socket on a call this simulator created joins that call's session (after the key check).
    if (TRANSLATION_PATHS.has(url.pathname)) return acceptTranslation(ws, req, url);
    const sidebandOf = url.searchParams.get('call_id');
    const callKey = credential(req);
    const keyOk = options.apiKey === undefined || options.apiKey === null || callKey === options.apiKey;
    if (sidebandOf !== null && keyOk && [...url.searchParams.keys()].length === 1 && calls.attach(ws, lowerHeaders(req), sidebandOf)) return;
    const conn = new Connection(ws, lowerHeaders(req), req.url ?? '/', settings);
    listed(conn);
    for (const cb of listeners) cb(conn);

    const expected = options.apiKey ?? null;
    const key = credential(req);
    if (expected !== null) {
      if (key === null) return conn.refuse(null, 'Missing bearer or basic authentication in header', 3000, 'invalid_request_error');
      if (key !== expected) {
        return conn.refuse(
          'invalid_api_key',
          `Incorrect API key provided: ${redactKey(key)}. You can find your API key at https://platform.openai.com/account/api-keys.`,
          3000,
          'invalid_request_error.invalid_api_key',
        );
      }
    }
    const beta = (req.headers['openai-beta'] ?? '').toString().toLowerCase().includes('realtime') || offeredProtocols(req).includes(BETA_PROTOCOL);
    if (beta) {
      return conn.refuse('beta_api_shape_disabled', 'The Realtime Beta API is no longer supported. Please use /v1/realtime for the GA API.', 4000, 'invalid_request_error.beta_api_shape_disabled');
    }
    const q = url.searchParams;
    const azure = url.pathname.startsWith('/openai/');
    const model = q.get('model') ?? (azure ? q.get('deployment') : null);
    const intent = q.get('intent');
    const callId = q.get('call_id');
    const given = [model, intent, callId].filter((v) => v !== null).length;
    if (given > 1) {
      return conn.refuse('invalid_request', "Only one of 'model', 'intent' or 'call_id' may be provided.", 4000, 'invalid_request_error.invalid_request');
    }
    const now = Math.floor(Date.now() / 1000);
    // With expiry disabled the session still advertises OpenAI's 60 minutes.
    const lifetime = settings.maxSessionMs > 0 ? Math.ceil(settings.maxSessionMs / 1000) : 3600;
    if (intent !== null) {
      if (intent !== 'transcription') return conn.refuse('invalid_intent', `Invalid intent '${intent}'. Supported intents are: 'transcription'.`, 4000, 'invalid_request_error.invalid_intent');
      return conn.start(createTranscriptionSession(now, lifetime));
    }
    if (callId !== null) return conn.start(createRealtimeSession('gpt-realtime', now, lifetime));
    if (model === null || model === '') {
      return conn.refuse('missing_model', 'You must provide a model parameter', 4000, 'invalid_request_error.missing_model');
    }
    if (!azure && !isKnownModel(model)) {
      return conn.refuse('invalid_model', `Model "${model}" is not supported in realtime mode.`, 4000, 'invalid_request_error.invalid_model');
    }
    conn.start(createRealtimeSession(model, now, lifetime));
  }

  /** A translation session: the same key check, then `?model=` only (no intent, no call). */
  function acceptTranslation(ws: WebSocket, req: IncomingMessage, url: URL): void {
    const conn = new TranslationConnection(ws, lowerHeaders(req), req.url ?? '/', options.translate ?? defaultTranslator, settings.keepHistory);
    listed(conn);
    for (const cb of listeners) cb(conn);
    const expected = options.apiKey ?? null;
    const key = credential(req);
    if (expected !== null && key !== expected) {
      ws.send(JSON.stringify({ type: 'error', event_id: 'event_sim_auth', error: { type: 'invalid_request_error', code: key === null ? null : 'invalid_api_key', message: key === null ? 'Missing bearer or basic authentication in header' : 'Incorrect API key provided.', param: null, event_id: null } }));
      ws.close(3000, 'invalid_request_error');
      return;
    }
    const model = url.searchParams.get('model');
    const extra = [...url.searchParams.keys()].find((k) => k !== 'model');
    if (extra !== undefined || model === null || model === '') {
      ws.send(JSON.stringify({ type: 'error', event_id: 'event_sim_query', error: { type: 'invalid_request_error', code: 'invalid_request', message: "A translation session takes 'model' only.", param: extra ?? 'model', event_id: null } }));
      ws.close(4000, 'invalid_request_error.invalid_request');
      return;
    }
    conn.start(model, settings.maxSessionMs > 0 ? Math.ceil(settings.maxSessionMs / 1000) : 3600);
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host.includes(':') ? `[${host}]` : host;
  let closing: Promise<void> | null = null;

  return {
    url: `${options.tls ? 'wss' : 'ws'}://${urlHost}:${port}/v1/realtime`,
    port,
    calls,
    connections,
    onConnection(cb) {
      listeners.push(cb);
    },
    close() {
      closing ??= (async () => {
        calls.close();
        const open = [...wss.clients];
        const allClosed = Promise.all(open.map((ws) => new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) resolve();
          else ws.once('close', () => resolve());
        })));
        for (const ws of open) ws.close(1001, 'Server shutting down');
        let grace: NodeJS.Timeout | undefined;
        await Promise.race([allClosed, new Promise<void>((resolve) => (grace = setTimeout(resolve, 200)))]);
        clearTimeout(grace);
        for (const ws of wss.clients) ws.terminate();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        });
        await new Promise<void>((resolve) => wss.close(() => resolve()));
      })();
      return closing;
    },
  };
}
