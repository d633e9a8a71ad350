import { describe, expect, it } from 'vitest';
import { ev, forwardClient, ManualTime, relayed, usage, wire } from '../../test/telemetry/support/frames.js';
import { AudioMeter } from '../pipeline/audio-meter.js';
import { Frame } from '../pipeline/frame.js';
import { Conversation, MAX_RUNNING_RESPONSES } from '../protocol/conversation.js';
import type { Report } from '../pipeline/reports.js';
import { AudioClock, Base64Member } from './audio-clock.js';
import { turnLatencies, type ResponseRecord, type SessionView, type TurnRecord } from './records.js';
import { TurnTracker, type TrackerOptions, type TurnSink } from './turns.js';

class Recorder implements TurnSink {
  opened: TurnRecord[] = [];
  closed: TurnRecord[] = [];
  responses: ResponseRecord[] = [];
  configs: SessionView[] = [];
  errors: string[] = [];
  turnOpened(turn: TurnRecord): void {
    this.opened.push(turn);
  }
  responseDone(r: ResponseRecord): void {
    this.responses.push(r);
  }
  turnClosed(turn: TurnRecord): void {
    this.closed.push(turn);
  }
  sessionConfigured(view: Readonly<SessionView>): void {
    this.configs.push({ ...view });
  }
  upstreamError(code: string): void {
    this.errors.push(code);
  }
}

function setup(opts: Partial<TrackerOptions> = {}) {
  const time = new ManualTime();
  const sink = new Recorder();
  // The relay's audio meter: audio frames go there, its reports to the tracker (as in a session).
  const meter: AudioMeter = new AudioMeter((r) => tracker.onReport(r, time.t));
  // The relay core's protocol view: it sees a server frame before the filters, a client frame after.
  const conversation = new Conversation();
  const tracker = new TurnTracker(sink, conversation, { maxTurnMs: 120_000, waitForPlayback: true, truncateGraceMs: 500, capture: null, ...opts }, time.now, time, meter);
  let seq = 0;
  const fresh = () => `event_proxy_${++seq}`;
  /** The event_ids creates left for the upstream with (the relay's create_sent): what an upstream error about one names. */
  const sent: string[] = [];
  const client = (e: { type: string; [k: string]: unknown }) => relayed(meter, 'client', wire(e), time.t, (f) => {
      tracker.onClient(f, time.t);
      forwardClient(conversation, f, (r) => {
        if (r.kind === 'create_sent') sent.push(r.eventId);
        tracker.onReport(r, time.t);
      }, fresh);
    });
  /** A client frame a later filter refused: the tracker saw it, the chain reports the verdict, nothing is sent. */
  const refused = (e: { type: string; [k: string]: unknown }, verdict: 'reject' | 'drop', code: string | null) => {
    tracker.onClient(wire(e), time.t);
    tracker.onReport({ kind: 'verdict', filter: 'metering', direction: 'client', eventType: e.type, verdict, code }, time.t);
  };
  const server = (e: { type: string; [k: string]: unknown }) => relayed(meter, 'server', wire(e), time.t, (f) => {
      conversation.observeServer(f);
      tracker.onServer(f, time.t);
    });
  const report = (r: Report) => tracker.onReport(r, time.t);
  return { time, sink, tracker, client, refused, server, report, meter, conversation, sent };
}

describe('audio clock', () => {
  it('counts decoded bytes of the base64 member without parsing, padding included, across layouts', () => {
    const m = new Base64Member('audio');
    for (const n of [0, 1, 2, 3, 4, 959, 960, 4800, 5, 961]) {
      const f = wire({ type: 'input_audio_buffer.append', audio: Buffer.alloc(n, 7).toString('base64') });
      expect(m.bytes(f)).toBe(n);
      expect(f.parsed).toBe(false);
    }
    // Layout changes (an event_id, spaced JSON, the member not last) are re-learned.
    const b64 = Buffer.alloc(300).toString('base64');
    const frames = [
      `{"type":"input_audio_buffer.append","event_id":"evt_1","audio":"${b64}"}`,
      `{"type": "input_audio_buffer.append", "audio": "${b64}"}`,
      `{"type":"input_audio_buffer.append","audio":"${b64}","event_id":"evt_22"}`,
      `{"type":"input_audio_buffer.append","audio":"${b64}","event_id":"evt_333"}`,
      `{"type":"input_audio_buffer.append","audio":"${b64}"}\n`,
    ];
    for (const text of frames) expect(m.bytes(new Frame('input_audio_buffer.append', Buffer.from(text)))).toBe(300);
  });

  it('maps an audio position back to the proxy time its chunk was forwarded', () => {
    const c = new AudioClock(8);
    c.push(100, 1000); // [0,100] forwarded at 1000
    c.push(100, 1100); // (100,200] at 1100
    c.push(100, 1200);
    expect(c.timeOf(150)).toBe(1050);
    expect(c.timeOf(200)).toBe(1100);
    expect(c.timeOf(0)).toBe(900);
    expect(c.timeOf(301)).toBeNull();
    for (let i = 0; i < 20; i++) c.push(100, 1300 + i * 100);
    expect(c.timeOf(2250)).toBe(3200 - 50);
  });
});

describe('turn tracker', () => {
  it('server VAD turn: one turn, latencies from the proxy clock, VAD-backdated voice-to-voice', () => {
    const { time, sink, client, server } = setup();
    server(ev.sessionCreated());
    expect(sink.configs[0]).toMatchObject({ vadType: 'server_vad', silenceMs: 500, realtimeSessionId: 'sess_1' });
    // 2 s of audio streamed in real time: 100 ms chunks every 100 ms.
    for (let i = 0; i < 20; i++) {
      time.advance(100);
      client(ev.append(100));
    }
    // t = 3000; 2000 ms appended; speech 300..1400 ms, silence window 500 → stopped at audio 1900.
    server(ev.speechStarted(300));
    time.advance(10);
    server(ev.speechStopped(1900));
    const stoppedAt = time.t;
    server(ev.committed());
    time.advance(5);
    server(ev.responseCreated('resp_1'));
    time.advance(300);
    server(ev.outputItemAdded('resp_1', 'item_a1'));
    server(ev.transcriptDelta('resp_1', 'Hi'));
    time.advance(20);
    const firstAudio = time.t;
    server(ev.audioDelta('resp_1', 1000));
    server(ev.audioDelta('resp_1', 500));
    time.advance(50);
    server(ev.responseDone('resp_1'));
    expect(sink.responses).toHaveLength(1);
    expect(sink.closed).toHaveLength(0); // still playing back
    time.advance(1500);
    expect(sink.opened).toHaveLength(1);
    expect(sink.closed).toHaveLength(1);
    const turn = sink.closed[0]!;
    expect(turn.endReason).toBe('completed');
    expect(turn.anchor).toBe('server_vad');
    expect(turn.initiator).toBe('user');
    expect(turn.outputAudioMs).toBe(1500);
    expect(turn.endedAt).toBe(firstAudio + 1500);
    const lat = turnLatencies(turn);
    expect(lat.responseLatencyMs).toBe(firstAudio - stoppedAt);
    expect(lat.timeToFirstTextMs).toBe(firstAudio - 20 - stoppedAt);
    // Speech ended at audio 1400 ms, forwarded in the chunk (1300,1400] at t=2400.
    expect(turn.speechEndEstimateAt).toBe(2400);
    expect(lat.voiceToVoiceMs).toBe(firstAudio - 2400);
    expect(turn.responses[0]!.trigger).toBe('server');
    expect(turn.responses[0]!.usage).toMatchObject({ input: 30, output: 20, inputAudio: 20, outputAudio: 15 });
  });

  it('falls back to speech_stopped minus the silence window when the audio is not in the ring', () => {
    const { time, sink, server } = setup();
    server(ev.sessionCreated());
    server(ev.speechStarted(0));
    time.advance(700);
    server(ev.speechStopped(700));
    expect(sink.opened[0]!.speechEndEstimateAt).toBe(time.t - 500);
  });

  it('push-to-talk: first append opens the turn, commit anchors it, response.create answers it', () => {
    const { time, sink, client, server } = setup();
    server(ev.sessionCreated(null));
    expect(sink.configs[0]!.vadType).toBe('none');
    time.advance(10);
    const speechStart = time.t;
    for (let i = 0; i < 5; i++) {
      client(ev.append(100));
      time.advance(100);
    }
    client({ type: 'input_audio_buffer.commit' });
    const commitAt = time.t;
    time.advance(3);
    client({ type: 'response.create' });
    time.advance(7);
    server(ev.responseCreated('resp_1'));
    time.advance(200);
    server(ev.audioDelta('resp_1', 100));
    server(ev.responseDone('resp_1'));
    time.advance(100);
    const [turn] = sink.closed;
    expect(turn).toBeDefined();
    expect(turn!.anchor).toBe('commit');
    expect(turn!.speechStartAt).toBe(speechStart);
    expect(turn!.speechEndAt).toBe(commitAt);
    expect(turn!.userEndAt).toBe(commitAt);
    expect(turn!.responses[0]!.trigger).toBe('client');
    expect(turn!.responses[0]!.requestedAt).toBe(commitAt + 3);
    expect(turnLatencies(turn!).responseLatencyMs).toBe(210);
    expect(turnLatencies(turn!).voiceToVoiceMs).toBeNull();
  });

  it('text turn: item.create + response.create; anchored on response.create', () => {
    const { time, sink, client, server } = setup();
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    time.advance(4);
    client({ type: 'response.create', response: {} });
    const requested = time.t;
    time.advance(6);
    server(ev.responseCreated('resp_1', { output_modalities: ['text'] }));
    time.advance(50);
    server({ type: 'response.output_text.delta', event_id: 'e', response_id: 'resp_1', item_id: 'i', output_index: 0, content_index: 0, delta: 'He' });
    server(ev.responseDone('resp_1'));
    expect(sink.closed).toHaveLength(1);
    const turn = sink.closed[0]!;
    expect(turn.anchor).toBe('text');
    expect(turn.userEndAt).toBe(requested);
    expect(turn.endReason).toBe('completed');
    expect(turnLatencies(turn).timeToFirstTextMs).toBe(56);
    expect(turnLatencies(turn).responseLatencyMs).toBeNull();
  });

  it('barge-in during generation: old turn interrupted, waits for cancel and truncate, new turn opens', () => {
    const { time, sink, client, server } = setup();
    server(ev.sessionCreated());
    server(ev.speechStarted(0));
    server(ev.speechStopped(800));
    server(ev.responseCreated('resp_1'));
    server(ev.outputItemAdded('resp_1', 'item_a1'));
    time.advance(100);
    server(ev.audioDelta('resp_1', 400));
    time.advance(100);
    server(ev.speechStarted(1500, 'item_u2'));
    const bargeIn = time.t;
    expect(sink.opened).toHaveLength(2);
    expect(sink.closed).toHaveLength(0); // resp_1 not done yet
    time.advance(20);
    server(ev.responseDone('resp_1', 'cancelled', { status_details: { type: 'cancelled', reason: 'turn_detected' } }));
    expect(sink.closed).toHaveLength(0); // waiting for the truncate
    time.advance(10);
    client({ type: 'conversation.item.truncate', item_id: 'item_a1', content_index: 0, audio_end_ms: 95 });
    expect(sink.closed).toHaveLength(1);
    const old = sink.closed[0]!;
    expect(old.number).toBe(1);
    expect(old.endReason).toBe('interrupted');
    expect(old.interruption).toBe('generation');
    expect(old.playedAudioMs).toBe(95);
    expect(old.endedAt).toBe(bargeIn + 30);
    expect(old.responses[0]!.status).toBe('cancelled');
    expect(sink.opened[1]!.speechStartAt).toBe(bargeIn);
  });

  it('barge-in during playback marks the turn interrupted (playback) without a truncate after the grace', () => {
    const { time, sink, server } = setup();
    server(ev.sessionCreated());
    server(ev.speechStarted(0));
    server(ev.speechStopped(800));
    server(ev.responseCreated('resp_1'));
    server(ev.audioDelta('resp_1', 3000));
    server(ev.responseDone('resp_1'));
    time.advance(1000);
    expect(sink.closed).toHaveLength(0);
    server(ev.speechStarted(5000, 'item_u2'));
    const at = time.t;
    time.advance(499);
    expect(sink.closed).toHaveLength(0);
    time.advance(1);
    expect(sink.closed[0]).toMatchObject({ endReason: 'interrupted', interruption: 'playback', endedAt: at });
  });

  it('tool call: execute_tool between two responses of one turn', () => {
    const { time, sink, client, server } = setup();
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'weather?' }] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_1'));
    time.advance(100);
    server(ev.functionArgsDone('resp_1', 'call_1', 'get_weather'));
    const toolStart = time.t;
    server(ev.responseDone('resp_1', 'completed', { output: [{ type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{}' }] }));
    time.advance(250);
    client({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_1', output: '{"t":21}' } });
    const toolEnd = time.t;
    client({ type: 'response.create' });
    time.advance(10);
    server(ev.responseCreated('resp_2'));
    time.advance(100);
    server(ev.audioDelta('resp_2', 100));
    server(ev.responseDone('resp_2'));
    time.advance(100);
    expect(sink.opened).toHaveLength(1);
    expect(sink.closed).toHaveLength(1);
    const turn = sink.closed[0]!;
    expect(turn.endReason).toBe('completed');
    expect(turn.responses.map((r) => r.id)).toEqual(['resp_1', 'resp_2']);
    expect(turn.responses[0]!.functionCalls).toBe(1);
    expect(turn.tools).toEqual([{ callId: 'call_1', name: 'get_weather', responseId: 'resp_1', start: toolStart, end: toolEnd }]);
  });

  it('client response.cancel interrupts; failed and incomplete responses end the turn with that reason', () => {
    const a = setup();
    a.server(ev.sessionCreated());
    a.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    a.client({ type: 'response.create' });
    a.server(ev.responseCreated('resp_1'));
    a.client({ type: 'response.cancel' });
    a.server(ev.responseDone('resp_1', 'cancelled', { status_details: { type: 'cancelled', reason: 'client_cancelled' } }));
    expect(a.sink.closed[0]).toMatchObject({ endReason: 'interrupted', interruption: 'generation' });

    const b = setup();
    b.server(ev.sessionCreated());
    b.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    b.client({ type: 'response.create' });
    b.server(ev.responseCreated('resp_1'));
    b.server(ev.responseDone('resp_1', 'failed', { status_details: { type: 'failed', error: { type: 'server_error', code: 'rate_limited' } } }));
    expect(b.sink.closed[0]).toMatchObject({ endReason: 'failed', errorType: 'rate_limited' });

    const c = setup();
    c.server(ev.sessionCreated());
    c.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    c.client({ type: 'response.create' });
    c.server(ev.responseCreated('resp_1'));
    c.server(ev.responseDone('resp_1', 'incomplete', { status_details: { type: 'incomplete', reason: 'max_output_tokens' } }));
    expect(c.sink.closed[0]).toMatchObject({ endReason: 'incomplete' });
  });

  it('a response.cancel sent before response.created reached the proxy still marks that response', () => {
    const { sink, client, server } = setup();
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    client({ type: 'response.create' });
    client({ type: 'response.cancel' });
    server(ev.responseCreated('resp_1'));
    server(ev.responseDone('resp_1', 'cancelled', { status_details: { type: 'cancelled', reason: 'client_cancelled' } }));
    expect(sink.closed[0]).toMatchObject({ endReason: 'interrupted', interruption: 'generation' });
    expect(sink.closed[0]!.responses[0]!.clientCancelled).toBe(true);
  });

  it('proxy-cancelled responses (guardrail, budget) end the turn as cancelled, not interrupted', () => {
    const { sink, client, server, report } = setup();
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_1'));
    report({ kind: 'guardrail', policyId: 'p', policyVersion: '1', ruleId: 'r', action: 'cancel_response', source: 'output', direction: 'server', responseId: 'resp_1', decisionMs: 1 });
    server(ev.responseDone('resp_1', 'cancelled', { status_details: { type: 'cancelled', reason: 'client_cancelled' } }));
    expect(sink.closed[0]).toMatchObject({ endReason: 'cancelled', guardrailAction: 'cancel_response' });
    expect(sink.closed[0]!.responses[0]!.cancelledBy).toBe('guardrail');
    expect(sink.closed[0]!.events.some((e) => e.name === 'gen_ai.guardrail.result')).toBe(true);
  });

  it('out-of-band responses are their own turn and leave the conversation turn alone', () => {
    const { sink, client, server } = setup();
    server(ev.sessionCreated());
    server(ev.speechStarted(0));
    server(ev.speechStopped(600));
    server(ev.responseCreated('resp_1'));
    client({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'] } });
    server(ev.responseCreated('resp_oob', { conversation_id: null, output_modalities: ['text'] }));
    server(ev.audioDelta('resp_1', 100));
    server(ev.responseDone('resp_oob'));
    expect(sink.closed).toHaveLength(1);
    expect(sink.closed[0]).toMatchObject({ outOfBand: true, initiator: 'agent', endReason: 'completed' });
    expect(sink.closed[0]!.responses[0]!.outOfBand).toBe(true);
    server(ev.responseDone('resp_1'));
    expect(sink.opened).toHaveLength(2);
    expect(sink.opened[0]!.responses.map((r) => r.id)).toEqual(['resp_1']);
  });

  it('a response keeps the max_output_tokens it was created with; "inf" (no limit) is null', () => {
    const { sink, client, server } = setup();
    server(ev.sessionCreated());
    client({ type: 'response.create', response: { max_output_tokens: 200 } });
    server(ev.responseCreated('resp_1', { max_output_tokens: 200 }));
    server(ev.responseDone('resp_1'));
    client({ type: 'response.create', response: { max_output_tokens: 'inf' } });
    server(ev.responseCreated('resp_2', { max_output_tokens: 'inf' }));
    server(ev.responseDone('resp_2'));
    expect(sink.responses.map((r) => [r.id, r.maxOutputTokens])).toEqual([
      ['resp_1', 200],
      ['resp_2', null],
    ]);
  });

  it('server-initiated response (no request, no user input) opens an agent turn', () => {
    const { sink, server } = setup();
    server(ev.sessionCreated());
    server(ev.responseCreated('resp_1'));
    server(ev.responseDone('resp_1'));
    expect(sink.closed[0]).toMatchObject({ initiator: 'agent', anchor: 'none', endReason: 'completed', userEndAt: null });
  });

  it('agent-initiated response.create opens an agent turn anchored on the request', () => {
    const { time, sink, client, server } = setup();
    server(ev.sessionCreated());
    client({ type: 'response.create', response: { instructions: 'greet' } });
    time.advance(300);
    server(ev.responseCreated('resp_1'));
    server(ev.audioDelta('resp_1', 10));
    server(ev.responseDone('resp_1'));
    time.advance(10);
    expect(sink.closed[0]).toMatchObject({ initiator: 'agent', anchor: 'response_create' });
    expect(turnLatencies(sink.closed[0]!).responseLatencyMs).toBe(300);
  });

  it('a refused response.create (policy verdict or upstream error) fails the turn', () => {
    const { sink, client, refused, server, sent } = setup();
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    refused({ type: 'response.create' }, 'reject', 'budget_exceeded');
    expect(sink.closed[0]).toMatchObject({ endReason: 'failed', errorType: 'budget_exceeded' });

    client({ type: 'response.create', event_id: 'evt_9' });
    // The upstream names the id the create left with (the proxy's: Conversation.stamp).
    server({ type: 'error', event_id: 'e', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'x', param: null, event_id: sent.at(-1) } });
    expect(sink.errors).toEqual(['invalid_value']);
    expect(sink.closed[1]).toMatchObject({ initiator: 'agent', endReason: 'failed', errorType: 'invalid_value' });
  });

  it('follows the view pairing, not the order of creates: each response gets the request time of the create that started it', () => {
    const { time, sink, client, server, conversation, sent } = setup();
    server(ev.sessionCreated());
    const asked = [time.t];
    client({ type: 'response.create', response: { conversation: 'none', metadata: { job: 'a' }, output_modalities: ['text'] } });
    time.advance(100);
    asked.push(time.t);
    client({ type: 'response.create', response: { conversation: 'none', metadata: { job: 'b' }, output_modalities: ['text'] } });
    time.advance(100);
    // The upstream starts b first (parallel out-of-band responses start in any order).
    server(ev.responseCreated('resp_b', { conversation_id: null, metadata: { job: 'b' }, output_modalities: ['text'] }));
    server(ev.responseCreated('resp_a', { conversation_id: null, metadata: { job: 'a' }, output_modalities: ['text'] }));
    expect(conversation.response('resp_b')?.createEventId).toBe(sent[1]);
    server(ev.responseDone('resp_b'));
    server(ev.responseDone('resp_a'));
    const byId = new Map(sink.responses.map((r) => [r.id, r]));
    expect([byId.get('resp_a')?.requestedAt, byId.get('resp_b')?.requestedAt]).toEqual(asked);
    expect(sink.closed.map((t) => [t.outOfBand, t.openedAt, t.anchor])).toEqual([
      [true, asked[1], 'response_create'],
      [true, asked[0], 'response_create'],
    ]);
  });

  it('a create the upstream refused (error naming the event_id it left with) ends its timing; a later VAD response is not taken for it', () => {
    const { time, sink, client, server, sent } = setup();
    server(ev.sessionCreated());
    // No event_id from the client: the relay stamps one, and the upstream's error names it.
    client({ type: 'response.create' });
    expect(sink.opened).toHaveLength(1);
    server({ type: 'error', event_id: 'e', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'x', param: null, event_id: sent[0] } });
    expect(sink.closed[0]).toMatchObject({ initiator: 'agent', endReason: 'failed', errorType: 'invalid_value' });
    time.advance(50);
    server(ev.speechStarted(0));
    server(ev.speechStopped(600));
    server(ev.responseCreated('resp_vad'));
    server(ev.responseDone('resp_vad'));
    expect(sink.responses[0]).toMatchObject({ id: 'resp_vad', trigger: 'server', requestedAt: null });
    expect(sink.opened[1]!.responses.map((r) => r.id)).toEqual(['resp_vad']);
    // An error about an event that is no create (or no longer waits) refuses nothing.
    server({ type: 'error', event_id: 'e', error: { type: 'invalid_request_error', code: 'x', message: 'x', param: null, event_id: sent[0] } });
    expect(sink.closed.filter((t) => t.endReason === 'failed')).toHaveLength(1);
  });

  it('an unreported conversation_id takes its kind from the create the view paired', () => {
    const { sink, client, server } = setup();
    server(ev.sessionCreated());
    client({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'] } });
    server(ev.responseCreated('resp_oob', { conversation_id: undefined, output_modalities: ['text'] }));
    server(ev.responseDone('resp_oob'));
    expect(sink.closed[0]).toMatchObject({ outOfBand: true, anchor: 'response_create' });
    expect(sink.responses[0]).toMatchObject({ outOfBand: true, trigger: 'client' });
    // Unreported and unrequested: a server response in the conversation.
    server(ev.responseCreated('resp_srv', { conversation_id: undefined }));
    server(ev.responseDone('resp_srv'));
    expect(sink.responses[1]).toMatchObject({ outOfBand: false, trigger: 'server', requestedAt: null });
  });

  it('a force-closed turn drops its response while the view still runs it: its later frames change nothing', () => {
    const { time, sink, client, server, conversation } = setup({ maxTurnMs: 1000 });
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_1'));
    time.advance(1000);
    expect(sink.closed[0]).toMatchObject({ endReason: 'timeout' });
    expect(sink.responses.map((r) => [r.id, r.doneAt])).toEqual([['resp_1', null]]);
    expect(conversation.activeResponses()).toEqual(['resp_1']);
    server(ev.transcriptDelta('resp_1', 'late'));
    server(ev.functionArgsDone('resp_1', 'call_1', 'lookup'));
    client({ type: 'response.cancel' });
    server(ev.responseDone('resp_1'));
    expect(sink.responses).toHaveLength(1);
    expect(sink.closed).toHaveLength(1);
    expect(sink.closed[0]!.firstTextAt).toBeNull();
    // The session goes on: a new response is tracked in a turn of its own.
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_2'));
    server(ev.transcriptDelta('resp_2', 'hi'));
    server(ev.responseDone('resp_2'));
    expect(sink.closed[1]!.responses.map((r) => [r.id, r.firstTextAt !== null])).toEqual([['resp_2', true]]);
  });

  it('a turn waits for the response.done a later filter still holds, although the view already counts the response done', () => {
    const { time, sink, client, server, tracker, conversation } = setup({ truncateGraceMs: 0 });
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_1'));
    server(ev.outputItemAdded('resp_1', 'item_a1'));
    server(ev.audioDelta('resp_1', 200));
    // The relay core observed response.done; a filter before telemetry holds the frame.
    const held = wire(ev.responseDone('resp_1'));
    conversation.observeServer(held);
    expect(conversation.activeResponses()).toEqual([]);
    client({ type: 'conversation.item.truncate', item_id: 'item_a1', content_index: 0, audio_end_ms: 50 });
    expect(sink.closed).toHaveLength(0);
    time.advance(5);
    tracker.onServer(held, time.t);
    expect(sink.closed).toHaveLength(1);
    expect(sink.closed[0]!.responses[0]).toMatchObject({ id: 'resp_1', usage: { input: 30, output: 20 } });
    expect(sink.closed[0]!.responses[0]!.doneAt).not.toBeNull();
  });

  it('keeps a bounded number of open turns: running ones past 256 (the running-response bound), the oldest closed as at its cap, its running response given up and counted once', () => {
    const { sink, server, tracker } = setup();
    server(ev.sessionCreated());
    // Each out-of-band response.created opens a turn of its own; none is ever done.
    for (let i = 0; i < 260; i++) server(ev.responseCreated(`resp_${i}`, { conversation_id: null }));
    expect(tracker.openTurns).toHaveLength(256);
    expect(sink.closed.map((t) => t.endReason)).toEqual(Array.from({ length: 4 }, () => 'timeout'));
    expect(sink.responses.map((r) => [r.id, r.doneAt])).toEqual(Array.from({ length: 4 }, (_, i) => [`resp_${i}`, null]));
    // Its late response.done neither counts it again nor fails.
    server(ev.responseDone('resp_0'));
    server(ev.responseDone('resp_259'));
    expect(sink.responses.map((r) => r.id)).toEqual(['resp_0', 'resp_1', 'resp_2', 'resp_3', 'resp_259']);
  });

  // The conversation view runs at most MAX_RUNNING_RESPONSES at once (past it the relay ends the
  // session, src/protocol/conversation.ts): until 2026-12-07 a flood of 300 reached the tracker's own
  // bound (256 running, 45 turns closed as timed out); now the flood stops at the view's.
  it(`a flood of responses that each open a turn (created, never done) keeps them all open up to the view's bound (${MAX_RUNNING_RESPONSES}), never the current one closed`, () => {
    const { sink, server, client, tracker, conversation } = setup();
    server(ev.sessionCreated());
    // The user's turn is current while the upstream floods.
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    const user = tracker.current!;
    for (let i = 0; i < MAX_RUNNING_RESPONSES; i++) server(ev.responseCreated(`resp_oob_${i}`, { conversation_id: null }));
    expect(conversation.upstreamFault).toBeNull();
    expect(tracker.openTurns).toHaveLength(MAX_RUNNING_RESPONSES + 1);
    expect(tracker.current).toBe(user);
    expect(tracker.openTurns[0]).toBe(user);
    expect(sink.closed).toEqual([]);
  });

  it('past 32 open turns, a turn only waiting for its playback makes room as completed; turns whose response still runs stay open', () => {
    const { sink, server, tracker } = setup();
    server(ev.sessionCreated());
    // 40 parallel out-of-band requests: all created before any is done (as the simulator and the API run them).
    for (let i = 0; i < 40; i++) server(ev.responseCreated(`resp_${i}`, { conversation_id: null }));
    expect(tracker.openTurns).toHaveLength(40);
    expect(sink.closed).toEqual([]);
    // Each is done with 5 s of audio: the turns wait for the estimated end of playback.
    for (let i = 0; i < 40; i++) {
      server(ev.audioDelta(`resp_${i}`, 5000, `item_${i}`));
      server(ev.responseDone(`resp_${i}`));
    }
    expect(sink.closed).toEqual([]);
    // More requests: the oldest done turns make room, with their real outcome.
    for (let i = 40; i < 50; i++) server(ev.responseCreated(`resp_${i}`, { conversation_id: null }));
    expect(sink.closed.map((t) => [t.responses[0]!.id, t.endReason, t.errorType])).toEqual(Array.from({ length: 10 }, (_, i) => [`resp_${i}`, 'completed', null]));
    expect(tracker.openTurns).toHaveLength(40);
  });

  it('keeps the timing of a bounded number of unanswered creates, oldest dropped first', () => {
    const { time, sink, client, server, conversation, sent } = setup();
    server(ev.sessionCreated());
    const first = time.t;
    for (let i = 0; i < 20; i++) {
      client({ type: 'response.create', event_id: `evt_${i}`, response: { conversation: 'none', metadata: { i: String(i) } } });
      time.advance(10);
    }
    // The view still pairs the oldest (its own bound is larger); the tracker no longer has its timing.
    server(ev.responseCreated('resp_0', { conversation_id: null, metadata: { i: '0' } }));
    expect(conversation.response('resp_0')).toMatchObject({ origin: 'out_of_band', createEventId: sent[0] });
    server(ev.responseCreated('resp_19', { conversation_id: null, metadata: { i: '19' } }));
    server(ev.responseDone('resp_0'));
    server(ev.responseDone('resp_19'));
    expect(sink.responses.map((r) => [r.id, r.trigger, r.requestedAt])).toEqual([
      ['resp_0', 'client', null],
      ['resp_19', 'client', first + 190],
    ]);
  });

  it('usage cost reported before response.done is attached to the response and the turn', () => {
    const { sink, client, server, report } = setup();
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_1'));
    report({ kind: 'usage', responseId: 'resp_1', model: 'gpt-realtime', costMicros: 1234, inputTokens: 30, outputTokens: 20, cachedTokens: 0, source: 'response' });
    server(ev.responseDone('resp_1', 'completed', { usage: usage({ text: 3 }, { text: 2 }) }));
    expect(sink.closed[0]!.costMicros).toBe(1234);
    expect(sink.closed[0]!.responses[0]!.costMicros).toBe(1234);
  });

  it('session close ends open turns as session_closed and abandons running responses', () => {
    const { time, sink, server, tracker } = setup();
    server(ev.sessionCreated());
    server(ev.speechStarted(0));
    server(ev.speechStopped(600));
    server(ev.responseCreated('resp_1'));
    time.advance(50);
    tracker.close(time.t);
    expect(sink.closed[0]).toMatchObject({ endReason: 'session_closed', endedAt: time.t });
    expect(sink.responses[0]).toMatchObject({ id: 'resp_1', status: 'in_progress', doneAt: null });
    expect(time.pending).toBe(0);
  });

  it('a turn only waiting for playback at session close counts as completed', () => {
    const { time, sink, server, tracker } = setup();
    server(ev.sessionCreated());
    server(ev.speechStarted(0));
    server(ev.speechStopped(600));
    server(ev.responseCreated('resp_1'));
    server(ev.audioDelta('resp_1', 5000));
    server(ev.responseDone('resp_1'));
    time.advance(100);
    tracker.close(time.t);
    expect(sink.closed[0]).toMatchObject({ endReason: 'completed', endedAt: time.t });
  });

  it('a turn open past maxTurnMs times out', () => {
    const { time, sink, client } = setup({ maxTurnMs: 1000 });
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    time.advance(1000);
    expect(sink.closed[0]).toMatchObject({ endReason: 'timeout' });
  });

  it('audio counters come from base64 lengths, in the session output format', () => {
    const { sink, client, server, tracker } = setup();
    server(ev.sessionCreated());
    client(ev.append(250));
    server(ev.responseCreated('resp_1'));
    server(ev.audioDelta('resp_1', 120));
    expect([tracker.audioInMs, tracker.audioOutMs]).toEqual([250, 120]);
    server({
      type: 'session.updated',
      session: { audio: { input: { format: { type: 'audio/pcmu' } }, output: { format: { type: 'audio/pcma' } } } },
    });
    client({ type: 'input_audio_buffer.append', audio: Buffer.alloc(800).toString('base64') });
    expect(tracker.audioInMs).toBe(350);
    expect(sink.configs[1]).toMatchObject({ inputFormat: 'g711_ulaw', outputFormat: 'g711_alaw', vadType: 'server_vad' });
  });

  it('captures content only through the redactor when capture is on', () => {
    const { client, server, sink } = setup({ capture: (t) => t.replace(/\d/g, '#') });
    server(ev.sessionCreated());
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'call 555' }] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_1'));
    server({ type: 'response.output_audio_transcript.done', event_id: 'e', response_id: 'resp_1', item_id: 'i', output_index: 0, content_index: 0, transcript: 'ok 42' });
    server(ev.responseDone('resp_1'));
    expect(sink.closed[0]!.inputText).toBe('call ###');
    expect(sink.closed[0]!.responses[0]!.outputText).toBe('ok ##');
  });

  it('never parses audio frames, even with two responses running (id sniffed)', () => {
    const { time, tracker, server, meter } = setup();
    server(ev.sessionCreated());
    server(ev.responseCreated('resp_x'));
    server(ev.responseCreated('resp_y', { conversation_id: null }));
    const seen: string[] = [];
    const a = relayed(meter, 'client', wire(ev.append(100)), time.t, (f) => seen.push(f.type));
    const d = relayed(meter, 'server', wire(ev.audioDelta('resp_y', 100)), time.t, (f) => seen.push(f.type));
    expect(a.parsed).toBe(false);
    expect(d.parsed).toBe(false);
    expect(seen).toEqual([]);
    expect(tracker.audioOutMs).toBe(100);
    expect(meter.response('resp_y')).toMatchObject({ frames: 1, bytes: 4800 });
  });

  it('identical verdicts in a row are one turn event with a count (no event per held-back frame)', () => {
    const { sink, client, report } = setup();
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    const held = { kind: 'verdict', filter: 'policies.guardrails', direction: 'server', eventType: 'response.output_audio_transcript.delta', verdict: 'drop', code: null } as const;
    for (let i = 0; i < 50; i++) report(held);
    report({ ...held, verdict: 'replace' });
    report(held);
    const turn = sink.opened[0]!;
    const verdicts = turn.events.filter((e) => e.name === 'rtproxy.verdict');
    expect(verdicts.map((e) => [e.attrs?.['rtproxy.verdict'], e.attrs?.['rtproxy.verdict.count']])).toEqual([
      ['drop', 50],
      ['replace', undefined],
      ['drop', undefined],
    ]);
  });
});

/**
 * A hostile upstream controls how many function calls, responses and output items one turn gets;
 * each kept a record (tools and responses also a span) until the turn closed, up to the 120 s cap.
 * Past the per-turn bounds they are counted on one `rtproxy.turn.dropped` event of the turn.
 */
describe('turn tracker: per-turn bounds against a hostile upstream', () => {
  const dropped = (turn: TurnRecord) => turn.events.filter((e) => e.name === 'rtproxy.turn.dropped').map((e) => ({ ...e.attrs }));

  /** A user text turn answered by resp_1, which is still running. */
  function responding() {
    const s = setup();
    s.server(ev.sessionCreated());
    s.client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } });
    s.client({ type: 'response.create' });
    s.server(ev.responseCreated('resp_1'));
    return s;
  }

  it('keeps 64 tool records per turn and counts the rest; a repeated call_id is not a second call', () => {
    const { server, sink, tracker, time } = responding();
    const turn = tracker.current!;
    for (let i = 0; i < 1000; i++) server(ev.functionArgsDone('resp_1', `call_${i}`, 'f'));
    server(ev.functionArgsDone('resp_1', 'call_0', 'f'));
    expect(turn.tools.map((t) => t.callId)).toEqual(Array.from({ length: 64 }, (_, i) => `call_${i}`));
    expect(dropped(turn)).toEqual([{ 'rtproxy.turn.dropped.tools': 936 }]);
    // The counts stay on the closed turn (the spans are written from it).
    time.advance(120_000);
    expect(sink.closed).toEqual([turn]);
    expect(dropped(turn)).toEqual([{ 'rtproxy.turn.dropped.tools': 936 }]);
  });

  it('the count survives a turn whose events are at their cap, and a kept call still ends on its output', () => {
    const { server, client, tracker, time, report } = responding();
    const turn = tracker.current!;
    for (let i = 0; i < 200; i++) report({ kind: 'lock', field: 'instructions', action: 'rewritten', direction: 'client' });
    expect(turn.events.length).toBe(128);
    for (let i = 0; i < 65; i++) server(ev.functionArgsDone('resp_1', `call_${i}`, 'f'));
    expect(dropped(turn)).toEqual([{ 'rtproxy.turn.dropped.tools': 1 }]);
    expect(turn.events.length).toBe(129);
    time.advance(5);
    client({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_63', output: '{}' } });
    expect(turn.tools[63]!.end).toBe(time.t);
    // The dropped one has no record to end.
    client({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_64', output: '{}' } });
    expect(turn.tools.filter((t) => t.end !== null)).toHaveLength(1);
  });

  it('ids longer than 256 characters are not kept (call, item, response ids, early reports) and a status reason is cut', () => {
    const { server, report, tracker, sink } = responding();
    const turn = tracker.current!;
    const long = (p: string) => `${p}_${'x'.repeat(100_000)}`;
    server(ev.functionArgsDone('resp_1', long('call'), 'f'));
    server(ev.functionArgsDone('resp_1', `call_${'y'.repeat(251)}`, 'f'));
    expect(turn.tools.map((t) => t.callId.length)).toEqual([256]);
    server(ev.outputItemAdded('resp_1', long('item')));
    server(ev.outputItemAdded('resp_1', `item_${'y'.repeat(251)}`));
    expect(dropped(turn)).toEqual([{ 'rtproxy.turn.dropped.tools': 1, 'rtproxy.turn.dropped.items': 1 }]);
    // Early reports (before their response.created) are kept for a few responses: a long id takes no place there.
    const usage = (responseId: string): Report => ({ kind: 'usage', responseId, model: 'gpt-realtime', costMicros: 5, inputTokens: 1, outputTokens: 1, cachedTokens: 0, source: 'response' });
    for (let i = 0; i < 64; i++) report(usage(`resp_u${i}`));
    for (let i = 0; i < 16; i++) report({ kind: 'output_audio_started', responseId: `resp_u${i}`, at: 1 });
    report({ kind: 'output_audio_started', responseId: long('resp'), at: 1 });
    report(usage(long('resp')));
    server(ev.responseCreated('resp_u0', { conversation_id: null }));
    server(ev.responseDone('resp_u0'));
    expect(sink.responses.map((r) => [r.id, r.costMicros, r.firstAudioAt])).toEqual([['resp_u0', 5, 1]]);
    sink.responses.length = 0;
    server(ev.responseCreated(long('resp'), { conversation_id: null }));
    server(ev.responseDone(long('resp')));
    expect(sink.responses).toEqual([]);
    expect(tracker.openTurns).toEqual([turn]);
    expect(sink.opened).toHaveLength(2);
    server(ev.responseDone('resp_1', 'incomplete', { status_details: { type: 'incomplete', reason: 'r'.repeat(10_000) } }));
    expect(sink.responses[0]!.statusReason!.length).toBeLessThan(300);
  });

  it('keeps 64 response records per turn (a tool loop the upstream never ends); the rest are counted, not tracked', () => {
    const { server, sink, tracker } = responding();
    const turn = tracker.current!;
    const fc = (i: number) => ({ output: [{ type: 'function_call', call_id: `call_${i}`, name: 'f', arguments: '{}' }] });
    server(ev.responseDone('resp_1', 'completed', fc(1)));
    for (let i = 2; i <= 100; i++) {
      server(ev.responseCreated(`resp_${i}`));
      server(ev.responseDone(`resp_${i}`, 'completed', fc(i)));
    }
    expect(turn.phase).toBe('tool_wait');
    expect(turn.responses).toHaveLength(64);
    expect(sink.responses.map((r) => r.id)).toEqual(Array.from({ length: 64 }, (_, i) => `resp_${i + 1}`));
    expect(dropped(turn)).toEqual([{ 'rtproxy.turn.dropped.responses': 36 }]);
    expect(sink.opened).toEqual([turn]);
  });

  it('keeps 128 item ids per turn (truncates and transcripts find their turn), counts the rest, and forgets them when the turn closes', () => {
    const { server, client, tracker, sink } = responding();
    const turn = tracker.current!;
    // The user's message has no id here: every kept id is an output item.
    for (let i = 0; i < 500; i++) server(ev.outputItemAdded('resp_1', `item_${i}`));
    // The same id again is not another item.
    server(ev.outputItemAdded('resp_1', 'item_0'));
    expect(dropped(turn)).toEqual([{ 'rtproxy.turn.dropped.items': 372 }]);
    // A kept item's truncate reaches the turn; a dropped one's does not.
    client({ type: 'conversation.item.truncate', item_id: 'item_200', content_index: 0, audio_end_ms: 10 });
    expect(turn.truncated).toBe(false);
    client({ type: 'conversation.item.truncate', item_id: 'item_127', content_index: 0, audio_end_ms: 10 });
    expect(turn.truncated).toBe(true);
    server(ev.responseDone('resp_1', 'cancelled'));
    expect(sink.closed).toEqual([turn]);
    // A new turn gets its own allowance.
    client({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [] } });
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_2'));
    const next = tracker.current!;
    for (let i = 0; i < 128; i++) server(ev.outputItemAdded('resp_2', `item_${i}`));
    expect(dropped(next)).toEqual([]);
  });

  it('maps item ids from every source to their turn (transcripts and truncates find it); events without one, or of an unknown response, change nothing', () => {
    const { server, client, tracker, sink } = setup({ capture: (t) => t });
    server(ev.sessionCreated());
    server({ type: 'input_audio_buffer.speech_started', event_id: 'e', audio_start_ms: 0 });
    server(ev.speechStarted(10, 'item_sp'));
    server({ type: 'input_audio_buffer.committed', event_id: 'e', previous_item_id: null });
    server(ev.committed('item_cm'));
    const user = tracker.current!;
    client({ type: 'conversation.item.create', item: { id: 'item_txt', type: 'message', role: 'user', content: [] } });
    server({ type: 'conversation.item.input_audio_transcription.completed', event_id: 'e', item_id: 'item_txt', content_index: 0, transcript: 'zero' });
    server({ type: 'conversation.item.input_audio_transcription.completed', event_id: 'e', item_id: 'item_sp', content_index: 0, transcript: 'one' });
    server({ type: 'conversation.item.input_audio_transcription.completed', event_id: 'e', item_id: 'item_cm', content_index: 0, transcript: 'two' });
    expect(user.inputText).toBe('zero\none\ntwo');
    server(ev.speechStopped(900, 'item_sp'));
    client({ type: 'response.create' });
    server(ev.responseCreated('resp_1'));
    server({ type: 'response.output_item.added', event_id: 'e', response_id: 'resp_1', output_index: 0, item: { type: 'message' } });
    server(ev.outputItemAdded('resp_unknown', 'item_other'));
    server(ev.outputItemAdded('resp_1', 'item_out'));
    client({ type: 'conversation.item.truncate', item_id: 'item_other', content_index: 0, audio_end_ms: 5 });
    expect(user.truncated).toBe(false);
    client({ type: 'conversation.item.truncate', item_id: 'item_out', content_index: 0, audio_end_ms: 5 });
    expect(user.truncated).toBe(true);
    expect(dropped(user)).toEqual([]);
    server(ev.responseDone('resp_1', 'cancelled'));
    expect(sink.closed).toEqual([user]);
  });

  it('a function call goes to its response\'s turn, else the current one; without a call_id it is no call', () => {
    const { server, client, tracker, sink } = responding();
    const user = tracker.current!;
    // An out-of-band response runs beside resp_1 in a turn of its own.
    server(ev.responseCreated('resp_oob', { conversation_id: null }));
    const oob = tracker.openTurns.find((t) => t !== user)!;
    server(ev.functionArgsDone('resp_oob', 'call_oob', 'f'));
    server({ type: 'response.function_call_arguments.done', event_id: 'e', item_id: 'i', output_index: 0, name: 'f', arguments: '{}' });
    expect(oob.tools.map((t) => [t.callId, t.responseId])).toEqual([['call_oob', 'resp_oob']]);
    expect(user.tools).toEqual([]);
    // Two responses run and the event names none: the current turn's, with no response.
    server({ type: 'response.function_call_arguments.done', event_id: 'e', item_id: 'i', output_index: 0, call_id: 'call_cur', name: 'g', arguments: '{}' });
    expect(user.tools.map((t) => [t.callId, t.name, t.responseId])).toEqual([['call_cur', 'g', null]]);
    expect(sink.closed).toEqual([]);
    client({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_oob', output: '{}' } });
    expect(oob.tools[0]!.end).not.toBeNull();
  });

  it('an id of exactly 256 characters is still an id (early reports included)', () => {
    const { server, sink, report } = responding();
    const id = `resp_${'z'.repeat(251)}`;
    report({ kind: 'output_audio_started', responseId: id, at: 3 });
    report({ kind: 'usage', responseId: id, model: 'gpt-realtime', costMicros: 7, inputTokens: 1, outputTokens: 1, cachedTokens: 0, source: 'response' });
    server(ev.responseCreated(id, { conversation_id: null }));
    server(ev.responseDone(id));
    expect(sink.responses.map((r) => [r.id, r.costMicros, r.firstAudioAt])).toEqual([[id, 7, 3]]);
  });

  it('keeps a response\'s first four distinct output_modalities, cut', () => {
    const { server, sink } = responding();
    const huge = ['audio', 'audio', 7, 'text', 'm'.repeat(10_000), ...Array.from({ length: 100_000 }, (_, i) => `x${i}`)];
    server(ev.responseCreated('resp_9', { conversation_id: null, output_modalities: huge }));
    server(ev.responseDone('resp_9'));
    const r = sink.responses.find((x) => x.id === 'resp_9')!;
    expect(r.outputModalities.slice(0, 2)).toEqual(['audio', 'text']);
    expect(r.outputModalities).toHaveLength(4);
    expect(r.outputModalities[2]!.length).toBeLessThan(300);
    expect(r.outputModalities[3]).toBe('x0');
    // Not an array: none.
    server(ev.responseCreated('resp_10', { conversation_id: null, output_modalities: 'audio' }));
    server(ev.responseDone('resp_10'));
    expect(sink.responses.find((x) => x.id === 'resp_10')!.outputModalities).toEqual([]);
  });
});
