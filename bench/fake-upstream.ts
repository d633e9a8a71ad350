import type { WebSocket as UwsSocket, us_listen_socket } from 'uWebSockets.js';
import { sniffString } from '../src/protocol/sniff.js';
import { uws } from '../src/server/uws.js';
import { Histogram } from './lib/histogram.js';
import { APPEND_PREFIX, APPEND_TS_OFFSET, benchEvent, nowNs, pcm16, readTs, startsWith, tsOffset, typeOf, writeTs } from './lib/wire.js';

/**
 * A fast fake Realtime upstream for benchmarks and load tests. It speaks enough of the GA protocol
 * for a relay and its filters (session.created/updated, commit, a full audio response with
 * transcript deltas, response.done with a complete usage object, rate_limits.updated) and does
 * almost no work per frame: client frames are never parsed (the type is read from the fixed
 * prefix), and server frames are serialised once per response and only get their timestamp patched
 * before each send.
 */
export interface FakeUpstreamOptions {
  readonly host?: string;
  readonly port?: number;
  /** `realtime`: one audio delta every `deltaMs`; `burst`: the whole response at once (throughput mode). */
  readonly pacing?: 'realtime' | 'burst';
  /** Output audio per `response.output_audio.delta`, in ms of 24 kHz PCM16 (default 40). */
  readonly deltaMs?: number;
  /** Audio deltas per response (default 25). */
  readonly deltasPerResponse?: number;
  /** One transcript delta per this many audio deltas (default 2). */
  readonly transcriptEvery?: number;
  /** Refuse upgrades whose Authorization header differs (default: accept anything). */
  readonly expectAuthorization?: string;
  /** Test hook: every client frame, with the connection it arrived on. Slows the fake down. */
  readonly onClientFrame?: (conn: FakeConnection, type: string, payload: Buffer) => void;
}

export interface FakeUpstreamStats {
  connections: number;
  open: number;
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  appends: number;
  responses: number;
  /** Sends that uWS dropped or buffered past its limit. */
  backpressured: number;
}

export interface FakeConnection {
  /** 1-based connection number; also in the session id `sess_bench_<n>`. */
  readonly n: number;
  readonly sessionId: string;
  /** The query string of the upgrade request. */
  readonly query: string;
}

export interface FakeUpstream {
  readonly port: number;
  /** ws://host:port/v1/realtime */
  readonly url: string;
  readonly stats: FakeUpstreamStats;
  /** Client → upstream one-way latency of appends (µs), recorded while `recording` is on. */
  readonly latency: Histogram;
  recording: boolean;
  /** Switchable between phases of a run. */
  pacing: 'realtime' | 'burst';
  /** Closes every open connection with `code` (fault injection and teardown). */
  closeAll(code?: number): void;
  close(): Promise<void>;
}

interface Turn {
  readonly frames: Buffer[];
  /** Index of the first audio-delta frame in `frames` and the number of delta slots. */
  readonly deltaStart: number;
  readonly deltaSlots: number;
  readonly responseId: string;
  next: number;
  timer: NodeJS.Timeout | null;
}

interface ConnData {
  conn: FakeConnection | null;
  ws: UwsSocket<ConnData> | null;
  turn: Turn | null;
  turns: number;
  items: number;
  closed: boolean;
}

const USAGE = {
  total_tokens: 1312,
  input_tokens: 812,
  output_tokens: 500,
  input_token_details: {
    text_tokens: 212,
    audio_tokens: 600,
    image_tokens: 0,
    cached_tokens: 128,
    cached_tokens_details: { text_tokens: 128, audio_tokens: 0, image_tokens: 0 },
  },
  output_token_details: { text_tokens: 100, audio_tokens: 400 },
};

const FORMAT = { type: 'audio/pcm', rate: 24_000 };

function sessionObject(id: string, model: string): Record<string, unknown> {
  return {
    type: 'realtime',
    object: 'realtime.session',
    id,
    model,
    output_modalities: ['audio'],
    instructions: 'You are a helpful assistant.',
    tools: [],
    tool_choice: 'auto',
    max_output_tokens: 'inf',
    tracing: null,
    truncation: 'auto',
    prompt: null,
    expires_at: Math.floor(Date.now() / 1000) + 3600,
    audio: {
      input: {
        format: FORMAT,
        transcription: null,
        noise_reduction: null,
        turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 200, idle_timeout_ms: null, create_response: true, interrupt_response: true },
      },
      output: { format: FORMAT, voice: 'marin', speed: 1 },
    },
    include: null,
  };
}

const WORDS = ['Sure, ', 'here ', 'is ', 'the ', 'answer ', 'you ', 'asked ', 'for. '];

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const host = options.host ?? '127.0.0.1';
  const deltaMs = options.deltaMs ?? 40;
  const deltas = options.deltasPerResponse ?? 25;
  const transcriptEvery = Math.max(1, options.transcriptEvery ?? 2);
  const hook = options.onClientFrame;
  const audioB64 = pcm16(deltaMs, 7).toString('base64');
  const stats: FakeUpstreamStats = { connections: 0, open: 0, framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0, appends: 0, responses: 0, backpressured: 0 };
  const latency = new Histogram();
  const sockets = new Set<UwsSocket<ConnData>>();
  let listen: us_listen_socket | null = null;
  const handle: FakeUpstream = {
    port: 0,
    url: '',
    stats,
    latency,
    recording: false,
    pacing: options.pacing ?? 'realtime',
    closeAll(code = 1000) {
      for (const ws of [...sockets]) {
        try {
          ws.end(code, 'bench');
        } catch {
          // already closing
        }
      }
    },
    async close() {
      if (listen) uws.us_listen_socket_close(listen);
      listen = null;
      handle.closeAll(1001);
    },
  };

  // Type offsets cached per type string so patching never recomputes them.
  const offsets = new Map<string, number>();
  const offsetOf = (buf: Buffer): number => {
    const t = typeOf(buf);
    let o = offsets.get(t);
    if (o === undefined) {
      o = tsOffset(t);
      offsets.set(t, o);
    }
    return o;
  };

  const send = (ws: UwsSocket<ConnData>, frame: Buffer): void => {
    writeTs(frame, offsetOf(frame), nowNs());
    stats.framesOut++;
    stats.bytesOut += frame.length;
    // uWS copies the bytes before returning, so the template can be patched again right away.
    if (ws.send(frame, false, false) !== 1) stats.backpressured++;
  };

  const ev = (type: string, body: Record<string, unknown>) => benchEvent(type, 'e', body);

  /** What a response echoes of its create, as the API does: its output limit and metadata. */
  interface CreateEcho {
    readonly maxOutputTokens: number | 'inf';
    readonly metadata: Record<string, unknown> | null;
  }

  /** The create is a control frame (one per turn): parsing it is fine. */
  function createEcho(buf: Buffer): CreateEcho {
    let response: Record<string, unknown> = {};
    try {
      const e = JSON.parse(buf.toString('utf8')) as { response?: unknown };
      if (typeof e.response === 'object' && e.response !== null) response = e.response as Record<string, unknown>;
    } catch {
      // A malformed create is answered as a plain one.
    }
    const max = response['max_output_tokens'];
    const metadata = response['metadata'];
    return {
      maxOutputTokens: typeof max === 'number' ? max : 'inf',
      metadata: typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>) : null,
    };
  }

  function buildTurn(data: ConnData, echo: CreateEcho): Turn {
    const conn = data.conn!;
    const t = ++data.turns;
    const responseId = `resp_${conn.n}_${t}`;
    const itemId = `item_${conn.n}_${t}`;
    const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
    const inProgressItem = { id: itemId, object: 'realtime.item', type: 'message', status: 'in_progress', role: 'assistant', content: [] };
    let transcript = '';
    const response = (status: string, output: unknown[], usage: unknown) => ({
      object: 'realtime.response',
      id: responseId,
      status,
      status_details: null,
      output,
      conversation_id: `conv_${conn.n}`,
      output_modalities: ['audio'],
      max_output_tokens: echo.maxOutputTokens,
      audio: { output: { format: FORMAT, voice: 'marin' } },
      usage,
      // Echoed as the API does. (This fake used to invent metadata and report 'inf' whatever the
      // create asked, so the proxy could pair no response with its create: every response counted as
      // server-started and every client close lingered 5 s waiting for creates never answered.)
      metadata: echo.metadata,
    });
    const frames: Buffer[] = [
      ev('response.created', { response: response('in_progress', [], null) }),
      ev('response.output_item.added', { response_id: responseId, output_index: 0, item: inProgressItem }),
      ev('conversation.item.added', { previous_item_id: null, item: inProgressItem }),
      ev('response.content_part.added', { ...ids, part: { type: 'audio', transcript: '' } }),
    ];
    const deltaStart = frames.length;
    const audioDelta = ev('response.output_audio.delta', { ...ids, delta: audioB64 });
    for (let i = 0; i < deltas; i++) {
      frames.push(audioDelta);
      if ((i + 1) % transcriptEvery === 0) {
        const word = WORDS[(i / transcriptEvery) % WORDS.length]!;
        transcript += word;
        frames.push(ev('response.output_audio_transcript.delta', { ...ids, delta: word }));
      }
    }
    const deltaSlots = frames.length - deltaStart;
    const part = { type: 'audio', transcript };
    const doneItem = { ...inProgressItem, status: 'completed', content: [{ type: 'output_audio', transcript }] };
    frames.push(
      ev('response.output_audio.done', ids),
      ev('response.output_audio_transcript.done', { ...ids, transcript }),
      ev('response.content_part.done', { ...ids, part }),
      ev('conversation.item.done', { previous_item_id: null, item: doneItem }),
      ev('response.output_item.done', { response_id: responseId, output_index: 0, item: doneItem }),
      ev('response.done', { response: response('completed', [doneItem], USAGE) }),
      ev('rate_limits.updated', { rate_limits: [{ name: 'tokens', limit: 40_000_000, remaining: 39_990_000, reset_seconds: 0.01 }] }),
    );
    return { frames, deltaStart, deltaSlots, responseId, next: 0, timer: null };
  }

  function sendRange(ws: UwsSocket<ConnData>, turn: Turn, end: number): void {
    ws.cork(() => {
      while (turn.next < end) send(ws, turn.frames[turn.next++]!);
    });
  }

  function startResponse(data: ConnData, clientEventId: string | null, echo: CreateEcho): void {
    const ws = data.ws!;
    if (data.turn) {
      send(ws, ev('error', { error: { type: 'invalid_request_error', code: 'conversation_already_has_active_response', message: 'Conversation already has an active response in progress.', param: null, event_id: clientEventId } }));
      return;
    }
    stats.responses++;
    const turn = buildTurn(data, echo);
    data.turn = turn;
    if (handle.pacing === 'burst') {
      sendRange(ws, turn, turn.frames.length);
      data.turn = null;
      return;
    }
    // Header frames and the first delta now, then one audio delta (plus its transcript) per tick.
    const firstDeltaEnd = turn.deltaStart + 1;
    sendRange(ws, turn, firstDeltaEnd);
    turn.timer = setInterval(() => {
      if (data.closed || data.turn !== turn) {
        if (turn.timer) clearInterval(turn.timer);
        return;
      }
      let end = turn.next + 1;
      // Carry the transcript delta that follows an audio delta in the same tick.
      if (end < turn.frames.length && turn.frames[end] !== turn.frames[turn.deltaStart]) end++;
      if (end >= turn.deltaStart + turn.deltaSlots) end = turn.frames.length;
      sendRange(ws, turn, end);
      if (turn.next >= turn.frames.length) {
        clearInterval(turn.timer!);
        data.turn = null;
      }
    }, deltaMs);
  }

  function cancelResponse(data: ConnData, clientEventId: string | null): void {
    const ws = data.ws!;
    const turn = data.turn;
    if (!turn) {
      send(ws, ev('error', { error: { type: 'invalid_request_error', code: 'response_cancel_not_active', message: 'There is no active response.', param: null, event_id: clientEventId } }));
      return;
    }
    if (turn.timer) clearInterval(turn.timer);
    data.turn = null;
    send(ws, ev('response.done', { response: { object: 'realtime.response', id: turn.responseId, status: 'cancelled', status_details: { type: 'cancelled', reason: 'client_cancelled' }, output: [], usage: USAGE, metadata: null } }));
  }

  function onMessage(ws: UwsSocket<ConnData>, message: ArrayBuffer, isBinary: boolean): void {
    const data = ws.getUserData();
    const buf = Buffer.from(message);
    stats.framesIn++;
    stats.bytesIn += buf.length;
    if (!isBinary && startsWith(buf, APPEND_PREFIX)) {
      stats.appends++;
      if (handle.recording) {
        const ts = readTs(buf, APPEND_TS_OFFSET);
        if (ts > 0) latency.record((nowNs() - ts) / 1000);
      }
      if (hook) hook(data.conn!, 'input_audio_buffer.append', buf);
      return;
    }
    const type = isBinary ? '' : typeOf(buf) || sniffType(buf);
    if (hook) hook(data.conn!, type, buf);
    const eventId = sniffEventId(buf);
    ws.cork(() => {
      switch (type) {
        case 'input_audio_buffer.append':
          stats.appends++;
          return;
        case 'session.update':
          send(ws, ev('session.updated', { session: sessionObject(data.conn!.sessionId, 'gpt-realtime') }));
          return;
        case 'input_audio_buffer.commit': {
          const itemId = `item_user_${data.conn!.n}_${++data.items}`;
          const item = { id: itemId, object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_audio', transcript: null }] };
          send(ws, ev('input_audio_buffer.committed', { previous_item_id: null, item_id: itemId }));
          send(ws, ev('conversation.item.added', { previous_item_id: null, item }));
          send(ws, ev('conversation.item.done', { previous_item_id: null, item }));
          return;
        }
        case 'input_audio_buffer.clear':
          send(ws, ev('input_audio_buffer.cleared', {}));
          return;
        case 'conversation.item.create': {
          const itemId = `item_user_${data.conn!.n}_${++data.items}`;
          const item = { id: itemId, object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_text', text: '' }] };
          send(ws, ev('conversation.item.added', { previous_item_id: null, item }));
          send(ws, ev('conversation.item.done', { previous_item_id: null, item }));
          return;
        }
        case 'response.create':
          startResponse(data, eventId, createEcho(buf));
          return;
        case 'response.cancel':
          cancelResponse(data, eventId);
          return;
        // The proxy prunes long conversations (truncation) and removes stopped items (guardrails):
        // answered as the API does, so long governed sessions are not ended as governance failures.
        case 'conversation.item.delete':
          send(ws, ev('conversation.item.deleted', { item_id: itemIdOf(buf) }));
          return;
        case 'conversation.item.truncate': {
          const e = JSON.parse(buf.toString('utf8')) as { item_id?: string; content_index?: number; audio_end_ms?: number };
          send(ws, ev('conversation.item.truncated', { item_id: e.item_id ?? '', content_index: e.content_index ?? 0, audio_end_ms: e.audio_end_ms ?? 0 }));
          return;
        }
        default:
          send(ws, ev('error', { error: { type: 'invalid_request_error', code: isBinary ? 'invalid_event' : 'invalid_value', message: `Unsupported event type '${type}'.`, param: 'type', event_id: eventId } }));
      }
    });
  }

  /** `item_id` of a control event (rare: parsing it is fine). */
  function itemIdOf(buf: Buffer): string {
    const id = (JSON.parse(buf.toString('utf8')) as { item_id?: unknown }).item_id;
    return typeof id === 'string' ? id : '';
  }

  let connectionCount = 0;
  const app = uws.App();
  app.ws<ConnData>('/*', {
    compression: uws.DISABLED,
    maxPayloadLength: 64 * 1024 * 1024,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    maxBackpressure: 256 * 1024 * 1024,
    upgrade: (res, req, context) => {
      const auth = req.getHeader('authorization');
      if (options.expectAuthorization !== undefined && auth !== options.expectAuthorization) {
        res.writeStatus('401 Unauthorized').end('{"error":{"code":"invalid_api_key"}}');
        return;
      }
      const query = req.getQuery() ?? '';
      const data: ConnData = { conn: null, ws: null, turn: null, turns: 0, items: 0, closed: false };
      const n = ++connectionCount;
      data.conn = { n, sessionId: `sess_bench_${n}`, query };
      res.upgrade(data, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      const data = ws.getUserData();
      data.ws = ws;
      sockets.add(ws);
      stats.connections++;
      stats.open++;
      const model = new URLSearchParams(data.conn!.query).get('model') ?? 'gpt-realtime';
      ws.cork(() => send(ws, ev('session.created', { session: sessionObject(data.conn!.sessionId, model) })));
    },
    message: onMessage,
    close: (ws) => {
      const data = ws.getUserData();
      data.closed = true;
      if (data.turn?.timer) clearInterval(data.turn.timer);
      data.turn = null;
      data.ws = null;
      sockets.delete(ws);
      stats.open--;
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    app.listen(host, options.port ?? 0, (token) => {
      if (!token) {
        reject(new Error('fake upstream could not listen'));
        return;
      }
      listen = token;
      resolve(uws.us_socket_local_port(token));
    });
  });
  Object.assign(handle, { port, url: `ws://${host}:${port}/v1/realtime` });
  return handle;
}

/** Slow path for client frames not in bench layout (other clients, rewritten frames). */
function sniffType(buf: Buffer): string {
  const v: unknown = sniffString(buf, 'type');
  return typeof v === 'string' ? v : '';
}

function sniffEventId(buf: Buffer): string | null {
  const v: unknown = sniffString(buf, 'event_id');
  return typeof v === 'string' ? v : null;
}
