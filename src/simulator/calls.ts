/**
 * The simulator's WebRTC and SIP surface, offline: `POST /v1/realtime/client_secrets`,
 * `POST /v1/realtime/calls` (an SDP answer built from the offer), the sideband `?call_id=`
 * sockets, SIP call control (`accept`, `reject`, `hangup`, `refer`) and a signed
 * `realtime.call.incoming` webhook. One call is one simulated session whose server events go to
 * the browser's data channel (recorded) and to every attached sideband socket; its audio would
 * travel over RTP, so audio deltas reach no socket and `output_audio_buffer.*` events mark playback.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import { Connection, type ConnectionSettings } from './connection.js';
import { SimError } from './errors.js';
import { applySessionUpdate, createRealtimeSession, isKnownModel, isObject, type RealtimeSessionState } from './session.js';
import type { SimConnection } from './types.js';
import { newId } from './wire.js';

type Json = Record<string, unknown>;

const MAX_BODY_BYTES = 1024 * 1024;

/** A client secret the simulator minted. */
export interface SimSecret {
  readonly value: string;
  readonly expiresAt: number;
  readonly session: RealtimeSessionState;
  /** The request body as received (what the proxy sent upstream). */
  readonly request: Json;
}

export type SimCallState = 'ringing' | 'active' | 'rejected' | 'ended';

/** One WebRTC or SIP call as the simulator holds it. */
export interface SimCall {
  readonly id: string;
  readonly kind: 'webrtc' | 'sip';
  readonly state: SimCallState;
  /** The SDP offer and the answer the simulator gave (WebRTC). */
  readonly offer: string | null;
  readonly answer: string | null;
  /** `Authorization` the call was created or accepted with (an `ek_` secret or the API key). */
  readonly credential: string;
  /** The session config the call was created or accepted with (as received). */
  readonly sessionRequest: Json | null;
  /** Client events in arrival order: from the sidebands (including `output_audio_buffer.clear`) and the data channel. */
  readonly received: ReadonlyArray<{ readonly from: 'sideband' | 'browser'; readonly type: string; readonly event: Json }>;
  /** Every server event the browser's data channel received (audio deltas excluded: they are RTP). */
  readonly dataChannel: readonly Json[];
  /** Control calls received: accept, reject, hangup, refer (with their bodies and the `Authorization` they came with). */
  readonly control: ReadonlyArray<{ readonly action: string; readonly body: Json | null; readonly credential: string | null }>;
  /** The simulated session (null while a SIP call rings). */
  readonly connection: SimConnection | null;
  /** Sideband sockets attached so far (open or closed), with their handshake headers. */
  readonly sidebands: ReadonlyArray<{ readonly headers: Readonly<Record<string, string>> }>;
  /** The browser sends an event on its data channel (e.g. `conversation.item.create`, `response.create`). */
  sendFromBrowser(event: Json): void;
  /** The browser (or phone) leaves: the call ends and every sideband closes. */
  end(): void;
  /** The sideband sockets drop (`code`, a network or server fault) while the call goes on. */
  dropSidebands(code?: number): void;
  /**
   * From now on a sideband's `response.cancel` of a running response, and every sideband event after
   * it, reach the session once that response is done: OpenAI finished it before the cancel arrived
   * (the session answers `response_cancel_not_active`, as OpenAI does).
   */
  cancelsArriveLate(): void;
}

/**
 * Stands in for the `ws` socket of a call's Connection: fans server events out to the data
 * channel record and to every sideband socket, and feeds events from either into the session.
 */
class CallHub extends EventEmitter {
  readonly sockets = new Set<WebSocket>();
  readonly dataChannel: Json[] = [];
  /** Client events in arrival order, from the sidebands and the data channel (`output_audio_buffer.clear` included). */
  readonly received: Array<{ readonly from: 'sideband' | 'browser'; readonly type: string; readonly event: Json }> = [];
  readonly bufferedAmount = 0;
  /** Keep `received` and `dataChannel` (SimulatorOptions.keepHistory). */
  keepHistory = true;
  /** Responses whose audio is "playing" (started, neither stopped nor cleared). */
  readonly #playing = new Set<string>();
  #latestSession: Json | null = null;
  #closed = false;
  /** Responses created and not done yet (a late cancel waits only for one of those). */
  readonly #running = new Set<string>();
  /** `cancelsArriveLate`: sideband events held from a cancel on, until the response it names is done. */
  cancelsLate = false;
  #held: { readonly responseId: string; readonly events: Array<{ readonly ev: unknown; readonly data: Buffer }> } | null = null;

  send(data: string, cb?: (err?: Error) => void): void {
    const ev = JSON.parse(data) as Json;
    const type = typeof ev['type'] === 'string' ? ev['type'] : '';
    if (type === 'session.created' || type === 'session.updated') this.#latestSession = isObject(ev['session']) ? ev['session'] : null;
    if (type === 'response.output_audio.delta') {
      // Audio goes to the browser over RTP: no socket sees it; playback starts with the first packet.
      const responseId = String(ev['response_id']);
      if (!this.#playing.has(responseId)) {
        this.#playing.add(responseId);
        this.#broadcast({ type: 'output_audio_buffer.started', event_id: newId('event'), response_id: responseId });
      }
      cb?.();
      return;
    }
    this.#broadcast(ev, data);
    if (type === 'response.created') this.#running.add(String((ev['response'] as Json | undefined)?.['id']));
    if (type === 'response.done') {
      const responseId = String((ev['response'] as Json | undefined)?.['id']);
      this.#running.delete(responseId);
      if (this.#playing.delete(responseId)) this.#broadcast({ type: 'output_audio_buffer.stopped', event_id: newId('event'), response_id: responseId });
      if (this.#held?.responseId === responseId) {
        const { events } = this.#held;
        this.#held = null;
        // After the session finished sending this response.done (not inside it).
        setImmediate(() => {
          for (const e of events) this.#deliver(e.ev, e.data);
        });
      }
    }
    cb?.();
  }

  #broadcast(ev: Json, text: string = JSON.stringify(ev)): void {
    if (this.#closed) return;
    if (this.keepHistory) this.dataChannel.push(ev);
    for (const ws of this.sockets) if (ws.readyState === ws.OPEN) ws.send(text);
  }

  /** A sideband socket joins: it gets the current session as `session.created`, then every event. */
  attach(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.on('error', () => undefined);
    if (this.#latestSession) ws.send(JSON.stringify({ type: 'session.created', event_id: newId('event'), session: this.#latestSession }));
    ws.on('message', (data: Buffer, isBinary: boolean) => this.#fromSocket(ws, data, isBinary));
  }

  #fromSocket(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (!isBinary) {
      let ev: unknown = null;
      try {
        ev = JSON.parse(data.toString('utf8'));
      } catch {
        ev = null;
      }
      if (isObject(ev) && this.keepHistory) this.received.push({ from: 'sideband', type: typeof ev['type'] === 'string' ? ev['type'] : '', event: ev });
      if (this.#held !== null) {
        this.#held.events.push({ ev, data });
        return;
      }
      const cancelled = isObject(ev) && ev['type'] === 'response.cancel' ? ev['response_id'] : null;
      if (this.cancelsLate && typeof cancelled === 'string' && this.#running.has(cancelled)) {
        this.#held = { responseId: cancelled, events: [{ ev, data }] };
        return;
      }
      this.#deliver(ev, data);
      return;
    }
    void ws;
    this.emit('message', data, isBinary);
  }

  /** A sideband's text event reaches the session (`output_audio_buffer.clear` is the hub's own). */
  #deliver(ev: unknown, data: Buffer): void {
    // A WebRTC-only client event: stop playing the buffered audio now.
    if (isObject(ev) && ev['type'] === 'output_audio_buffer.clear') {
      for (const responseId of [...this.#playing]) {
        this.#playing.delete(responseId);
        this.#broadcast({ type: 'output_audio_buffer.cleared', event_id: newId('event'), response_id: responseId });
      }
      return;
    }
    this.emit('message', data, false);
  }

  /** An event from the browser's data channel. */
  fromBrowser(event: Json): void {
    if (this.keepHistory) this.received.push({ from: 'browser', type: typeof event['type'] === 'string' ? event['type'] : '', event });
    this.emit('message', Buffer.from(JSON.stringify(event), 'utf8'), false);
  }

  close(code = 1000, reason = ''): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const ws of this.sockets) ws.close(code, reason);
    this.emit('close', code, Buffer.from(reason, 'utf8'));
  }

  terminate(): void {
    this.close(1006, '');
  }

  /** Closes the sideband sockets only: the session (and the browser's media) goes on. */
  dropSockets(code: number): void {
    for (const ws of this.sockets) ws.close(code, 'sideband dropped');
  }

  ping(): void {
    // Sideband sockets are pinged by the ws server of each socket; the hub itself has no wire.
  }

  pause(): void {
    // Nothing to pause: the hub is not read from a socket.
  }
}

class Call implements SimCall {
  readonly id = `rtc_${randomBytes(16).toString('hex')}`;
  state: SimCallState;
  answer: string | null = null;
  connection: Connection | null = null;
  readonly control: Array<{ action: string; body: Json | null; credential: string | null }> = [];
  readonly sidebands: Array<{ headers: Record<string, string> }> = [];
  readonly hub = new CallHub();

  constructor(
    readonly kind: 'webrtc' | 'sip',
    readonly offer: string | null,
    readonly credential: string,
    public sessionRequest: Json | null,
  ) {
    this.state = kind === 'sip' ? 'ringing' : 'active';
  }

  get dataChannel(): readonly Json[] {
    return this.hub.dataChannel;
  }

  get received(): ReadonlyArray<{ readonly from: 'sideband' | 'browser'; readonly type: string; readonly event: Json }> {
    return this.hub.received;
  }

  start(session: RealtimeSessionState, settings: ConnectionSettings): void {
    // The hub implements the part of `ws` a Connection uses (send, close, terminate, ping, pause, events).
    const conn = new Connection(this.hub as unknown as WebSocket, {}, `/v1/realtime?call_id=${this.id}`, settings);
    this.connection = conn;
    this.state = 'active';
    conn.start(session);
  }

  sendFromBrowser(event: Json): void {
    if (this.state === 'active') this.hub.fromBrowser(event);
  }

  end(): void {
    if (this.state === 'ended') return;
    this.state = 'ended';
    this.hub.close(1000, 'call ended');
  }

  dropSidebands(code = 1011): void {
    this.hub.dropSockets(code);
  }

  cancelsArriveLate(): void {
    this.hub.cancelsLate = true;
  }
}

/** An SDP answer for `offer`, produced offline: same m-lines and mids, opus for audio, a data channel. */
export function answerFor(offer: string): string {
  const lines = offer.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  const sections: string[][] = [];
  for (const line of lines) {
    if (line.startsWith('m=')) sections.push([line]);
    else sections.at(-1)?.push(line);
  }
  const hex = (n: number) => randomBytes(n).toString('hex');
  const ufrag = hex(4);
  const pwd = hex(12);
  const fingerprint = randomBytes(32).toString('hex').toUpperCase().match(/../g)!.join(':');
  const mids = sections.map((s, i) => s.find((l) => l.startsWith('a=mid:'))?.slice(6) ?? String(i));
  const out = ['v=0', `o=- ${BigInt(`0x${hex(6)}`).toString()} 2 IN IP4 127.0.0.1`, 's=-', 't=0 0', `a=group:BUNDLE ${mids.join(' ')}`, 'a=msid-semantic: WMS'];
  sections.forEach((section, i) => {
    const [kind, , proto] = section[0]!.slice(2).split(' ');
    const common = ['c=IN IP4 0.0.0.0', `a=ice-ufrag:${ufrag}`, `a=ice-pwd:${pwd}`, `a=fingerprint:sha-256 ${fingerprint}`, 'a=setup:active', `a=mid:${mids[i]}`];
    if (kind === 'application') {
      out.push(`m=application 9 ${proto ?? 'UDP/DTLS/SCTP'} webrtc-datachannel`, ...common, 'a=sctp-port:5000', 'a=max-message-size:262144');
      return;
    }
    const opus = section.find((l) => /^a=rtpmap:\d+ opus\/48000/i.test(l));
    const pt = opus ? opus.slice('a=rtpmap:'.length).split(' ')[0]! : '111';
    const dir = section.find((l) => /^a=(sendrecv|sendonly|recvonly|inactive)$/.test(l))?.slice(2) ?? 'sendrecv';
    const answerDir = dir === 'sendonly' ? 'recvonly' : dir === 'recvonly' ? 'sendonly' : dir;
    out.push(`m=${kind ?? 'audio'} 9 ${proto ?? 'UDP/TLS/RTP/SAVPF'} ${pt}`, ...common, 'a=rtcp:9 IN IP4 0.0.0.0', `a=${answerDir}`, 'a=rtcp-mux', `a=rtpmap:${pt} opus/48000/2`, `a=fmtp:${pt} minptime=10;useinbandfec=1`);
  });
  return `${out.join('\r\n')}\r\n`;
}

/** Standard Webhooks signature (the way OpenAI signs its webhooks). */
export function simSignWebhook(secret: string, id: string, timestampSec: number, body: string): string {
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSec}.${body}`).digest('base64')}`;
}

export interface RingOptions {
  /** Where the webhook is POSTed (the proxy's SIP webhook URL). */
  readonly webhookUrl: string;
  readonly webhookSecret: string;
  readonly sipHeaders: ReadonlyArray<{ readonly name: string; readonly value: string }>;
  /** Override the signed timestamp (replay tests); default now. */
  readonly timestampSec?: number;
  /** Override the webhook id (replay tests). */
  readonly webhookId?: string;
}

export interface SimCalls {
  readonly secrets: readonly SimSecret[];
  readonly calls: ReadonlyMap<string, SimCall>;
  /** A SIP call rings: the simulator POSTs a signed `realtime.call.incoming` webhook. */
  ring(options: RingOptions): Promise<{ readonly call: SimCall; readonly status: number; readonly body: string }>;
  /** The next `count` control requests (accept, reject, hangup, refer) fail with `status` (a server fault), and `message` when given. */
  failControl(count: number, status?: number, message?: string): void;
  /** The next `count` sideband sockets are accepted but never joined: no session.created, no events (a stuck upstream). */
  stallSidebands(count: number): void;
}

function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', () => resolve(null));
  });
}

function reply(res: ServerResponse, status: number, body: Json | string, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': typeof body === 'string' ? 'application/sdp' : 'application/json', ...headers });
  res.end(text);
}

const apiError = (message: string, code: string | null = null, param: string | null = null, type = 'invalid_request_error'): Json => ({ error: { message, type, param, code } });

export class SimCallRegistry implements SimCalls {
  readonly secrets: SimSecret[] = [];
  readonly calls = new Map<string, Call>();
  readonly #apiKey: string | null;
  readonly #settings: ConnectionSettings;
  #controlFaults: { count: number; status: number; message: string | null } = { count: 0, status: 503, message: null };
  #stalledSidebands = 0;

  constructor(apiKey: string | null, settings: ConnectionSettings) {
    this.#apiKey = apiKey;
    this.#settings = settings;
  }

  failControl(count: number, status = 503, message: string | null = null): void {
    this.#controlFaults = { count, status, message };
  }

  stallSidebands(count: number): void {
    this.#stalledSidebands = count;
  }

  #isApiKey(credential: string | null): boolean {
    return this.#apiKey === null ? credential !== null && !credential.startsWith('ek_') : credential === this.#apiKey;
  }

  /** Effective session for a requested config (throws SimError like session.update would). */
  #session(raw: unknown): RealtimeSessionState {
    const o = isObject(raw) ? raw : {};
    const model = typeof o['model'] === 'string' ? o['model'] : 'gpt-realtime';
    if (!isKnownModel(model)) throw new SimError('invalid_model', `Model "${model}" is not supported in realtime mode.`, 'session.model');
    const base = createRealtimeSession(model, Math.floor(Date.now() / 1000));
    const { model: _model, ...rest } = o;
    return applySessionUpdate(base, { ...rest, type: 'realtime' }, { voiceLocked: false }) as RealtimeSessionState;
  }

  /** Handles the REST routes; false when the path is not one of them. */
  handle(req: IncomingMessage, res: ServerResponse, credential: string | null): boolean {
    const url = new URL(req.url ?? '/', 'http://simulator');
    const path = url.pathname.replace(/^\/openai/, '');
    if (req.method !== 'POST') return false;
    if (path === '/v1/realtime/client_secrets') void this.#mint(req, res, credential);
    else if (path === '/v1/realtime/calls') void this.#create(req, res, credential);
    else {
      const m = /^\/v1\/realtime\/calls\/([^/]+)\/(accept|reject|hangup|refer)$/.exec(path);
      if (!m) return false;
      void this.#control(req, res, credential, decodeURIComponent(m[1]!), m[2]!);
    }
    return true;
  }

  async #mint(req: IncomingMessage, res: ServerResponse, credential: string | null): Promise<void> {
    const body = await readBody(req);
    if (!this.#isApiKey(credential)) return reply(res, 401, apiError('Incorrect API key provided.', 'invalid_api_key'));
    let parsed: unknown;
    try {
      parsed = JSON.parse(body?.toString('utf8') ?? '');
    } catch {
      return reply(res, 400, apiError('We could not parse the JSON body of your request.', 'invalid_json'));
    }
    const request = isObject(parsed) ? parsed : {};
    const after = isObject(request['expires_after']) ? request['expires_after'] : {};
    const seconds = typeof after['seconds'] === 'number' ? after['seconds'] : 600;
    if (seconds < 10 || seconds > 7200) return reply(res, 400, apiError('expires_after.seconds must be between 10 and 7200.', 'invalid_value', 'expires_after.seconds'));
    let session: RealtimeSessionState;
    try {
      session = this.#session(request['session']);
    } catch (err) {
      const e = err instanceof SimError ? err : new SimError('invalid_value', String(err));
      return reply(res, 400, apiError(e.message, e.code, e.param));
    }
    const secret: SimSecret = { value: `ek_${randomBytes(16).toString('hex')}`, expiresAt: Math.floor(Date.now() / 1000) + seconds, session, request };
    // Without a history (the proxy's embedded simulator) an expired secret is of no use to anyone.
    if (!this.#settings.keepHistory) {
      const now = Math.floor(Date.now() / 1000);
      for (let i = this.secrets.length - 1; i >= 0; i--) if (this.secrets[i]!.expiresAt < now) this.secrets.splice(i, 1);
    }
    this.secrets.push(secret);
    reply(res, 200, { value: secret.value, expires_at: secret.expiresAt, session });
  }

  async #create(req: IncomingMessage, res: ServerResponse, credential: string | null): Promise<void> {
    const body = (await readBody(req)) ?? Buffer.alloc(0);
    const type = (req.headers['content-type'] ?? '').toLowerCase();
    let offer: string;
    let session: RealtimeSessionState;
    let sessionRequest: Json | null = null;
    if (type.startsWith('application/sdp')) {
      const secret = credential?.startsWith('ek_') ? this.secrets.find((s) => s.value === credential) : undefined;
      if (!secret) return reply(res, 401, apiError('Invalid ephemeral key.', 'invalid_api_key'));
      if (secret.expiresAt * 1000 < Date.now()) return reply(res, 401, apiError('The ephemeral key has expired.', 'invalid_api_key'));
      offer = body.toString('utf8');
      session = structuredClone(secret.session);
    } else if (type.startsWith('multipart/form-data')) {
      if (!this.#isApiKey(credential)) return reply(res, 401, apiError('Incorrect API key provided.', 'invalid_api_key'));
      let form: FormData;
      try {
        form = await new Response(body, { headers: { 'content-type': type } }).formData();
      } catch {
        return reply(res, 400, apiError('The multipart body could not be parsed.', 'invalid_request_error'));
      }
      const sdp = form.get('sdp');
      offer = typeof sdp === 'string' ? sdp : '';
      const rawSession = form.get('session');
      try {
        sessionRequest = typeof rawSession === 'string' ? (JSON.parse(rawSession) as Json) : {};
        session = this.#session(sessionRequest);
      } catch (err) {
        const e = err instanceof SimError ? err : new SimError('invalid_json', 'The session part is not valid JSON.');
        return reply(res, 400, apiError(e.message, e.code, e.param));
      }
    } else {
      return reply(res, 400, apiError('Content-Type must be application/sdp or multipart/form-data.', 'invalid_request_error'));
    }
    if (!offer.startsWith('v=0') || !/^m=/m.test(offer)) return reply(res, 400, apiError('The SDP offer is not valid.', 'invalid_offer', 'sdp'));
    const call = new Call('webrtc', offer, credential ?? '', sessionRequest);
    call.answer = answerFor(offer);
    this.#add(call);
    call.start(session, this.#settings);
    reply(res, 201, call.answer, { location: `/v1/realtime/calls/${call.id}` });
  }

  async #control(req: IncomingMessage, res: ServerResponse, credential: string | null, callId: string, action: string): Promise<void> {
    const body = await readBody(req);
    if (!this.#isApiKey(credential)) return reply(res, 401, apiError('Incorrect API key provided.', 'invalid_api_key'));
    const call = this.calls.get(callId);
    if (!call) return reply(res, 404, apiError(`Call ${callId} not found.`, 'call_not_found'));
    if (this.#controlFaults.count > 0) {
      this.#controlFaults.count--;
      return reply(res, this.#controlFaults.status, apiError(this.#controlFaults.message ?? 'The server had an error while processing your request.', 'server_error'));
    }
    let parsed: Json | null = null;
    try {
      const text = body?.toString('utf8') ?? '';
      parsed = text.length > 0 ? (JSON.parse(text) as Json) : null;
    } catch {
      return reply(res, 400, apiError('We could not parse the JSON body of your request.', 'invalid_json'));
    }
    call.control.push({ action, body: parsed, credential });
    if (action === 'accept') {
      if (call.state !== 'ringing') return reply(res, 409, apiError('The call is not ringing.', 'call_not_ringing'));
      try {
        call.sessionRequest = parsed;
        call.start(this.#session(parsed), this.#settings);
      } catch (err) {
        const e = err instanceof SimError ? err : new SimError('invalid_value', String(err));
        return reply(res, 400, apiError(e.message, e.code, e.param));
      }
    } else if (action === 'reject') {
      if (call.state !== 'ringing') return reply(res, 409, apiError('The call is not ringing.', 'call_not_ringing'));
      call.state = 'rejected';
    } else if (action === 'hangup') {
      call.end();
    } else if (action === 'refer') {
      // SIP REFER: a SIP call that is live, to a target_uri (OpenAI answers 200 with no body).
      if (call.kind !== 'sip') return reply(res, 400, apiError('Only SIP calls can be referred.', 'invalid_request_error'));
      if (call.state !== 'active') return reply(res, 409, apiError('The call is not active.', 'call_not_active'));
      const target = isObject(parsed) ? parsed['target_uri'] : undefined;
      if (typeof target !== 'string' || target.length === 0) return reply(res, 400, apiError("Missing required parameter: 'target_uri'.", 'missing_required_parameter', 'target_uri'));
    }
    res.writeHead(200).end();
  }

  /** A sideband socket for `callId`; false when the simulator does not know the call. */
  attach(ws: WebSocket, headers: Record<string, string>, callId: string): boolean {
    const call = this.calls.get(callId);
    if (!call || call.state !== 'active') return false;
    call.sidebands.push({ headers });
    if (this.#stalledSidebands > 0) {
      this.#stalledSidebands--;
      ws.on('error', () => undefined);
      return true;
    }
    call.hub.attach(ws);
    return true;
  }

  async ring(options: RingOptions): Promise<{ call: SimCall; status: number; body: string }> {
    const call = new Call('sip', null, '', null);
    this.#add(call);
    const event = {
      id: `evt_${randomBytes(12).toString('hex')}`,
      object: 'event',
      created_at: Math.floor(Date.now() / 1000),
      type: 'realtime.call.incoming',
      data: { call_id: call.id, sip_headers: options.sipHeaders },
    };
    const body = JSON.stringify(event);
    const id = options.webhookId ?? `wh_${randomBytes(12).toString('hex')}`;
    const ts = options.timestampSec ?? Math.floor(Date.now() / 1000);
    const res = await fetch(options.webhookUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': simSignWebhook(options.webhookSecret, id, ts, body) },
      body,
    });
    return { call, status: res.status, body: await res.text() };
  }

  close(): void {
    for (const call of this.calls.values()) call.end();
  }

  /**
   * A new call. Without a history (SimulatorOptions.keepHistory: the proxy's embedded simulator)
   * the calls that ended or were rejected are let go first: until 2026-12-07 every call was kept, its
   * events included, for the life of the process.
   */
  #add(call: Call): void {
    if (!this.#settings.keepHistory) {
      call.hub.keepHistory = false;
      for (const [id, old] of this.calls) if (old.state === 'ended' || old.state === 'rejected') this.calls.delete(id);
    }
    this.calls.set(call.id, call);
  }
}
