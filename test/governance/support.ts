import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { TestClient } from '../support/client.js';

/**
 * A scripted Realtime upstream for governance tests. It behaves like a hostile but plausible
 * model: each `response.create` plays the next script, all of it at once, whatever the proxy
 * cancels (a real upstream races its cancel with output already generated); `response.done`
 * carries the complete output. It keeps the conversation (items with their full content), answers
 * `conversation.item.retrieve` from it and honours `conversation.item.delete`.
 */

export type Json = { [key: string]: unknown };
export type Script = (n: number) => Json[];

export interface GovUpstream {
  readonly url: string;
  /** Every event the proxy sent upstream, per connection, in order. */
  readonly received: Json[][];
  /** Conversation items per connection (as the upstream keeps them). */
  readonly items: Map<string, Json>[];
  /** Sends events to the latest connection (e.g. transcription events). */
  send(events: Json[]): void;
  close(): Promise<void>;
}

let seq = 0;
const eid = () => `event_up_${++seq}`;

function usage(): Json {
  return { total_tokens: 30, input_tokens: 10, output_tokens: 20, input_token_details: { text_tokens: 10, audio_tokens: 0, cached_tokens: 0 }, output_token_details: { text_tokens: 20, audio_tokens: 0 } };
}

export async function govUpstream(scripts: Script[]): Promise<GovUpstream> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
  const received: Json[][] = [];
  const itemsPer: Map<string, Json>[] = [];
  const sockets: WebSocket[] = [];
  wss.on('connection', (ws) => {
    const log: Json[] = [];
    const items = new Map<string, Json>();
    received.push(log);
    itemsPer.push(items);
    sockets.push(ws);
    ws.on('error', () => undefined);
    let responses = 0;
    let itemSeq = 0;
    const send = (e: Json) => ws.send(JSON.stringify({ event_id: eid(), ...e }));
    send({ type: 'session.created', session: { type: 'realtime', object: 'realtime.session', id: 'sess_gov', model: 'gpt-realtime', output_modalities: ['audio'], expires_at: 0 } });
    ws.on('message', (data) => {
      const ev = JSON.parse(String(data)) as Json;
      log.push(ev);
      switch (ev['type']) {
        case 'session.update':
          send({ type: 'session.updated', session: { type: 'realtime', object: 'realtime.session', id: 'sess_gov', model: 'gpt-realtime', ...(ev['session'] as Json) } });
          return;
        case 'conversation.item.create': {
          const item = { ...(ev['item'] as Json) };
          item['id'] ??= `item_c${++itemSeq}`;
          item['object'] = 'realtime.item';
          item['status'] = 'completed';
          items.set(item['id'] as string, item);
          send({ type: 'conversation.item.added', previous_item_id: null, item });
          send({ type: 'conversation.item.done', previous_item_id: null, item });
          return;
        }
        case 'conversation.item.retrieve': {
          const item = items.get(ev['item_id'] as string);
          if (item) send({ type: 'conversation.item.retrieved', item });
          else send({ type: 'error', error: { type: 'invalid_request_error', code: 'item_not_found', message: `Item ${String(ev['item_id'])} not found`, event_id: ev['event_id'] ?? null } });
          return;
        }
        case 'conversation.item.delete': {
          if (items.delete(ev['item_id'] as string)) send({ type: 'conversation.item.deleted', item_id: ev['item_id'] });
          return;
        }
        case 'response.create': {
          const script = scripts[responses] ?? scripts[scripts.length - 1]!;
          responses++;
          for (const e of script(responses)) {
            const item = (e['type'] === 'response.output_item.done' ? e['item'] : null) as Json | null;
            if (item) items.set(item['id'] as string, item);
            send(e);
          }
          return;
        }
        default:
          return;
      }
    });
  });
  const port = (wss.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/v1/realtime`,
    received,
    items: itemsPer,
    send(events) {
      const ws = sockets[sockets.length - 1]!;
      for (const e of events) ws.send(JSON.stringify({ event_id: eid(), ...e }));
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of sockets) ws.terminate();
        wss.close(() => resolve());
      }),
  };
}

/** A spoken (audio + transcript) or text reply streamed in `deltas`, then done with the whole text. */
export function messageReply(responseId: string, itemId: string, deltas: readonly string[], mode: 'audio' | 'text' = 'audio'): Json[] {
  const text = deltas.join('');
  const key = mode === 'audio' ? 'transcript' : 'text';
  const partType = mode === 'audio' ? 'output_audio' : 'output_text';
  const deltaType = mode === 'audio' ? 'response.output_audio_transcript.delta' : 'response.output_text.delta';
  const doneType = mode === 'audio' ? 'response.output_audio_transcript.done' : 'response.output_text.done';
  const ids = { response_id: responseId, item_id: itemId, output_index: 0, content_index: 0 };
  const empty = { id: itemId, object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] };
  const full = { ...empty, status: 'completed', content: [{ type: partType, [key]: text, ...(mode === 'audio' ? { audio: Buffer.from(text).toString('base64') } : {}) }] };
  const out: Json[] = [
    { type: 'response.created', response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [], conversation_id: 'conv_gov', usage: null } },
    { type: 'response.output_item.added', response_id: responseId, output_index: 0, item: empty },
    { type: 'conversation.item.added', previous_item_id: null, item: empty },
    { type: 'response.content_part.added', ...ids, part: { type: partType, [key]: '' } },
  ];
  for (const d of deltas) {
    if (mode === 'audio') out.push({ type: 'response.output_audio.delta', ...ids, delta: 'AAAAAAAA' });
    out.push({ type: deltaType, ...ids, delta: d });
  }
  out.push(
    { type: doneType, ...ids, [key]: text },
    { type: 'response.content_part.done', ...ids, part: { type: partType, [key]: text } },
    { type: 'response.output_item.done', response_id: responseId, output_index: 0, item: full },
    { type: 'conversation.item.done', previous_item_id: null, item: full },
    { type: 'response.done', response: { id: responseId, object: 'realtime.response', status: 'completed', output: [full], conversation_id: 'conv_gov', usage: usage() } },
  );
  return out;
}

/** A function call (or MCP call / approval request) whose arguments stream in `deltas`. */
export function callReply(responseId: string, itemId: string, kind: 'function_call' | 'mcp_call' | 'mcp_approval_request', name: string, deltas: readonly string[], output?: string): Json[] {
  const args = deltas.join('');
  const base: Json = kind === 'function_call' ? { call_id: `call_${itemId}` } : { server_label: 'acme' };
  const empty = { id: itemId, object: 'realtime.item', type: kind, status: 'in_progress', name, arguments: '', ...base };
  const full = { ...empty, status: 'completed', arguments: args, ...(output !== undefined ? { output } : {}) };
  const out: Json[] = [
    { type: 'response.created', response: { id: responseId, object: 'realtime.response', status: 'in_progress', output: [], conversation_id: 'conv_gov', usage: null } },
    { type: 'response.output_item.added', response_id: responseId, output_index: 0, item: kind === 'mcp_approval_request' ? full : empty },
    { type: 'conversation.item.added', previous_item_id: null, item: kind === 'mcp_approval_request' ? full : empty },
  ];
  if (kind !== 'mcp_approval_request') {
    const deltaType = kind === 'function_call' ? 'response.function_call_arguments.delta' : 'response.mcp_call_arguments.delta';
    const doneType = kind === 'function_call' ? 'response.function_call_arguments.done' : 'response.mcp_call_arguments.done';
    for (const d of deltas) out.push({ type: deltaType, response_id: responseId, item_id: itemId, output_index: 0, ...base, delta: d });
    out.push({ type: doneType, response_id: responseId, item_id: itemId, output_index: 0, ...base, ...(kind === 'function_call' ? { name } : {}), arguments: args });
  }
  out.push(
    { type: 'response.output_item.done', response_id: responseId, output_index: 0, item: full },
    { type: 'conversation.item.done', previous_item_id: null, item: full },
    { type: 'response.done', response: { id: responseId, object: 'realtime.response', status: 'completed', output: [full], conversation_id: 'conv_gov', usage: usage() } },
  );
  return out;
}

/** Records every raw frame the client received, besides the parsed events. */
export function recordBytes(c: TestClient): string[] {
  const raw: string[] = [];
  c.ws.on('message', (data) => raw.push(String(data)));
  return raw;
}

const INVISIBLE = /[\s\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/gu;

/** Content fields of every event the client received, in order, joined: a leak split across deltas shows here. */
export function contentStream(raw: readonly string[]): string {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v as Json)) {
        if (typeof x === 'string' && ['delta', 'transcript', 'text', 'arguments', 'output', 'instructions'].includes(k)) out.push(x);
        else walk(x);
      }
    }
  };
  for (const r of raw) {
    const ev = JSON.parse(r) as Json;
    // Audio is not text: its base64 would split the text deltas it interleaves with.
    if (ev['type'] !== 'response.output_audio.delta') walk(ev);
  }
  return out.join('');
}

/**
 * Asserts that `needle` reached the client in no form: not in any raw frame, not in the JSON-decoded
 * content of any frame, and not assembled from pieces across frames (whitespace and invisible
 * characters ignored, case folded).
 */
export function neverReached(raw: readonly string[], needle: string): string | null {
  const fold = (s: string) => s.replace(INVISIBLE, '').toLowerCase();
  const n = fold(needle);
  const joined = raw.join('\n');
  if (joined.includes(needle)) return 'raw frame';
  for (const r of raw) if (fold(JSON.stringify(JSON.parse(r))).includes(n)) return `frame ${r.slice(0, 120)}`;
  if (fold(contentStream(raw)).includes(n)) return 'assembled from content across frames';
  return null;
}

export async function until(pred: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
