/**
 * Red team (metering, eighteenth pass): input audio appended under one format and committed under
 * another.
 *
 * Metering never parses audio: it sizes the input buffer from the bytes appended since the last
 * commit or clear, at the bytes per millisecond of the input format it knows when it counts them
 * (48 for PCM16, 8 for G.711; the denser while an update asking for it is in flight). An adversary
 * appends 240 s of G.711 (1.92 MB: 240 s at 8 bytes/ms), switches the session to PCM16, waits for the
 * `session.updated`, then commits and creates a one-token text answer: the whole buffer was sized at
 * 48 bytes/ms, 40 s, a sixth of the audio. An upstream that decoded each append in the format in force
 * when it came (server VAD has to, to hear speech as it arrives) bills the 240 s it holds. The
 * reference does not say what OpenAI does with a buffer across a format change; the simulator starts
 * a new buffer (src/simulator/connection.ts, #onSessionUpdate), so this is the filter harness playing
 * an upstream that keeps it. Guarantee broken: `admission: worst_case` never goes over the cap.
 */
import { describe, expect, it } from 'vitest';
import { client, created, done, server, session, setup } from './filter-harness.js';

const G711_SECONDS = 240;
/** 30 s of G.711 per append (240,000 bytes; the API takes up to 15 MiB an event). */
const thirtySecondsOfG711 = { type: 'input_audio_buffer.append', audio: Buffer.alloc(30 * 8_000, 0x55).toString('base64') };
const format = (type: string) => ({ audio: { input: { format: type === 'audio/pcm' ? { type, rate: 24000 } : { type }, turn_detection: null, transcription: null } } });

describe('red team 18: a buffer appended as G.711 and committed as PCM16', () => {
  it('admission worst_case, $0.05 cap: 240 s of G.711 committed after a switch to PCM16 is reserved as 240 s', () => {
    const s = setup({ admission: 'worst_case' });
    const { f } = session(s, { dailyUsd: '0.05' });
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'], ...format('audio/pcmu') } });
    for (let i = 0; i < G711_SECONDS / 30; i++) expect(client(f, thirtySecondsOfG711).kind).toBe('continue');
    client(f, { type: 'session.update', session: { type: 'realtime', ...format('audio/pcm') } });
    server(f, { type: 'session.updated', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf', output_modalities: ['text'], ...format('audio/pcm') } });
    client(f, { type: 'input_audio_buffer.commit' });
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_turn', previous_item_id: null });
    const create = client(f, { type: 'response.create', event_id: 'c_answer', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    if (create.kind !== 'reject') {
      server(f, created('resp_answer', { max_output_tokens: 1, output_modalities: ['text'] }));
      // What such an upstream bills: 240 s of user audio at 10 tokens a second, one text token out.
      const audio = G711_SECONDS * 10;
      server(f, done('resp_answer', { total_tokens: audio + 1, input_tokens: audio, output_tokens: 1, input_token_details: { text_tokens: 0, audio_tokens: audio, image_tokens: 0, cached_tokens: 0 }, output_token_details: { text_tokens: 1, audio_tokens: 0 } }, 'completed', { output_modalities: ['text'] }));
    }
    const spentNanos = s.records.reduce((a, r) => a + r.costNanos, 0);
    // Old code: admitted (reserved as 40 s, $0.013) and $0.077 spent against the $0.05 cap.
    expect(spentNanos).toBeLessThanOrEqual(50_000_000);
    expect(create.kind).toBe('reject');
  });
});
