/**
 * Adversary review (metering): a client `input_audio_buffer.commit` followed at once by a
 * `response.create` (one frame batch, manual turns).
 *
 * The upstream commits the buffer before it reads the create, so the response reads the committed
 * audio. Metering counts committed audio only when the upstream's `input_audio_buffer.committed`
 * comes back (ConversationEstimate.onCommitted), which is after the create was reserved: the
 * create's worst case leaves out the whole input buffer (up to the model's context window of audio
 * at the dearest input rate). The reservation is then below the response's cost, and the guarantee
 * (`admission: worst_case`: never over the cap) does not hold.
 */
import { describe, expect, it } from 'vitest';
import { FakeSession } from '../support/fake-session.js';
import { appendFrame, client, created, done, server, session, setup } from './filter-harness.js';

/** 200 s of G.711 (8 bytes/ms, the density metering assumes until the format is known): 2,000 audio tokens at 10/s. */
const SECONDS = 200;
const CHUNK_MS = 1000;

describe('adversary: commit then create in one batch', () => {
  it('admission worst_case: the create is reserved with the buffer it makes the response read, so spend never passes the cap', () => {
    const s = setup({ admission: 'worst_case' });
    const { ctx, f } = session(s, { dailyUsd: '0.05' }, 'gpt-realtime');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    // 200 one-second appends (base64 of 8,000 bytes each), as the relay forwards them.
    const chunk = Buffer.alloc(8 * CHUNK_MS).toString('base64');
    for (let i = 0; i < SECONDS; i++) {
      (ctx as FakeSession).fromClient(f, appendFrame(chunk));
    }
    expect(client(f, { type: 'input_audio_buffer.commit' }).kind).toBe('continue');
    // A one-token text answer: its own worst case is ~$0.0001, but it reads 2,000 audio tokens ($0.064 at 32 µ$).
    const v = client(f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    if (v.kind !== 'reject') {
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1', previous_item_id: null });
      server(f, created('resp_1', { max_output_tokens: 1, output_modalities: ['text'] }));
      server(f, done('resp_1', {
        total_tokens: SECONDS * 10 + 8 + 1,
        input_tokens: SECONDS * 10 + 8,
        output_tokens: 1,
        input_token_details: { text_tokens: 8, audio_tokens: SECONDS * 10, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
        output_token_details: { text_tokens: 1, audio_tokens: 0 },
      }, 'completed', { max_output_tokens: 1, output_modalities: ['text'] }));
    }
    const spent = s.records.reduce((a, r) => a + r.costNanos, 0);
    // Today: admitted on a ~$0.00005 reservation, billed $0.064048 against the $0.05 cap.
    expect(spent).toBeLessThanOrEqual(50_000_000);
  });

  it('admission worst_case, server VAD: a create sent while the buffer is uncommitted is reserved with it (the upstream may commit it first)', () => {
    const s = setup({ admission: 'worst_case' });
    const { ctx, f } = session(s, { dailyUsd: '0.05' }, 'gpt-realtime');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    const chunk = Buffer.alloc(8 * CHUNK_MS).toString('base64');
    for (let i = 0; i < SECONDS; i++) (ctx as FakeSession).fromClient(f, appendFrame(chunk));
    // No client commit: turn detection commits the buffer upstream before it reads the create.
    const v = client(f, { type: 'response.create', event_id: 'c1', response: { output_modalities: ['text'], max_output_tokens: 1 } });
    if (v.kind !== 'reject') {
      server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1', previous_item_id: null });
      server(f, created('resp_1', { max_output_tokens: 1, output_modalities: ['text'] }));
      server(f, done('resp_1', {
        total_tokens: SECONDS * 10 + 8 + 1,
        input_tokens: SECONDS * 10 + 8,
        output_tokens: 1,
        input_token_details: { text_tokens: 8, audio_tokens: SECONDS * 10, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
        output_token_details: { text_tokens: 1, audio_tokens: 0 },
      }, 'completed', { max_output_tokens: 1, output_modalities: ['text'] }));
    }
    const spent = s.records.reduce((a, r) => a + r.costNanos, 0);
    expect(spent).toBeLessThanOrEqual(50_000_000);
  });

  it('admission remaining: out-of-band creates (reading the conversation) behind the commit spend at most the cap plus one worst case', () => {
    const s = setup();
    const { ctx, f } = session(s, { dailyUsd: '0.05' }, 'gpt-realtime');
    server(f, { type: 'session.created', session: { type: 'realtime', model: 'gpt-realtime', max_output_tokens: 'inf' } });
    const chunk = Buffer.alloc(8 * CHUNK_MS).toString('base64');
    for (let i = 0; i < SECONDS; i++) (ctx as FakeSession).fromClient(f, appendFrame(chunk));
    client(f, { type: 'input_audio_buffer.commit' });
    // One batch: 20 parallel out-of-band answers, each reading the default conversation (the committed audio).
    const admitted: number[] = [];
    for (let i = 0; i < 20; i++) {
      const v = client(f, { type: 'response.create', event_id: `c${i}`, response: { conversation: 'none', metadata: { k: String(i) }, output_modalities: ['text'], max_output_tokens: 1 } });
      if (v.kind !== 'reject') admitted.push(i);
    }
    server(f, { type: 'input_audio_buffer.committed', item_id: 'item_1', previous_item_id: null });
    const extra = { conversation_id: null, max_output_tokens: 1, output_modalities: ['text'] };
    for (const i of admitted) {
      server(f, created(`resp_${i}`, { ...extra, metadata: { k: String(i) } }));
      server(f, done(`resp_${i}`, {
        total_tokens: SECONDS * 10 + 8 + 1,
        input_tokens: SECONDS * 10 + 8,
        output_tokens: 1,
        input_token_details: { text_tokens: 8, audio_tokens: SECONDS * 10, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
        output_token_details: { text_tokens: 1, audio_tokens: 0 },
      }, 'completed', { ...extra, metadata: { k: String(i) } }));
    }
    const spent = s.records.reduce((a, r) => a + r.costNanos, 0);
    // One such response's worst case, the committed audio counted: 2,016 audio tokens at 32 µ$ + 16 text at 4 µ$ + 1 out at 16 µ$.
    const W = 2016 * 32_000 + 16 * 4_000 + 16_000;
    expect(spent, `${admitted.length} of 20 admitted`).toBeLessThanOrEqual(50_000_000 + W);
  });
});
