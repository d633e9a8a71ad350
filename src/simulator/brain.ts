import type { ConversationItem, RealtimeResponseUsage } from 'openai/resources/realtime/realtime';
import type { RealtimeSessionState } from './session.js';
import type { Wire } from './wire.js';

/** The effective parameters of one response (session defaults merged with `response.create`). */
export interface ResponseParams {
  readonly conversation: 'auto' | 'none';
  readonly instructions: string;
  readonly output_modalities: ReadonlyArray<'text' | 'audio'>;
  readonly max_output_tokens: number | 'inf';
  readonly tools: readonly unknown[];
  readonly tool_choice: unknown;
  readonly voice: string;
  readonly metadata: Readonly<Record<string, string>> | null;
  /** Whether the response was created by the server (VAD) rather than `response.create`. */
  readonly trigger: 'client' | 'vad' | 'idle_timeout';
}

export interface BrainContext {
  /** The response's input: the conversation (or the custom `response.input`), oldest first. */
  readonly items: readonly Wire<ConversationItem>[];
  readonly session: Readonly<RealtimeSessionState>;
  readonly response: ResponseParams;
  readonly responseId: string;
  /** Duration of the audio in an item (0 for items without audio). */
  audioMs(itemId: string): number;
}

export type BrainReply =
  | { readonly text: string; readonly usage?: RealtimeResponseUsage }
  | { readonly functionCall: { readonly name: string; readonly arguments: string; readonly callId?: string }; readonly usage?: RealtimeResponseUsage }
  /** A call of a tool on a session MCP server; the simulated server echoes the arguments as its output. */
  | { readonly mcpCall: { readonly serverLabel: string; readonly name: string; readonly arguments: string }; readonly usage?: RealtimeResponseUsage }
  /** The response ends `failed` with this error in `status_details`. */
  | { readonly fail: { readonly type?: string; readonly code: string; readonly message: string } };

/** Decides the content of each response. Must be synchronous and should be deterministic. */
export type Brain = (ctx: BrainContext) => BrainReply;

function userText(item: Wire<ConversationItem>): string | null {
  if (item.type !== 'message' || item.role !== 'user') return null;
  let text: string | null = null;
  for (const part of item.content) {
    if (part.type === 'input_text' && typeof part.text === 'string') text = (text ?? '') + part.text;
  }
  return text;
}

/**
 * The default brain, so tests can steer content through the ordinary protocol:
 * - latest item a `function_call_output` → "The tool returned <output>."
 * - latest user text `say:<text>` → speaks exactly `<text>`
 * - latest user text `call:NAME {json}` → calls function NAME with that JSON (default `{}`)
 * - latest user text `mcp:LABEL TOOL {json}` → calls TOOL on the session's MCP server LABEL
 * - latest user message is audio → "I heard you speak for N.N seconds."
 * - anything else → "Hello from the realtime simulator."
 */
export const defaultBrain: Brain = (ctx) => {
  const last = ctx.items[ctx.items.length - 1];
  if (last?.type === 'function_call_output') return { text: `The tool returned ${last.output}.` };
  for (let i = ctx.items.length - 1; i >= 0; i--) {
    const item = ctx.items[i]!;
    if (item.type !== 'message' || item.role !== 'user') continue;
    const text = userText(item);
    if (text !== null) {
      const trimmed = text.trimStart();
      if (trimmed.startsWith('say:')) return { text: trimmed.slice(4).replace(/^ /, '') };
      if (trimmed.startsWith('mcp:')) {
        const [serverLabel = '', name = '', ...args] = trimmed.slice(4).trim().split(/\s+/);
        return { mcpCall: { serverLabel, name, arguments: args.join(' ') || '{}' } };
      }
      if (trimmed.startsWith('call:')) {
        const rest = trimmed.slice(5).trim();
        const space = rest.search(/\s/);
        const name = space < 0 ? rest : rest.slice(0, space);
        const args = space < 0 ? '{}' : rest.slice(space).trim() || '{}';
        return { functionCall: { name, arguments: args } };
      }
      return { text: 'Hello from the realtime simulator.' };
    }
    const ms = item.id ? ctx.audioMs(item.id) : 0;
    if (ms > 0) return { text: `I heard you speak for ${(ms / 1000).toFixed(1)} seconds.` };
    break;
  }
  return { text: 'Hello from the realtime simulator.' };
};
