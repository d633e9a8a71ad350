import { afterEach, describe, expect, it } from 'vitest';
import { meteredProxy, previewScriptedUpstream, spend, until } from './support.js';

/*
 * Red team, sixteenth session (preview dialect, money): on the Azure preview protocol
 * (`upstream.azure.apiVersion`) the upstream reads the beta member `modalities` and leaves GA's
 * `output_modalities` aside. A tenant names BOTH in a response.create: GA's `["text"]`, the
 * beta's `["audio", "text"]`. Metering took the response for text only and priced its worst-case
 * output at the text output rate (gpt-realtime: $16/1M) while the upstream answers in audio
 * ($64/1M): a 4,096-token answer reserved $0.066 and cost $0.262. Guarantee broken: under
 * `admission: worst_case` spend never passes the cap (here a $0.10 cap admits a $0.26 response).
 */

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Json = Record<string, unknown>;

const AUDIO_OUT = 4096;

/**
 * A preview upstream that takes beta members and ignores GA's: a create asking audio in `modalities`
 * is answered with its whole output limit in audio tokens.
 */
async function previewUpstream(received: Json[]) {
  const session: Json = { object: 'realtime.session', id: 'sess_pv', model: 'gpt-realtime', modalities: ['audio', 'text'], max_response_output_tokens: 'inf' };
  let responses = 0;
  return previewScriptedUpstream(session, received, (ev, send) => {
    if (ev['type'] !== 'response.create') return;
    const asked = (ev['response'] ?? {}) as Json;
    const modalities = (asked['modalities'] ?? session['modalities']) as string[];
    const id = `resp_${++responses}`;
    const response: Json = { object: 'realtime.response', id, status: 'in_progress', status_details: null, output: [], conversation_id: 'conv_1', modalities, max_response_output_tokens: asked['max_response_output_tokens'] ?? 'inf', metadata: null, usage: null };
    send({ type: 'response.created', response });
    const audio = modalities.includes('audio') ? AUDIO_OUT : 0;
    const usage = {
      total_tokens: 10 + AUDIO_OUT,
      input_tokens: 10,
      output_tokens: AUDIO_OUT,
      input_token_details: { text_tokens: 10, audio_tokens: 0, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } },
      output_token_details: { text_tokens: AUDIO_OUT - audio, audio_tokens: audio },
    };
    send({ type: 'response.done', response: { ...response, status: 'completed', usage } });
  });
}

async function previewProxy(received: Json[]) {
  const up = await previewUpstream(received);
  cleanups.push(() => up.close());
  const endpoint = new URL(up.url).origin.replace(/^ws/, 'http');
  return meteredProxy(cleanups, {
    metering: { admission: 'worst_case' },
    tenants: { acme: { limits: { dailyUsd: '0.10' } } },
    config: { upstream: { provider: 'azure', apiKey: 'azure-key', azure: { endpoint, deployment: 'prod-realtime', model: 'gpt-realtime', apiVersion: '2025-04-01-preview' } } },
  });
}

describe('Azure preview protocol: the output modality a reservation prices is the member the upstream reads', () => {
  it('a create naming output_modalities ["text"] beside modalities ["audio","text"] is priced as audio (worst_case keeps spend under the cap)', async () => {
    const received: Json[] = [];
    const tp = await previewProxy(received);
    const c = await tp.client();
    await c.next('session.created');

    // The honest ask: audio, 4,096 tokens. Its worst case ($0.26) is over the $0.10 cap: refused.
    c.send({ type: 'response.create', event_id: 'c1', response: { modalities: ['audio', 'text'], max_response_output_tokens: AUDIO_OUT } });
    const honest = await c.waitFor((e) => e.type === 'error' || e.type === 'response.done', 5000, 'the honest create answered');
    expect(honest.type).toBe('error');

    // The same ask with GA's member saying text only, which the preview upstream never reads.
    c.send({ type: 'response.create', event_id: 'c2', response: { output_modalities: ['text'], modalities: ['audio', 'text'], max_response_output_tokens: AUDIO_OUT } });
    const sneaky = await c.waitFor((e) => e.type === 'error' || e.type === 'response.done', 5000, 'the second create answered');
    if (sneaky.type === 'response.done') await until(async () => Number((await spend(tp.adminUrl)).day.spentUsd) > 0, 5000, 'the response settled');
    const spent = Number((await spend(tp.adminUrl)).day.spentUsd);
    // Before the fix: admitted (reserved at the text rate), $0.262 spent against the $0.10 cap.
    expect(spent).toBeLessThanOrEqual(0.1);
    expect(sneaky.type).toBe('error');
    c.close();
  });
});
