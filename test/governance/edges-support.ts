import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { SimConnection } from '../../src/simulator/index.js';
import { afterAll, beforeAll } from 'vitest';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { policyDir } from '../policies/support.js';

/** One upstream connection as the recording upstream saw it: the upgrade URL, headers and every raw frame. */
export interface RecordedConnection {
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Every text frame exactly as received (no parsing, no re-serialisation). */
  readonly raw: string[];
  readonly ws: WebSocket;
  /** The parsed frames (null when a frame was not JSON). */
  events(): ({ type?: string; [k: string]: unknown } | null)[];
  /** Resolves when a raw frame matching `pred` has arrived (bounded). */
  waitFor(pred: (raw: string) => boolean, timeoutMs?: number): Promise<string>;
}

export interface RecordingUpstream {
  /** The URL to configure as `upstream.url` (OpenAI style). */
  readonly url: string;
  /** `http://127.0.0.1:PORT`, for `upstream.azure.endpoint`. */
  readonly origin: string;
  readonly connections: RecordedConnection[];
  /** Resolves with the n-th (1-based) connection. */
  connection(n?: number): Promise<RecordedConnection>;
  close(): Promise<void>;
}

/** Scripted answers to a received event; returning 'handled' skips the default answer (session.updated). */
export type Script = (event: { type?: string; event_id?: unknown; [k: string]: unknown }, send: (event: object) => void) => void | 'handled';

/**
 * A Realtime upstream on loopback that records every byte it receives and answers just enough of
 * the protocol (session.created on connect; session.updated for session.update) for the proxy's
 * filters to run. It validates nothing: tests assert on what reached it.
 */
export async function recordingUpstream(script: Script = () => undefined): Promise<RecordingUpstream> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const connections: RecordedConnection[] = [];
  wss.on('connection', (ws, req) => {
    const raw: string[] = [];
    const waiters: { pred: (r: string) => boolean; resolve: (r: string) => void }[] = [];
    const conn: RecordedConnection = {
      url: req.url ?? '',
      headers: req.headers,
      raw,
      ws,
      events: () =>
        raw.map((r) => {
          try {
            return JSON.parse(r) as { type?: string };
          } catch {
            return null;
          }
        }),
      waitFor(pred, timeoutMs = 5000) {
        const seen = raw.find(pred);
        if (seen !== undefined) return Promise.resolve(seen);
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`upstream did not receive the expected frame; got ${raw.length} frames`)), timeoutMs);
          waiters.push({
            pred,
            resolve: (r) => {
              clearTimeout(timer);
              resolve(r);
            },
          });
        });
      },
    };
    connections.push(conn);
    ws.on('error', () => undefined);
    const send = (event: object) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(event));
    };
    const model = new URL(req.url ?? '/', 'http://x').searchParams.get('model') ?? 'gpt-realtime';
    let seq = 0;
    const session = { type: 'realtime', object: 'realtime.session', id: `sess_rec_${connections.length}`, model, output_modalities: ['audio'], instructions: '', tools: [], tool_choice: 'auto', max_output_tokens: 'inf', prompt: null, expires_at: 0 };
    send({ type: 'session.created', event_id: `event_rec_${++seq}`, session });
    ws.on('message', (data) => {
      const text = (data as Buffer).toString('utf8');
      raw.push(text);
      for (const w of waiters.splice(0)) {
        if (w.pred(text)) w.resolve(text);
        else waiters.push(w);
      }
      let event: { type?: string; event_id?: unknown; session?: object };
      try {
        event = JSON.parse(text) as typeof event;
      } catch {
        return;
      }
      if (script(event, send) === 'handled') return;
      if (event.type === 'session.update' && typeof event.session === 'object') {
        Object.assign(session, event.session);
        send({ type: 'session.updated', event_id: `event_rec_${++seq}`, session });
      }
    });
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/realtime`,
    origin: `http://127.0.0.1:${port}`,
    connections,
    async connection(n = 1) {
      for (let i = 0; i < 500 && connections.length < n; i++) await new Promise<void>((r) => setTimeout(r, 10));
      const c = connections[n - 1];
      if (!c) throw new Error(`no upstream connection #${n}`);
      return c;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of connections) c.ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

/**
 * A frame the proxy forwards untouched, sent after the frames under test: once the upstream has
 * it, everything the client sent before it has been relayed or refused (the relay keeps order).
 */
export async function barrier(client: TestClient, upstream: RecordedConnection, id: string): Promise<void> {
  const eventId = `"barrier_${id}_${(++barriers).toString(36)}"`;
  client.send(`{"type":"input_audio_buffer.clear","event_id":${eventId}}`);
  await upstream.waitFor((r) => r.includes(eventId));
}
let barriers = 0;

/**
 * The metering clamp's session.update, as the proxy injects it: its session names the output limit
 * and nothing else. (Its event_id is as random as a stamped client event's: told apart by content.)
 */
export const isInjectedClamp = (event: { type?: string; [k: string]: unknown }): boolean => {
  const session = event['session'];
  return event.type === 'session.update' && typeof session === 'object' && session !== null && Object.keys(session).sort().join() === 'max_output_tokens,type';
};
export const errorCode = (e: { [k: string]: unknown }): string | undefined => (e['error'] as { code?: string } | undefined)?.code;
export const errorOf = (e: { [k: string]: unknown }) => e['error'] as { code: string; message: string; param: string | null; event_id: string | null; details?: Record<string, unknown> };
/** A proxy notice (`rtproxy.notice`: a forwarded event rewritten or clamped) carries the same fields under `notice`. */
export const noticeCode = (e: { [k: string]: unknown }): string | undefined => (e['type'] === 'rtproxy.notice' ? (e['notice'] as { code?: string } | undefined)?.code : undefined);
export const noticeOf = (e: { [k: string]: unknown }) => e['notice'] as ReturnType<typeof errorOf>;

/**
 * A tenant's session through the proxy, with the simulator connection it opened upstream, switched to
 * text output (the simulator's usage then reads the context a response read). For the budget tests.
 */
export async function openTextSession(tp: TestProxy, tenant = 'acme'): Promise<{ c: TestClient; sim: SimConnection }> {
  const before = tp.sim.connections.length;
  const c = await tp.client({ tenant });
  for (let i = 0; i < 200 && tp.sim.connections.length <= before; i++) await new Promise((r) => setTimeout(r, 10));
  const sim = tp.sim.connections[before]!;
  await c.next('session.created');
  c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } });
  await c.next('session.updated');
  return { c, sim };
}

/**
 * For a test file: a proxy whose tenant `acme` runs `policyYaml` (as policy `guarded`) over a recording
 * upstream, started before the file's tests and stopped after. `connect` opens a session; `send` sends
 * one event and answers what the upstream received of it and the codes of the client's errors about it
 * (a marker the proxy answers itself, `invalid_json`, follows it: errors reach the client in order, so
 * any error about the event has arrived once the marker's has).
 */
export function guardedRecordingProxy(policyYaml: string, tag: string): {
  connect(): Promise<{ c: TestClient; up: RecordedConnection }>;
  send(c: TestClient, up: RecordedConnection, event: object): Promise<{ relayed: string[]; errors: string[] }>;
} {
  let upstream: RecordingUpstream;
  let tp: TestProxy;
  let n = 0;
  beforeAll(async () => {
    upstream = await recordingUpstream();
    tp = await startTestProxy({
      tenants: { acme: { policy: 'guarded' } },
      config: {
        upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' },
        policies: { dir: policyDir({ 'guarded.yaml': policyYaml }), watch: false },
      },
    });
  });
  afterAll(async () => {
    await tp?.stop();
    await upstream?.close();
  });
  return {
    async connect() {
      const c = await tp.client();
      const up = await upstream.connection(++n);
      await c.next('session.created');
      return { c, up };
    },
    async send(c, up, event) {
      const before = up.raw.length;
      const errorsBefore = c.ofType('error').length;
      c.send(JSON.stringify(event));
      await barrier(c, up, tag);
      const relayed = up.raw.slice(before).filter((r) => !r.includes(`"barrier_${tag}_`));
      const markers = c.ofType('error').filter((e) => errorOf(e).code === 'invalid_json').length;
      c.send('not json');
      for (let k = 0; ; k++) {
        const e = await c.nth('error', errorsBefore + k + 1);
        if (errorOf(e).code === 'invalid_json' && c.ofType('error').filter((x) => errorOf(x).code === 'invalid_json').length > markers) break;
      }
      const errors = c.ofType('error').slice(errorsBefore).map((e) => errorOf(e).code).filter((code) => code !== 'invalid_json');
      return { relayed, errors };
    },
  };
}

/**
 * A Script that answers item creates as the upstream adds items: `conversation.item.added` after the
 * item it follows (its `previous_item_id`, else the connection's last appended item), an id given to
 * an item sent without one; and deletes with `conversation.item.deleted`. The guardrails place the
 * items they see added, so an insertion meets its real neighbours.
 */
export function itemsAddedInPlace(): Script {
  // The last appended item of each connection, by its send function.
  const lastItem = new Map<(event: object) => void, unknown>();
  let generated = 0;
  return (event, send) => {
    if (event.type === 'conversation.item.delete') {
      send({ type: 'conversation.item.deleted', event_id: `ev_del_${String(event['item_id'])}`, item_id: event['item_id'] });
      return 'handled';
    }
    if (event.type !== 'conversation.item.create') return undefined;
    const item: Record<string, unknown> = { ...(event['item'] as Record<string, unknown>), object: 'realtime.item', status: 'completed' };
    item['id'] ??= `item_up${++generated}`;
    send({ type: 'conversation.item.added', event_id: `ev_${String(item['id'])}`, previous_item_id: event['previous_item_id'] ?? lastItem.get(send) ?? null, item });
    if (event['previous_item_id'] === undefined) lastItem.set(send, item['id']);
    return 'handled';
  };
}

/**
 * Types `items` (with ids), at most 32 waiting for their echo at a time: the conversation view follows
 * 64 unanswered creates (test/governance/redteam-22-unanswered-creates.test.ts is about more).
 */
export async function typeItems(c: TestClient, items: readonly Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < items.length; i += 32) {
    const chunk = items.slice(i, i + 32);
    chunk.forEach((item, k) => c.send({ type: 'conversation.item.create', event_id: `evt_${i + k}`, item }));
    const last = chunk[chunk.length - 1]!['id'];
    await c.waitFor((e) => e.type === 'conversation.item.added' && (e['item'] as { id?: unknown }).id === last, 5000, `the echo of ${String(last)}`);
  }
}
