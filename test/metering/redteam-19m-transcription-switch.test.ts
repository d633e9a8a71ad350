/**
 * Red team (metering, 19m): a commit right behind a transcription model switch.
 *
 * A transcribed commit under caps reserves its transcription's estimate before it leaves, and the
 * estimate and the charge share one price rule (#priceOf) "so a reservation is never priced below its
 * charge". But the model a commit is reserved at was the one the upstream last reported whenever one
 * was reported: an update in flight switching it counted only when the session did not transcribe
 * yet. An adversary transcribing with gpt-4o-mini-transcribe sends `session.update` switching to
 * gpt-4o-transcribe and a commit in the same write: the update applies upstream before the commit,
 * the transcription runs (and is charged) at gpt-4o-transcribe, twice what its commit reserved.
 * Broken guarantee: a reservation is never below its charge (spend bounded by the caps with
 * `admission: worst_case`: many such commits in flight overshoot by half of each).
 */
import { describe, expect, it } from 'vitest';
import { client, reservedNow, server, session, setup } from './filter-harness.js';

/** One second of 24 kHz PCM. */
const SECOND = { type: 'input_audio_buffer.append', audio: Buffer.alloc(48_000).toString('base64') };

const transcribing = (model: string) => ({
  type: 'session.updated',
  session: { type: 'realtime', model: 'gpt-realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, transcription: { model }, turn_detection: null } } },
});
const switchTo = (model: string) => ({
  type: 'session.update',
  session: { type: 'realtime', audio: { input: { transcription: { model } } } },
});
const committed = (itemId: string) => ({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: null });

/** What a commit of one second reserves in a session that transcribes with `model` (nothing in flight). */
function reservedAt(model: string): number {
  const s = setup();
  const { f } = session(s, { dailyUsd: '10' });
  server(f, transcribing(model));
  client(f, SECOND);
  client(f, { type: 'input_audio_buffer.commit', event_id: 'k1' });
  return reservedNow(s).nanos;
}

describe('red team 19m: a commit right behind a transcription model switch', () => {
  it('mini → gpt-4o-transcribe with the update in flight: the commit reserves at least what the close charges it', () => {
    const dear = reservedAt('gpt-4o-transcribe');
    expect(dear).toBeGreaterThan(reservedAt('gpt-4o-mini-transcribe'));

    const s = setup();
    const { f } = session(s, { dailyUsd: '10' });
    server(f, transcribing('gpt-4o-mini-transcribe'));
    // The switch and the commit in one write: the update is still unanswered when the commit leaves.
    client(f, switchTo('gpt-4o-transcribe'));
    client(f, SECOND);
    expect(client(f, { type: 'input_audio_buffer.commit', event_id: 'k1' })).toEqual({ kind: 'continue' });
    const held = reservedNow(s).nanos;
    // The upstream applies the update before the commit: the item is transcribed at gpt-4o-transcribe.
    server(f, transcribing('gpt-4o-transcribe'));
    server(f, committed('item_a'));
    // Its completed event never comes (the client leaves): the close charges it by its audio length.
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    const charged = s.records.reduce((a, r) => a + r.costNanos, 0);
    expect(charged).toBe(dear);
    // Measured before the fix: held = mini's estimate, half the charge.
    expect(held).toBeGreaterThanOrEqual(charged);
  });

  it('gpt-4o-transcribe → mini refused upstream: the commit reserved the dearer and the charge stays gpt-4o-transcribe', () => {
    const s = setup();
    const { f } = session(s, { dailyUsd: '10' });
    server(f, transcribing('gpt-4o-transcribe'));
    client(f, switchTo('gpt-4o-mini-transcribe'));
    client(f, SECOND);
    client(f, { type: 'input_audio_buffer.commit', event_id: 'k1' });
    const held = reservedNow(s).nanos;
    server(f, committed('item_a'));
    f.onClose!({ initiator: 'client', code: 1000, reason: '' });
    const charged = s.records.reduce((a, r) => a + r.costNanos, 0);
    expect(held).toBeGreaterThanOrEqual(charged);
  });
});
