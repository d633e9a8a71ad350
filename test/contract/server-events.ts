/**
 * Runtime validators for every Realtime server event, held to the `openai` package's types.
 *
 * - One schema per member of `RealtimeServerEvent` (the mapped type below fails to compile when the
 *   SDK adds an event type and no schema exists for it).
 * - Each schema is annotated `z.ZodType<Wire<SdkEvent>>`: whatever it accepts is assignable to the
 *   SDK's type, with `null` where the SDK marks a field optional (the live API sends those nulls).
 *   A field of the wrong type or a missing required field fails to compile.
 * - Objects are strict: a field the SDK does not declare fails validation, so the simulator cannot
 *   invent shape. The exceptions are listed where they occur with the reason (fields the live API
 *   sends that the SDK's types lag behind).
 */
import type {
  ConversationItem,
  RealtimeAudioFormats,
  RealtimeResponse,
  RealtimeResponseUsage,
  RealtimeServerEvent,
  RealtimeSessionCreateRequest,
  RealtimeTranscriptionSessionCreateRequest,
} from 'openai/resources/realtime/realtime';
import { z } from 'zod';
import type { Wire } from '../../src/simulator/wire.js';

type ServerEventType = RealtimeServerEvent['type'];
/** The SDK's event type with `null` allowed where the SDK marks a field optional, as the live API sends it (src/simulator/wire.ts). */
type EventOf<K extends ServerEventType> = Wire<Extract<RealtimeServerEvent, { type: K }>>;

const status = z.enum(['completed', 'incomplete', 'in_progress']);
const int = z.number().int();
const nonNegativeInt = int.nonnegative();

const audioFormat: z.ZodType<Wire<RealtimeAudioFormats>> = z.union([
  z.strictObject({ type: z.literal('audio/pcm').optional(), rate: z.literal(24000).optional() }),
  z.strictObject({ type: z.literal('audio/pcmu').optional() }),
  z.strictObject({ type: z.literal('audio/pcma').optional() }),
]);

const transcription = z.strictObject({
  delay: z.enum(['minimal', 'low', 'medium', 'high', 'xhigh']).optional(),
  keywords: z.array(z.string()).optional(),
  language: z.string().optional(),
  languages: z.array(z.string()).optional(),
  model: z.string().optional(),
  prompt: z.string().optional(),
});

const turnDetection = z.union([
  z.strictObject({
    type: z.literal('server_vad'),
    create_response: z.boolean().optional(),
    idle_timeout_ms: int.nullable().optional(),
    interrupt_response: z.boolean().optional(),
    prefix_padding_ms: nonNegativeInt.optional(),
    silence_duration_ms: nonNegativeInt.optional(),
    threshold: z.number().min(0).max(1).optional(),
  }),
  z.strictObject({
    type: z.literal('semantic_vad'),
    create_response: z.boolean().optional(),
    eagerness: z.enum(['low', 'medium', 'high', 'auto']).optional(),
    interrupt_response: z.boolean().optional(),
  }),
]);

const noiseReduction = z.strictObject({ strength: z.number().optional(), type: z.enum(['near_field', 'far_field']).optional() });

const functionTool = z.strictObject({ type: z.literal('function').optional(), name: z.string().optional(), description: z.string().optional(), parameters: z.unknown().optional() });
const mcpTool = z.strictObject({
  type: z.literal('mcp'),
  server_label: z.string(),
  allowed_callers: z.array(z.enum(['direct', 'programmatic'])).nullable().optional(),
  allowed_tools: z.union([z.array(z.string()), z.strictObject({ read_only: z.boolean().optional(), tool_names: z.array(z.string()).optional() })]).nullable().optional(),
  authorization: z.string().optional(),
  defer_loading: z.boolean().optional(),
  headers: z.record(z.string(), z.string()).nullable().optional(),
  require_approval: z.union([z.enum(['always', 'never']), z.strictObject({ always: z.strictObject({ read_only: z.boolean().optional(), tool_names: z.array(z.string()).optional() }).optional(), never: z.strictObject({ read_only: z.boolean().optional(), tool_names: z.array(z.string()).optional() }).optional() })]).nullable().optional(),
  server_description: z.string().optional(),
  server_url: z.string().optional(),
});
const toolChoice = z.union([
  z.enum(['none', 'auto', 'required']),
  z.strictObject({ type: z.literal('function'), name: z.string() }),
  z.strictObject({ type: z.literal('mcp'), server_label: z.string(), name: z.string().nullable().optional() }),
]);

/**
 * The live API's session objects carry `id`, `object` and `expires_at` (reference §3.5), which the
 * SDK types for `session.created`/`session.updated` (the *request* shape) do not declare.
 */
const liveSessionFields = { id: z.string().startsWith('sess_'), expires_at: nonNegativeInt };

/** A prompt variable: a string, or an input part as the Responses API types it (an image, say). */
const cacheBreakpoint = z.strictObject({ mode: z.literal('explicit'), ttl: z.enum(['30m', '12h']).nullable().optional() }).nullable().optional();
const promptVariable = z.union([
  z.string(),
  z.strictObject({ type: z.literal('input_text'), text: z.string(), prompt_cache_breakpoint: cacheBreakpoint }),
  z.strictObject({ type: z.literal('input_image'), detail: z.enum(['low', 'high', 'auto', 'original']), file_id: z.string().nullable().optional(), image_url: z.string().nullable().optional(), prompt_cache_breakpoint: cacheBreakpoint }),
  z.strictObject({ type: z.literal('input_file'), detail: z.enum(['auto', 'low', 'high']).nullable().optional(), file_data: z.string().nullable().optional(), file_id: z.string().nullable().optional(), file_url: z.string().nullable().optional(), filename: z.string().nullable().optional(), prompt_cache_breakpoint: cacheBreakpoint }),
]);

const realtimeSession: z.ZodType<Wire<RealtimeSessionCreateRequest>> = z.strictObject({
  ...liveSessionFields,
  object: z.literal('realtime.session'),
  type: z.literal('realtime'),
  audio: z
    .strictObject({
      input: z.strictObject({ format: audioFormat.optional(), noise_reduction: noiseReduction.nullable().optional(), transcription: transcription.nullable().optional(), turn_detection: turnDetection.nullable().optional() }).optional(),
      output: z.strictObject({ format: audioFormat.optional(), speed: z.number().min(0.25).max(1.5).optional(), voice: z.union([z.string(), z.strictObject({ id: z.string() })]).optional() }).optional(),
    })
    .optional(),
  include: z.array(z.literal('item.input_audio_transcription.logprobs')).nullable().optional(),
  instructions: z.string().optional(),
  max_output_tokens: z.union([int.min(1).max(4096), z.literal('inf')]).optional(),
  model: z.string().optional(),
  output_modalities: z.array(z.enum(['text', 'audio'])).optional(),
  parallel_tool_calls: z.boolean().optional(),
  prompt: z.strictObject({ id: z.string(), variables: z.record(z.string(), promptVariable).nullable().optional(), version: z.string().nullable().optional() }).nullable().optional(),
  reasoning: z.strictObject({ effort: z.enum(['minimal', 'low', 'medium', 'high', 'xhigh']).optional() }).optional(),
  tool_choice: toolChoice.optional(),
  tools: z.array(z.union([functionTool, mcpTool])).optional(),
  tracing: z.union([z.literal('auto'), z.strictObject({ group_id: z.string().optional(), metadata: z.unknown().optional(), workflow_name: z.string().optional() })]).nullable().optional(),
  truncation: z
    .union([z.enum(['auto', 'disabled']), z.strictObject({ type: z.literal('retention_ratio'), retention_ratio: z.number().min(0).max(1), token_limits: z.strictObject({ post_instructions: int.optional() }).optional() })])
    .optional(),
});

const transcriptionSession: z.ZodType<Wire<RealtimeTranscriptionSessionCreateRequest>> = z.strictObject({
  ...liveSessionFields,
  // As in the SDK's RealtimeTranscriptionSessionCreateResponse (client-secrets.d.ts).
  object: z.literal('realtime.transcription_session'),
  type: z.literal('transcription'),
  audio: z
    .strictObject({
      input: z.strictObject({ format: audioFormat.optional(), noise_reduction: noiseReduction.nullable().optional(), transcription: transcription.nullable().optional(), turn_detection: turnDetection.nullable().optional() }).optional(),
    })
    .optional(),
  include: z.array(z.literal('item.input_audio_transcription.logprobs')).nullable().optional(),
});

const session = z.union([realtimeSession, transcriptionSession]);

const itemBase = { id: z.string().startsWith('item_').optional(), object: z.literal('realtime.item').optional(), status: status.optional() };

const mcpError = z.union([
  z.strictObject({ type: z.literal('protocol_error'), code: int, message: z.string() }),
  z.strictObject({ type: z.literal('tool_execution_error'), message: z.string() }),
  z.strictObject({ type: z.literal('http_error'), code: int, message: z.string() }),
]);

const item: z.ZodType<Wire<ConversationItem>> = z.union([
  z.strictObject({ ...itemBase, type: z.literal('message'), role: z.literal('system'), content: z.array(z.strictObject({ type: z.literal('input_text').optional(), text: z.string().optional() })) }),
  z.strictObject({
    ...itemBase,
    type: z.literal('message'),
    role: z.literal('user'),
    content: z.array(
      z.strictObject({
        type: z.enum(['input_text', 'input_audio', 'input_image']).optional(),
        text: z.string().optional(),
        audio: z.string().optional(),
        // The live API sends `transcript: null` until transcription completes (reference §3.6).
        transcript: z.string().nullable().optional(),
        image_url: z.string().optional(),
        detail: z.enum(['auto', 'low', 'high']).optional(),
      }),
    ),
  }),
  z.strictObject({
    ...itemBase,
    type: z.literal('message'),
    role: z.literal('assistant'),
    content: z.array(z.strictObject({ type: z.enum(['output_text', 'output_audio']).optional(), text: z.string().optional(), audio: z.string().optional(), transcript: z.string().optional() })),
  }),
  z.strictObject({ ...itemBase, type: z.literal('function_call'), name: z.string(), arguments: z.string(), call_id: z.string().optional() }),
  z.strictObject({ ...itemBase, type: z.literal('function_call_output'), call_id: z.string(), output: z.string() }),
  z.strictObject({ id: z.string(), type: z.literal('mcp_approval_response'), approval_request_id: z.string(), approve: z.boolean(), reason: z.string().nullable().optional() }),
  z.strictObject({
    id: z.string().optional(),
    type: z.literal('mcp_list_tools'),
    server_label: z.string(),
    tools: z.array(z.strictObject({ name: z.string(), input_schema: z.unknown(), annotations: z.unknown().nullable().optional(), description: z.string().nullable().optional() })),
  }),
  z.strictObject({
    id: z.string(),
    type: z.literal('mcp_call'),
    server_label: z.string(),
    name: z.string(),
    arguments: z.string(),
    approval_request_id: z.string().nullable().optional(),
    error: mcpError.nullable().optional(),
    output: z.string().nullable().optional(),
  }),
  z.strictObject({ id: z.string(), type: z.literal('mcp_approval_request'), server_label: z.string(), name: z.string(), arguments: z.string() }),
]);

const usage: z.ZodType<Wire<RealtimeResponseUsage>> = z.strictObject({
  total_tokens: nonNegativeInt,
  input_tokens: nonNegativeInt,
  output_tokens: nonNegativeInt,
  input_token_details: z.strictObject({
    text_tokens: nonNegativeInt,
    audio_tokens: nonNegativeInt,
    image_tokens: nonNegativeInt.optional(),
    cached_tokens: nonNegativeInt,
    cached_tokens_details: z.strictObject({ text_tokens: nonNegativeInt, audio_tokens: nonNegativeInt, image_tokens: nonNegativeInt.optional() }).optional(),
  }),
  output_token_details: z.strictObject({ text_tokens: nonNegativeInt, audio_tokens: nonNegativeInt }),
});

const response: z.ZodType<Wire<RealtimeResponse>> = z.strictObject({
  id: z.string().startsWith('resp_'),
  object: z.literal('realtime.response'),
  status: z.enum(['completed', 'cancelled', 'failed', 'incomplete', 'in_progress']),
  status_details: z
    .strictObject({
      type: z.enum(['completed', 'cancelled', 'incomplete', 'failed']).optional(),
      reason: z.enum(['turn_detected', 'client_cancelled', 'max_output_tokens', 'content_filter']).optional(),
      error: z.strictObject({ type: z.string().optional(), code: z.string().optional(), message: z.string().optional() }).optional(),
    })
    .nullable()
    .optional(),
  output: z.array(item),
  // `null` on an out-of-band response (conversation: "none"), as on the live API.
  conversation_id: z.string().nullable().optional(),
  output_modalities: z.array(z.enum(['text', 'audio'])).optional(),
  max_output_tokens: z.union([int, z.literal('inf')]).optional(),
  audio: z.strictObject({ output: z.strictObject({ format: audioFormat.optional(), voice: z.string().optional() }).optional() }).optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  // `null` on response.created (reference §3.5).
  usage: usage.nullable().optional(),
});

const eventId = z.string().min(1);
const base = { event_id: eventId };
const inResponse = { ...base, response_id: z.string().startsWith('resp_'), item_id: z.string(), output_index: nonNegativeInt };
const inContent = { ...inResponse, content_index: nonNegativeInt };
const part = z.strictObject({ type: z.enum(['text', 'audio']).optional(), text: z.string().optional(), audio: z.string().optional(), transcript: z.string().optional() });
const logprobs = z.array(z.strictObject({ token: z.string(), bytes: z.array(int), logprob: z.number() })).nullable().optional();

export const serverEventSchemas: { readonly [K in ServerEventType]: z.ZodType<EventOf<K>> } = {
  'conversation.created': z.strictObject({ ...base, type: z.literal('conversation.created'), conversation: z.strictObject({ id: z.string().optional(), object: z.literal('realtime.conversation').optional() }) }),
  'conversation.item.created': z.strictObject({ ...base, type: z.literal('conversation.item.created'), item, previous_item_id: z.string().nullable().optional() }),
  'conversation.item.added': z.strictObject({ ...base, type: z.literal('conversation.item.added'), item, previous_item_id: z.string().nullable().optional() }),
  'conversation.item.done': z.strictObject({ ...base, type: z.literal('conversation.item.done'), item, previous_item_id: z.string().nullable().optional() }),
  'conversation.item.deleted': z.strictObject({ ...base, type: z.literal('conversation.item.deleted'), item_id: z.string() }),
  'conversation.item.retrieved': z.strictObject({ ...base, type: z.literal('conversation.item.retrieved'), item }),
  'conversation.item.truncated': z.strictObject({ ...base, type: z.literal('conversation.item.truncated'), item_id: z.string(), content_index: nonNegativeInt, audio_end_ms: nonNegativeInt }),
  'conversation.item.input_audio_transcription.completed': z.strictObject({
    ...base,
    type: z.literal('conversation.item.input_audio_transcription.completed'),
    item_id: z.string(),
    content_index: nonNegativeInt,
    transcript: z.string(),
    usage: z.union([
      z.strictObject({ type: z.literal('tokens'), input_tokens: nonNegativeInt, output_tokens: nonNegativeInt, total_tokens: nonNegativeInt, input_token_details: z.strictObject({ text_tokens: nonNegativeInt.optional(), audio_tokens: nonNegativeInt.optional() }).optional() }),
      z.strictObject({ type: z.literal('duration'), seconds: z.number().nonnegative() }),
    ]),
    languages: z.array(z.strictObject({ code: z.string() })).optional(),
    logprobs,
  }),
  'conversation.item.input_audio_transcription.delta': z.strictObject({ ...base, type: z.literal('conversation.item.input_audio_transcription.delta'), item_id: z.string(), content_index: nonNegativeInt.optional(), delta: z.string().optional(), logprobs }),
  'conversation.item.input_audio_transcription.failed': z.strictObject({
    ...base,
    type: z.literal('conversation.item.input_audio_transcription.failed'),
    item_id: z.string(),
    content_index: nonNegativeInt,
    error: z.strictObject({ type: z.string().optional(), code: z.string().optional(), message: z.string().optional(), param: z.string().nullable().optional() }),
  }),
  'conversation.item.input_audio_transcription.segment': z.strictObject({
    ...base,
    type: z.literal('conversation.item.input_audio_transcription.segment'),
    id: z.string(),
    item_id: z.string(),
    content_index: nonNegativeInt,
    speaker: z.string(),
    start: z.number(),
    end: z.number(),
    text: z.string(),
  }),
  error: z.strictObject({
    ...base,
    type: z.literal('error'),
    error: z.strictObject({ type: z.string(), message: z.string(), code: z.string().nullable().optional(), param: z.string().nullable().optional(), event_id: z.string().nullable().optional() }),
  }),
  'input_audio_buffer.cleared': z.strictObject({ ...base, type: z.literal('input_audio_buffer.cleared') }),
  'input_audio_buffer.committed': z.strictObject({ ...base, type: z.literal('input_audio_buffer.committed'), item_id: z.string(), previous_item_id: z.string().nullable().optional() }),
  'input_audio_buffer.dtmf_event_received': z.strictObject({ type: z.literal('input_audio_buffer.dtmf_event_received'), event: z.string(), received_at: int }),
  'input_audio_buffer.speech_started': z.strictObject({ ...base, type: z.literal('input_audio_buffer.speech_started'), item_id: z.string(), audio_start_ms: nonNegativeInt }),
  'input_audio_buffer.speech_stopped': z.strictObject({ ...base, type: z.literal('input_audio_buffer.speech_stopped'), item_id: z.string(), audio_end_ms: nonNegativeInt }),
  'input_audio_buffer.timeout_triggered': z.strictObject({ ...base, type: z.literal('input_audio_buffer.timeout_triggered'), item_id: z.string(), audio_start_ms: nonNegativeInt, audio_end_ms: nonNegativeInt }),
  'rate_limits.updated': z.strictObject({
    ...base,
    type: z.literal('rate_limits.updated'),
    rate_limits: z.array(z.strictObject({ name: z.enum(['requests', 'tokens']).optional(), limit: nonNegativeInt.optional(), remaining: nonNegativeInt.optional(), reset_seconds: z.number().nonnegative().optional() })),
  }),
  'response.output_audio.delta': z.strictObject({ ...inContent, type: z.literal('response.output_audio.delta'), delta: z.base64() }),
  'response.output_audio.done': z.strictObject({ ...inContent, type: z.literal('response.output_audio.done') }),
  'response.output_audio_transcript.delta': z.strictObject({ ...inContent, type: z.literal('response.output_audio_transcript.delta'), delta: z.string() }),
  'response.output_audio_transcript.done': z.strictObject({ ...inContent, type: z.literal('response.output_audio_transcript.done'), transcript: z.string() }),
  'response.content_part.added': z.strictObject({ ...inContent, type: z.literal('response.content_part.added'), part }),
  'response.content_part.done': z.strictObject({ ...inContent, type: z.literal('response.content_part.done'), part }),
  'response.created': z.strictObject({ ...base, type: z.literal('response.created'), response }),
  'response.done': z.strictObject({ ...base, type: z.literal('response.done'), response }),
  'response.function_call_arguments.delta': z.strictObject({ ...inResponse, type: z.literal('response.function_call_arguments.delta'), call_id: z.string(), delta: z.string() }),
  'response.function_call_arguments.done': z.strictObject({ ...inResponse, type: z.literal('response.function_call_arguments.done'), call_id: z.string(), name: z.string(), arguments: z.string() }),
  'response.output_item.added': z.strictObject({ ...base, type: z.literal('response.output_item.added'), response_id: z.string().startsWith('resp_'), output_index: nonNegativeInt, item }),
  'response.output_item.done': z.strictObject({ ...base, type: z.literal('response.output_item.done'), response_id: z.string().startsWith('resp_'), output_index: nonNegativeInt, item }),
  'response.output_text.delta': z.strictObject({ ...inContent, type: z.literal('response.output_text.delta'), delta: z.string() }),
  'response.output_text.done': z.strictObject({ ...inContent, type: z.literal('response.output_text.done'), text: z.string() }),
  'session.created': z.strictObject({ ...base, type: z.literal('session.created'), session }),
  'session.updated': z.strictObject({ ...base, type: z.literal('session.updated'), session }),
  'output_audio_buffer.started': z.strictObject({ ...base, type: z.literal('output_audio_buffer.started'), response_id: z.string() }),
  'output_audio_buffer.stopped': z.strictObject({ ...base, type: z.literal('output_audio_buffer.stopped'), response_id: z.string() }),
  'output_audio_buffer.cleared': z.strictObject({ ...base, type: z.literal('output_audio_buffer.cleared'), response_id: z.string() }),
  'mcp_list_tools.in_progress': z.strictObject({ ...base, type: z.literal('mcp_list_tools.in_progress'), item_id: z.string() }),
  'mcp_list_tools.completed': z.strictObject({ ...base, type: z.literal('mcp_list_tools.completed'), item_id: z.string() }),
  'mcp_list_tools.failed': z.strictObject({ ...base, type: z.literal('mcp_list_tools.failed'), item_id: z.string() }),
  'response.mcp_call_arguments.delta': z.strictObject({ ...inResponse, type: z.literal('response.mcp_call_arguments.delta'), delta: z.string(), obfuscation: z.string().nullable().optional() }),
  'response.mcp_call_arguments.done': z.strictObject({ ...inResponse, type: z.literal('response.mcp_call_arguments.done'), arguments: z.string() }),
  'response.mcp_call.in_progress': z.strictObject({ ...base, type: z.literal('response.mcp_call.in_progress'), item_id: z.string(), output_index: nonNegativeInt }),
  'response.mcp_call.completed': z.strictObject({ ...base, type: z.literal('response.mcp_call.completed'), item_id: z.string(), output_index: nonNegativeInt }),
  'response.mcp_call.failed': z.strictObject({ ...base, type: z.literal('response.mcp_call.failed'), item_id: z.string(), output_index: nonNegativeInt }),
};

export interface ContractViolation {
  readonly type: string;
  readonly problem: string;
  readonly event: unknown;
}

/** Problems of one server event (empty when it conforms). */
export function serverEventViolations(event: unknown): ContractViolation[] {
  const type = typeof event === 'object' && event !== null ? (event as { type?: unknown }).type : undefined;
  if (typeof type !== 'string' || !(type in serverEventSchemas)) return [{ type: String(type), problem: 'not a Realtime server event type', event }];
  const result = serverEventSchemas[type as ServerEventType].safeParse(event);
  if (result.success) return [];
  return result.error.issues.map((i) => ({ type, problem: `${i.path.join('.') || '(root)'}: ${i.message}`, event }));
}
