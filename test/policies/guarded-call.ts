import { LoggedSession } from '../support/fake-session.js';
import type { Verdict } from '../../src/pipeline/filter.js';
import { GuardrailFilter } from '../../src/policies/guardrails.js';
import { entryOf, policyFrom, wire } from './support.js';

/**
 * The guardrail filter on a call, driven directly as the sideband's relay would: every server event
 * the call's upstream sends, and what the filter sends upstream (`session.upstream`). Used by the
 * browser-item redaction's mutation tests (src/policies/guardrails-twentieth/-twentyfirst-survivors).
 */

type Json = Record<string, unknown>;

/** An input `redact` rule on email addresses (as `pii-safe`'s `pii-in-text`). */
export const EMAIL_REDACT = `
guardrails:
  rules:
    - { id: pii-in-text, sources: [input, tool_output], match: { pii: [email] }, action: redact }
`;

export async function guardedCall(yaml = EMAIL_REDACT) {
  const session = new LoggedSession();
  Object.assign(session, { callId: 'rtc_1' });
  const filter = new GuardrailFilter(session, entryOf(await policyFrom(yaml)));
  const server = (e: Json & { type: string }) => session.fromServer(filter, wire(e)) as Verdict;
  const sent = (type: string) => session.upstream.filter((e) => e.type === type);
  /** The browser writes an item (the upstream's echo as the sideband reads it). */
  const added = (item: Json, previous: string | null = null) => server({ type: 'conversation.item.added', event_id: `ev_${String(item['id'])}`, previous_item_id: previous, item });
  const deleted = (id: string) => server({ type: 'conversation.item.deleted', event_id: `ev_del_${id}`, item_id: id });
  const response = (id: string, status: string, conversation: string | null) => ({ id, object: 'realtime.response', status, conversation_id: conversation, output: [], output_modalities: ['audio'], max_output_tokens: 'inf', usage: null });
  const created = (id: string, conversation: string | null = 'conv_1') => server({ type: 'response.created', event_id: `ev_c_${id}`, response: response(id, 'in_progress', conversation) });
  const done = (id: string, status: 'completed' | 'cancelled', conversation: string | null = 'conv_1') => server({ type: 'response.done', event_id: `ev_d_${id}`, response: response(id, status, conversation) });
  /** The n-th copy the filter created (its create, sent upstream). */
  const copyOf = (n = 0) => sent('conversation.item.create')[n]?.['item'] as Json | undefined;
  /** The upstream echoes the n-th copy (at its place). */
  const copyShows = (n = 0, previous: string | null = null) => added(copyOf(n)!, previous);
  return { session, filter, server, sent, added, deleted, created, done, copyOf, copyShows };
}

/** A message item with one text part. */
export const msg = (id: string, text: string, role = 'user', part = 'input_text') => ({ id, type: 'message', role, content: [{ type: part, text }] });
