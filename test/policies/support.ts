import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Frame } from '../../src/pipeline/frame.js';
import { compilePolicy, parsePolicyYaml, type CompiledPolicy, type ModuleLoader } from '../../src/policies/compile.js';
import type { Verdict } from '../../src/pipeline/filter.js';
import type { GuardrailDefinition } from '../../src/policies/api.js';
import { GuardrailFilter } from '../../src/policies/guardrails.js';
import type { PolicyEntry } from '../../src/policies/registry.js';
import { LoggedSession } from '../support/fake-session.js';
import { tempDir } from '../support/temp-dir.js';

export const POLICIES_DIR = fileURLToPath(new URL('../../policies/', import.meta.url));

/** Compiles a policy from YAML text as if it were `policies/<name>.yaml`. */
export async function policyFrom(yaml: string, name = 'test', loadModule?: ModuleLoader): Promise<CompiledPolicy> {
  const file = join(POLICIES_DIR, `${name}.yaml`);
  return compilePolicy(parsePolicyYaml(yaml, file), { name, file, root: POLICIES_DIR, text: yaml, ...(loadModule ? { loadModule } : {}) });
}

export function entryOf(policy: CompiledPolicy): PolicyEntry {
  return { name: policy.name, file: policy.file, current: policy, loadedAt: 0, lastError: null };
}

/** A frame as the relay builds it from the wire: unparsed bytes. */
export function wire(event: { type: string; [k: string]: unknown }): Frame {
  return new Frame(event.type, Buffer.from(JSON.stringify(event), 'utf8'));
}

let seq = 0;
export const outDelta = (responseId: string, delta: string, itemId = 'item_out') =>
  wire({ type: 'response.output_audio_transcript.delta', event_id: `ev_${++seq}`, response_id: responseId, item_id: itemId, output_index: 0, content_index: 0, delta });
export const audioDelta = (responseId: string, itemId = 'item_out') =>
  wire({ type: 'response.output_audio.delta', event_id: `ev_${++seq}`, response_id: responseId, item_id: itemId, output_index: 0, content_index: 0, delta: 'AAAA' });
export const responseCreated = (id: string) => wire({ type: 'response.created', event_id: `ev_${++seq}`, response: { id, object: 'realtime.response', status: 'in_progress', output: [], conversation_id: 'conv_1', usage: null } });
export const userText = (text: string, eventId = 'evt_client_1') =>
  wire({ type: 'conversation.item.create', event_id: eventId, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });

/** A temporary policies directory with these files (a permissive `default.yaml` is added unless given). */
export function policyDir(files: Record<string, string>): string {
  const dir = tempDir('rp-policies-');
  const all = { 'default.yaml': 'description: permissive\n', ...files };
  for (const [name, text] of Object.entries(all)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** A policy holding spoken turns for their transcript (one input block rule, transcription locked on). */
export const heldPolicy = (timeoutMs: number): string => `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
  holdSpokenInput: { enabled: true, timeoutMs: ${timeoutMs} }
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe }
`;

/** A guardrail filter on a policy (and one custom guardrail), driven as the relay would (LoggedSession), without sockets. */
export async function guardrailsWith(yaml: string, guardrail?: GuardrailDefinition) {
  const session = new LoggedSession();
  const entry = entryOf(await policyFrom(yaml, 'test', guardrail ? async () => ({ default: guardrail }) : undefined));
  const filter = new GuardrailFilter(session, entry);
  const server = (f: Frame) => session.fromServer(filter, f) as Verdict;
  const client = (f: Frame) => session.fromClient(filter, f) as Verdict;
  return { session, entry, filter, server, client };
}

/** A policy of one input `block` rule on "ignore previous instructions", content it cannot read refused. */
export const INJECTION_POLICY = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
  unknownContentEvents: block
`;

/** A user message item with one input_text part per text. */
export const userMessage = (...texts: string[]): Record<string, unknown> => ({ type: 'message', role: 'user', content: texts.map((text) => ({ type: 'input_text', text })) });

/** The error code a verdict refuses or closes with (null: it lets the frame go on). */
export const verdictCode = (v: Verdict): string | null => (v.kind === 'reject' || v.kind === 'close' ? v.error.code : null);

/** A truncation budget for the tracker's unit tests: half the budget as the prune target, nothing pinned by position. */
export const trackerBudget = (maxTokens: number, extra: Partial<{ targetRatio: number; keepFirst: number; keepSystem: boolean; keepLast: number }> = {}) => ({
  maxTokens,
  targetRatio: 0.5,
  keepFirst: 0,
  keepSystem: true,
  keepLast: 0,
  ...extra,
});

/** A completed text message item of `chars` characters (chars / 4 tokens to the tracker). */
export const textItem = (id: string, role: string, chars: number) => ({ id, type: 'message', role, status: 'completed', content: [{ type: role === 'assistant' ? 'output_text' : 'input_text', text: 'x'.repeat(chars) }] });

/**
 * The events OpenAI sends as a session's MCP server lists its tools (a scripted upstream's part):
 * the `mcp_list_tools` item added empty, the listing's progress, and the item done with `tools`.
 */
export function mcpToolListEvents(listId: string, tools: unknown, eventId: () => string): Record<string, unknown>[] {
  const empty = { id: listId, type: 'mcp_list_tools', server_label: 'kb', tools: [] };
  return [
    { type: 'conversation.item.added', event_id: eventId(), previous_item_id: null, item: empty },
    { type: 'mcp_list_tools.in_progress', event_id: eventId(), item_id: listId },
    { type: 'mcp_list_tools.completed', event_id: eventId(), item_id: listId },
    { type: 'conversation.item.done', event_id: eventId(), previous_item_id: null, item: { ...empty, tools } },
  ];
}
