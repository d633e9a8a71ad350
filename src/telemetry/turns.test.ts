import { describe, expect, it } from 'vitest';
import { ev, forwardClient, ManualTime, relayed, usage, wire } from '../../test/telemetry/support/frames.js';
import { AudioMeter } from '../pipeline/audio-meter.js';
import { Frame } from '../pipeline/frame.js';
import { Conversation } from '../protocol/conversation.js';
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
    report({ kind: 'guardrail', policyId: 'p', policyVersion: '1', ruleId: 'r', action: 'cancel_response', source: 'output', responseId: 'resp_1', decisionMs: 1 });
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
    // The upstream names the id the create left with (the proxy's: Conversation.stampCreate).
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

  it('keeps a bounded number of running response records: past the bound the oldest is given up and counted once', () => {
    const { sink, server } = setup();
    server(ev.sessionCreated());
    for (let i = 0; i < 260; i++) server(ev.responseCreated(`resp_${i}`, { conversation_id: null }));
    expect(sink.responses.map((r) => [r.id, r.doneAt])).toEqual([0, 1, 2, 3].map((i) => [`resp_${i}`, null]));
    // Its late response.done neither counts it again nor fails.
    server(ev.responseDone('resp_0'));
    server(ev.responseDone('resp_259'));
    expect(sink.responses.map((r) => r.id)).toEqual(['resp_0', 'resp_1', 'resp_2', 'resp_3', 'resp_259']);
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
