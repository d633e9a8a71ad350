/**
 * Red team 18t (metering): a session.update naming the input format in BOTH protocols' members.
 *
 * src/protocol/audio-format.ts reads GA's `audio.input.format` where given and the preview
 * protocol's `input_audio_format` only without it. A preview upstream (Azure's
 * `upstream.azure.apiVersion`) reads the beta member and leaves GA's aside, as it does for
 * `max_output_tokens` (test/metering/redteam-16-preview-both-limits.test.ts, where "both members
 * named: the larger counts" was the fix). The adversary names both: GA's `audio/pcm` (48 bytes a
 * ms), beta's `g711_ulaw` (8), and sends 240 s of G.711 right behind the update: the update's
 * format is guessed as PCM16, so those bytes are sized as 40 s, and the upstream's
 * `session.updated` (g711_ulaw) comes after they were counted. The commit's transcription is
 * reserved at a sixth of what is transcribed. Guarantee broken: `admission: worst_case` reserves
 * a commit's transcription at its worst case (src/metering/README.md).
 */
import { describe, expect, it } from 'vitest';
import { client, reservedNow, server, session, setup } from './filter-harness.js';

const thirtySecondsOfG711 = { type: 'input_audio_buffer.append', audio: Buffer.alloc(30 * 8_000, 0x55).toString('base64') };
const PREVIEW_SESSION = { object: 'realtime.session', model: 'gpt-realtime', modalities: ['text'], input_audio_transcription: { model: 'gpt-4o-transcribe' }, turn_detection: null };

/** What the commit of 240 s of G.711 reserves, the audio appended before (`early`) or after the update's answer. */
function reservedForCommit(early: boolean): number {
  const s = setup();
  const { f } = session(s, { dailyUsd: '100' });
  server(f, { type: 'session.created', session: { ...PREVIEW_SESSION, input_audio_format: 'pcm16' } });
  client(f, { type: 'session.update', session: { audio: { input: { format: { type: 'audio/pcm', rate: 24_000 } } }, input_audio_format: 'g711_ulaw' } });
  const append = () => {
    for (let i = 0; i < 8; i++) expect(client(f, thirtySecondsOfG711).kind).toBe('continue');
  };
  if (early) append();
  // The preview upstream applied the beta member.
  server(f, { type: 'session.updated', session: { ...PREVIEW_SESSION, input_audio_format: 'g711_ulaw' } });
  if (!early) append();
  expect(client(f, { type: 'input_audio_buffer.commit', event_id: 'c_commit' }).kind).toBe('continue');
  return reservedNow(s).tokens;
}

describe('red team 18t: GA pcm16 beside beta g711_ulaw in one update', () => {
  it('240 s appended before the update is answered are reserved as 240 s, as when appended after', () => {
    const after = reservedForCommit(false);
    expect(after).toBeGreaterThan(0);
    // Old code: 401 tokens against 2,401 (the GA member read, the audio sized at 48 bytes a ms).
    expect(reservedForCommit(true)).toBeGreaterThanOrEqual(after);
  });
});
