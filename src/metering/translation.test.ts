import { describe, expect, it } from 'vitest';
import { AsyncLedger, client, clientAsync, reservedNow, session, setup } from '../../test/metering/filter-harness.js';
import { DuplicateMemberFrameError, Frame } from '../pipeline/frame.js';
import { TRANSLATION_SESSION_KEY } from '../protocol/events.js';
import { appendedAudio, TRANSLATION_BLOCK_MS } from './translation.js';

/*
 * The translation session's metering without sockets (the socket path, with the SDK's client:
 * test/relay/translation-sessions.test.ts): counting, blocks, and what a close leaves.
 */

const TRANSLATION = { [TRANSLATION_SESSION_KEY]: '1' };
const MODEL = 'gpt-realtime-translate';
const append = (ms: number, eventId = 'evt_a') => ({ type: 'session.input_audio_buffer.append', event_id: eventId, audio: Buffer.alloc(ms * 48).toString('base64') });
const closeInfo = { initiator: 'client' as const, code: 1006, reason: '' };

describe('translation metering', () => {
  it('counts the bytes the base64 carries (padding excluded), rounded up to the millisecond', () => {
    const s = setup();
    const { f } = session(s, { dailyUsd: '5' }, MODEL, TRANSLATION);
    // 49 bytes: 1.02 ms → billed as 2 ms; "AA==" is one byte, not three.
    expect(client(f, { type: 'session.input_audio_buffer.append', audio: Buffer.alloc(49).toString('base64') }).kind).toBe('continue');
    f.onClose!(closeInfo);
    expect(s.records.map((r) => [r.seconds, r.costNanos, r.settledBy, r.source])).toEqual([[0.002, 1133, 'translation_audio', 'transcription']]);
  });

  it('an append is counted from its bytes, never parsed; one the sniffer cannot read is parsed and counted the same', () => {
    const s = setup();
    const { f } = session(s, null, MODEL, TRANSLATION);
    const plain = new Frame('session.input_audio_buffer.append', Buffer.from(JSON.stringify({ type: 'session.input_audio_buffer.append', event_id: 'evt_p', audio: Buffer.alloc(4801).toString('base64') })));
    expect(f.onClient!(plain)).toMatchObject({ kind: 'continue' });
    expect(plain.parsed).toBe(false);
    // An escape in the audio: read by the parser, the same 4,801 bytes (base64 "=" padding excluded both ways).
    const escaped = new Frame('session.input_audio_buffer.append', Buffer.from(`{"type":"session.input_audio_buffer.append","audio":"\\u0041${Buffer.alloc(4801).toString('base64').slice(1)}"}`));
    expect(f.onClient!(escaped)).toMatchObject({ kind: 'continue' });
    expect(escaped.parsed).toBe(true);
    f.onClose!(closeInfo);
    // 9,602 bytes of PCM16 at 24 kHz: 200.04 ms, billed as 201.
    expect(s.records.map((r) => r.seconds)).toEqual([0.201]);
  });

  it('an append\'s audio and event_id are read in one sniff, whatever the shape; only what it cannot read is parsed', () => {
    const APPEND = 'session.input_audio_buffer.append';
    const audio = Buffer.alloc(4801).toString('base64');
    const read = (text: string) => {
      const frame = Frame.fromClient(APPEND, Buffer.from(text));
      return { got: appendedAudio(frame), parsed: frame.parsed };
    };
    const sniffed = (text: string, eventId: string | null) => expect(read(text), text.slice(0, 70)).toEqual({ got: { bytes: 4801, eventId }, parsed: false });
    // Audio after the event_id and before it; a nested audio or event_id is not the append's.
    sniffed(`{"type":"${APPEND}","event_id":"evt_1","audio":"${audio}"}`, 'evt_1');
    sniffed(`{"type":"${APPEND}","audio":"${audio}","event_id":"evt_1"}`, 'evt_1');
    sniffed(`{"x":{"audio":"AAAA","event_id":"no"},"audio":"${audio}"}`, null);
    sniffed(`{"audio":"${audio}","x":[{"audio":"AAAA"}],"event_id":"evt_2"}`, 'evt_2');
    // A key spelled with an escape is that key.
    sniffed(`{"\\u0061udio":"${audio}","event_\\u0069d":"evt_3"}`, 'evt_3');
    // No audio string: nothing to bill, whatever else the frame holds.
    expect(read(`{"type":"${APPEND}","x":{"audio":"${audio}"},"event_id":"e"}`)).toEqual({ got: null, parsed: false });
    expect(read(`{"type":"${APPEND}","audio":5,"event_id":"e"}`)).toEqual({ got: null, parsed: false });
    expect(read(`{"type":"${APPEND}","audio":"","event_id":"e"}`)).toEqual({ got: null, parsed: false });
    // An escaped value: parsed, and read the same.
    expect(read(`{"audio":"${audio}","event_id":"evt_\\u0034"}`)).toEqual({ got: { bytes: 4801, eventId: 'evt_4' }, parsed: true });
    // A repeated member, spelled plainly or escaped, before or after the audio: the strict parse refuses the frame.
    for (const text of [
      `{"audio":"${audio}","event_id":"a","audio":"AAAA"}`,
      `{"audio":"AAAA","\\u0061udio":"${audio}"}`,
      `{"event_id":"a","audio":"${audio}","event_id":"b"}`,
    ]) {
      expect(() => read(text), text.slice(0, 70)).toThrow(DuplicateMemberFrameError);
    }
  });

  it('an uncapped session reserves nothing and still settles each minute as it is used up', () => {
    const s = setup();
    const { f } = session(s, null, MODEL, TRANSLATION);
    for (let i = 0; i < 61; i++) expect(client(f, append(1000)).kind).toBe('continue');
    expect(s.records.map((r) => r.seconds)).toEqual([TRANSLATION_BLOCK_MS / 1000]);
    f.onClose!(closeInfo);
    expect(s.records.map((r) => r.seconds)).toEqual([60, 1]);
  });

  it('one frame longer than a block reserves all of it at once', () => {
    const s = setup();
    const { f } = session(s, { dailyUsd: '5' }, MODEL, TRANSLATION);
    expect(client(f, append(90_000)).kind).toBe('continue');
    // 90 s at $0.034/min.
    expect(reservedNow(s).nanos).toBe(51_000_000);
    f.onClose!(closeInfo);
    expect(reservedNow(s).nanos).toBe(0);
    expect(s.records.map((r) => r.seconds)).toEqual([90]);
  });

  it('a reservation answered after the session closed is released, and nothing is billed for the unsent append', async () => {
    let a: AsyncLedger | null = null;
    const s = setup({}, undefined, (l) => (a = new AsyncLedger(l)));
    const { f } = session(s, { dailyUsd: '5' }, MODEL, TRANSLATION);
    const verdict = clientAsync(f, append(200));
    f.onClose!(closeInfo);
    await verdict;
    // The release is itself asynchronous.
    await Promise.resolve();
    await Promise.resolve();
    expect(a!.calls).toContain('release');
    expect(reservedNow(s).nanos).toBe(0);
    expect(s.records).toEqual([]);
  });

  it('the ledger unavailable: the append is refused (budget_unavailable), not counted', async () => {
    let a: AsyncLedger | null = null;
    const s = setup({}, undefined, (l) => (a = new AsyncLedger(l)));
    a!.reserveUnavailable = 'redis down';
    const { f } = session(s, { dailyUsd: '5' }, MODEL, TRANSLATION);
    const v = await clientAsync(f, append(200, 'evt_x'));
    expect(v.kind).toBe('reject');
    expect(v.kind === 'reject' ? [v.error.code, v.error.eventId] : null).toEqual(['budget_unavailable', 'evt_x']);
    f.onClose!(closeInfo);
    expect(s.records).toEqual([]);
  });

  it('events other than the append pass untouched', () => {
    const s = setup();
    const { f } = session(s, { dailyUsd: '5' }, MODEL, TRANSLATION);
    expect(client(f, { type: 'session.update', session: { audio: { output: { language: 'de' } } } }).kind).toBe('continue');
    expect(client(f, { type: 'session.close' }).kind).toBe('continue');
    f.onClose!(closeInfo);
    expect(s.records).toEqual([]);
  });
});
