import { OpenAIRealtimeSIP, OpenAIRealtimeWebRTC, RealtimeAgent, RealtimeSession, tool } from '@openai/agents-realtime';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { SimCall } from '../../src/simulator/index.js';
import { policyDir } from '../policies/support.js';
import type { TestProxy } from '../support/harness.js';
import { callsProxy, LOCKED_POLICY, mint, OFFER, until } from './support.js';

/**
 * A new user's browser voice agent, moved to the proxy by changing its base URL only:
 * `@openai/agents-realtime`'s `OpenAIRealtimeWebRTC` transport (its own fetch of the offer, its own
 * data-channel session.update and tool loop) over a client secret the app server minted. Node has no
 * WebRTC, so `RTCPeerConnection` is a stand-in whose "oai-events" data channel is the simulator's
 * call: what the SDK sends there reaches the call as the browser's events, and every server event of
 * the call is delivered to the SDK (test/calls/browser.test.ts drives a real Chromium offer).
 */

type Json = Record<string, unknown>;

/** The stand-in's data channel: an EventTarget fed from the simulator's record of the call's data channel. */
class BridgedChannel extends EventTarget {
  readyState: 'connecting' | 'open' | 'closed' = 'connecting';
  call: SimCall | null = null;
  #delivered = 0;
  #pump: ReturnType<typeof setInterval> | null = null;
  send(text: string): void {
    this.call?.sendFromBrowser(JSON.parse(text) as Json);
  }
  open(call: SimCall): void {
    this.call = call;
    this.readyState = 'open';
    this.dispatchEvent(new Event('open'));
    this.#pump = setInterval(() => this.#deliver(), 2);
  }
  #deliver(): void {
    const events = this.call?.dataChannel ?? [];
    while (this.#delivered < events.length && this.readyState === 'open') {
      this.dispatchEvent(new MessageEvent('message', { data: JSON.stringify(events[this.#delivered++]) }));
    }
    if (this.call?.state === 'ended') this.close();
  }
  close(): void {
    if (this.readyState === 'closed') return;
    this.readyState = 'closed';
    if (this.#pump) clearInterval(this.#pump);
    this.dispatchEvent(new Event('close'));
  }
}

let tp: TestProxy;
const channels: BridgedChannel[] = [];

class BridgedPeerConnection {
  connectionState = 'new';
  onconnectionstatechange: (() => void) | null = null;
  ontrack: ((e: unknown) => void) | null = null;
  readonly #channel = new BridgedChannel();
  createDataChannel(label: string): BridgedChannel {
    expect(label).toBe('oai-events');
    channels.push(this.#channel);
    return this.#channel;
  }
  addTrack(): void {}
  getSenders(): unknown[] {
    return [];
  }
  async createOffer(): Promise<{ type: 'offer'; sdp: string }> {
    return { type: 'offer', sdp: OFFER };
  }
  async setLocalDescription(): Promise<void> {}
  async setRemoteDescription(answer: { sdp: string }): Promise<void> {
    // The call whose SDP answer the SDK got back from the proxy: its media and data channel "connect".
    const call = [...tp.sim.calls.calls.values()].find((c) => c.answer === answer.sdp);
    if (!call) throw new Error('no call answered with this SDP');
    this.connectionState = 'connected';
    setImmediate(() => this.#channel.open(call));
  }
  close(): void {
    this.connectionState = 'closed';
    this.#channel.close();
  }
}

/** The acme policy plus tracing locked off, as the shipped customer-support and pii-safe policies have it. */
const TRACING_OFF_POLICY = LOCKED_POLICY.replace('locks:\n', 'locks:\n  tracing: { value: null }\n');

/** The shipped customer-support policy, its custom (code) guardrail left out: its module path is relative to policies/. */
const SHIPPED_SUPPORT = readFileSync(resolve(import.meta.dirname, '../../policies/customer-support.yaml'), 'utf8').replace(/\n  custom:\n(?: {4}.*\n)+/, '\n');

beforeAll(async () => {
  (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection = BridgedPeerConnection;
  tp = await callsProxy({
    tenants: { acme: { policy: 'locked' }, shop: { policy: 'tracingoff' }, support: { policy: 'customer-support' } },
    extra: { config: { policies: { dir: policyDir({ 'locked.yaml': LOCKED_POLICY, 'tracingoff.yaml': TRACING_OFF_POLICY, 'customer-support.yaml': SHIPPED_SUPPORT }), watch: false } } },
  });
});
afterEach(() => {
  for (const ch of channels.splice(0)) ch.close();
});
afterAll(async () => {
  await tp?.stop();
  delete (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection;
});

/** No DOM types in Node: the transport's own option types. */
type WebRtcOptions = NonNullable<ConstructorParameters<typeof OpenAIRealtimeWebRTC>[0]>;
const fakeMedia = { getAudioTracks: () => [{ enabled: true, stop() {} }] } as unknown as NonNullable<WebRtcOptions['mediaStream']>;
const fakeAudioElement = {} as unknown as NonNullable<WebRtcOptions['audioElement']>;

/** The app's `lookup_order` tool, and the order ids it was called with. */
function lookupOrderTool() {
  const lookups: string[] = [];
  const lookupOrder = tool({
    name: 'lookup_order',
    description: 'Looks an order up.',
    parameters: z.object({ id: z.string() }),
    execute: async ({ id }) => {
      lookups.push(id);
      return `order ${id} shipped`;
    },
  });
  return { lookups, lookupOrder };
}

async function browserSession(tenant: string, options: { tracingDisabled?: boolean; noTools?: boolean } = {}) {
  // "Your server": the body openai's client.realtime.clientSecrets.create sends.
  const secret = await mint(tp, tenant, { expires_after: { anchor: 'created_at', seconds: 600 }, session: { type: 'realtime', model: 'gpt-realtime' } });
  expect(secret.status).toBe(200);
  const { lookups, lookupOrder } = lookupOrderTool();
  const agent = new RealtimeAgent({ name: 'assistant', instructions: 'Be brief.', tools: options.noTools ? [] : [lookupOrder] });
  const transport = new OpenAIRealtimeWebRTC({ baseUrl: `${tp.httpUrl}/v1/realtime/calls`, mediaStream: fakeMedia, audioElement: fakeAudioElement });
  const session = new RealtimeSession(agent, { transport, model: 'gpt-realtime', ...(options.tracingDisabled ? { tracingDisabled: true } : {}) });
  const errors: unknown[] = [];
  session.on('error', (e) => errors.push(e));
  await session.connect({ apiKey: secret.json['value'] as string });
  const callId = transport.callId;
  expect(callId).toMatch(/^rtc_/);
  const call = tp.sim.calls.calls.get(callId!)!;
  return { session, transport, call, lookups, errors };
}

describe('@openai/agents-realtime OpenAIRealtimeWebRTC through the proxy (base URL changed only)', () => {
  it('connects, runs a tool call and a session.update over the data channel, and the call stays governed', async () => {
    const { session, call, lookups, errors } = await browserSession('acme');
    session.sendMessage('call:lookup_order {"id":"42"}');
    await until(() => call.dataChannel.some((e) => e['type'] === 'response.output_audio_transcript.done' && String(e['transcript']).includes('order 42 shipped')), 'the answer after the tool');
    expect(lookups).toEqual(['42']);
    await session.updateAgent(new RealtimeAgent({ name: 'other', instructions: 'Be a pirate.' }));
    await until(() => call.received.filter((r) => r.from === 'sideband' && r.type === 'session.update').length >= 1, 'the relock');
    // The instructions lock holds on the call; the SDK saw no error; nothing non-Realtime reached OpenAI.
    await until(() => (call.dataChannel.filter((e) => e['type'] === 'session.updated').at(-1)?.['session'] as Json)['instructions'] === 'You are the Acme phone agent.', 'instructions relocked');
    expect(call.state).toBe('active');
    expect(errors).toEqual([]);
    expect(call.dataChannel.filter((e) => e['type'] === 'error')).toEqual([]);
    expect(call.received.filter((r) => r.type.startsWith('rtproxy.'))).toEqual([]);
    session.close();
  });

  /**
   * The shipped `customer-support` and `pii-safe` policies lock tracing off. The WebRTC transport
   * sends `session.update { tracing: "auto" }` when it reads `session.created` unless the app passes
   * `tracingDisabled: true` to `RealtimeSession`; on a WebSocket the proxy rewrites it away, on
   * WebRTC the data channel reaches OpenAI directly and the sideband can only end the call (tracing
   * cannot be switched off again). So a default browser agent under those policies is hung up at
   * connect, the browser told nothing but a closed peer connection: documented in the README
   * (*Browser and phone calls*, Locks); this pins it, and the next test the way out.
   */
  it('under a tracing-off lock, a default RealtimeSession call is hung up at connect', async () => {
    const { call } = await browserSession('shop');
    await until(() => call.state === 'ended', 'the call hung up', 10_000);
    const sentTracing = call.received.filter((r) => r.from === 'browser' && r.type === 'session.update').map((r) => (r.event['session'] as Json)['tracing']);
    expect(sentTracing).toContain('auto');
    expect(call.control.map((c) => c.action)).toEqual(['hangup']);
  });

  it('with tracingDisabled the same agent keeps its call', async () => {
    const { session, call, errors } = await browserSession('shop', { tracingDisabled: true });
    session.sendMessage('say:hello');
    await until(() => call.dataChannel.some((e) => e['type'] === 'response.done'), 'a response');
    expect(call.state).toBe('active');
    expect(errors).toEqual([]);
    session.close();
  });

  /**
   * OpenAI's docs: the app server attaches its own sideband (`?call_id=`) and gives the call its
   * tools there. With the agents SDK that is `OpenAIRealtimeSIP` (a WebSocket transport) whose
   * connect() builds `wss://api.openai.com/v1/realtime?call_id=…` itself when given `callId`, so the
   * proxy's URL goes in connect's `url` (README, *Browser and phone calls*). Under the tracing-off
   * lock its `tracing: "auto"` is rewritten on the WebSocket with an `rtproxy.notice`, which the SDK
   * shows as a transport event, not an error.
   */
  it("the app server's agents SDK sideband runs the call's tool; the lock's notice is no error", async () => {
    const { session: browser, call, errors: browserErrors } = await browserSession('shop', { tracingDisabled: true, noTools: true });
    const { lookups, lookupOrder } = lookupOrderTool();
    const server = new RealtimeSession(new RealtimeAgent({ name: 'server', instructions: 'Be brief.', tools: [lookupOrder] }), { transport: new OpenAIRealtimeSIP(), model: 'gpt-realtime' });
    const serverErrors: unknown[] = [];
    const notices: Json[] = [];
    server.on('error', (e) => serverErrors.push(e));
    server.on('transport_event', (e) => {
      if ((e as Json)['type'] === 'rtproxy.notice') notices.push(e as Json);
    });
    await server.connect({ apiKey: tp.key('shop'), callId: call.id, url: `ws://127.0.0.1:${tp.port}/v1/realtime?call_id=${call.id}` });
    await until(() => notices.length > 0, 'the tracing rewrite notice');
    browser.sendMessage('call:lookup_order {"id":"7"}');
    await until(() => call.dataChannel.some((e) => e['type'] === 'response.output_audio_transcript.done' && String(e['transcript']).includes('order 7 shipped')), 'the answer after the server tool');
    expect(lookups).toEqual(['7']);
    expect(call.state).toBe('active');
    expect(serverErrors).toEqual([]);
    // The browser's agent has no such tool and says so (its SDK does the same against OpenAI); nothing else.
    expect(browserErrors.map((e) => String((e as { error?: unknown }).error))).toEqual(['ModelBehaviorError: Tool lookup_order not found']);
    server.close();
    browser.close();
  });

  it('the shipped customer-support policy: a tracingDisabled browser agent runs its tool turn and keeps its call', async () => {
    const { session, call, lookups, errors } = await browserSession('support', { tracingDisabled: true });
    session.sendMessage('call:lookup_order {"id":"9"}');
    await until(() => call.state === 'ended' || call.dataChannel.some((e) => e['type'] === 'response.output_audio_transcript.done' && String(e['transcript']).includes('order 9 shipped')), 'the answer after the tool');
    expect(lookups).toEqual(['9']);
    expect(call.state).toBe('active');
    expect(errors).toEqual([]);
    session.close();
  });
});
