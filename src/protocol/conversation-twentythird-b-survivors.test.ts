/**
 * Mutation survivor of the twenty-third session's conversation lines (test/mutation/open-survivors.md,
 * "twenty-third (b)"): a response the view learns of from its response.done alone.
 */
import { describe, expect, it } from 'vitest';
import { Frame } from '../pipeline/frame.js';
import { Conversation } from './conversation.js';

const wire = (event: { type: string; [k: string]: unknown }) => new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));

describe('a response learned from its response.done alone', () => {
  it('is the server\'s own (origin vad, no create), done, with its place among the responses learned', () => {
    const c = new Conversation();
    c.observeServer(wire({ type: 'response.created', response: { id: 'r1', status: 'in_progress', output: [] } }));
    c.observeServer(wire({ type: 'response.done', response: { id: 'r_done_only', status: 'completed', output: [], usage: { input_tokens: 1, output_tokens: 1 } } }));
    expect(c.response('r_done_only')).toMatchObject({ origin: 'vad', createEventId: null, state: 'completed', learned: 2 });
  });

  // A second test, beside MAX_RESPONSES running ones, went with 3bfbac0: more than MAX_RUNNING_RESPONSES
  // running is the upstream's fault now (the view learns nothing more), so that state cannot arise.
});
