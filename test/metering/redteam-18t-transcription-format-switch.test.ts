/**
 * Red team 18t (metering): an input format a TRANSCRIPTION session's update asks, before the
 * upstream answers it.
 *
 * In a realtime session a `session.update` asking a denser input format (G.711: 8 bytes a ms where
 * PCM16 takes 48) is guessed at once (#guess → ConversationEstimate.setFormat), so audio appended
 * right behind it is sized at the denser rate even before `session.updated` comes back. #guess
 * returns early for a transcription session (`session.type: 'transcription'`), so there the bytes
 * appended between the update and its answer are sized at PCM16's rate: the adversary (a tenant
 * under a spend cap) sends the switch to `audio/pcmu` and 240 s of G.711 in the
 * same write, then commits: the commit's transcription is reserved as 40 s, a sixth of the 240 s
 * the upstream transcribes (and bills). Guarantee broken: `admission: worst_case` reserves a
 * commit's transcription at its worst case before it leaves (src/metering/README.md).
 */
import { describe, expect, it } from 'vitest';
import { client, reservedNow, server, session, setup } from './filter-harness.js';

const thirtySecondsOfG711 = { type: 'input_audio_buffer.append', audio: Buffer.alloc(30 * 8_000, 0x55).toString('base64') };
const transcription = (format: Record<string, unknown>) => ({ type: 'transcription', audio: { input: { format, transcription: { model: 'gpt-4o-transcribe' }, turn_detection: null } } });
const PCM = { type: 'audio/pcm', rate: 24_000 };
const PCMU = { type: 'audio/pcmu' };

/** What the commit of 240 s of G.711 reserves, the audio appended before (`early`) or after the update's answer. */
function reservedForCommit(early: boolean): number {
  const s = setup();
  const { f } = session(s, { dailyUsd: '100' });
  server(f, { type: 'session.created', session: { model: 'gpt-realtime', ...transcription(PCM) } });
  client(f, { type: 'session.update', session: transcription(PCMU) });
  const append = () => {
    for (let i = 0; i < 8; i++) expect(client(f, thirtySecondsOfG711).kind).toBe('continue');
  };
  if (early) append();
  server(f, { type: 'session.updated', session: { model: 'gpt-realtime', ...transcription(PCMU) } });
  if (!early) append();
  expect(client(f, { type: 'input_audio_buffer.commit', event_id: 'c_commit' }).kind).toBe('continue');
  return reservedNow(s).tokens;
}

describe('red team 18t: a transcription session switched to G.711 with the audio right behind the update', () => {
  it('240 s appended before the update is answered are reserved as 240 s, as when appended after', () => {
    const after = reservedForCommit(false);
    expect(after).toBeGreaterThan(0);
    // Old code: a sixth of it (the 240 s sized at PCM16's 48 bytes a ms: 40 s).
    expect(reservedForCommit(true)).toBeGreaterThanOrEqual(after);
  });

  it("the preview protocol's transcription_session.update to g711_ulaw: the same", () => {
    const reserved = (early: boolean) => {
      const s = setup();
      const { f } = session(s, { dailyUsd: '100' }, 'gpt-realtime', { intent: 'transcription' });
      const beta = (format: string) => ({ input_audio_format: format, input_audio_transcription: { model: 'gpt-4o-transcribe' }, turn_detection: null });
      server(f, { type: 'transcription_session.updated', session: beta('pcm16') });
      client(f, { type: 'transcription_session.update', session: beta('g711_ulaw') });
      const append = () => {
        for (let i = 0; i < 8; i++) client(f, thirtySecondsOfG711);
      };
      if (early) append();
      server(f, { type: 'transcription_session.updated', session: beta('g711_ulaw') });
      if (!early) append();
      expect(client(f, { type: 'input_audio_buffer.commit', event_id: 'c_commit' }).kind).toBe('continue');
      return reservedNow(s).tokens;
    };
    const after = reserved(false);
    expect(after).toBeGreaterThan(0);
    // Old code: a sixth of it.
    expect(reserved(true)).toBeGreaterThanOrEqual(after);
  });
});
