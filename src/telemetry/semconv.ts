/**
 * Attribute keys, metric names and bucket boundaries. The `gen_ai.*` keys are copied from the
 * OpenTelemetry GenAI semantic conventions (the JS package keeps them in `/incubating`, which its
 * README says not to import at runtime). Status: REL = released in semconv v1.41.0; MAIN = merged
 * on semantic-conventions-genai main, unreleased; PR = open proposal; OURS = product namespace.
 */

// ---- GenAI attributes ------------------------------------------------------------------------

/** REL */ export const ATTR_GEN_AI_OPERATION_NAME = 'gen_ai.operation.name';
/** REL */ export const ATTR_GEN_AI_PROVIDER_NAME = 'gen_ai.provider.name';
/** REL */ export const ATTR_GEN_AI_REQUEST_MODEL = 'gen_ai.request.model';
/** REL */ export const ATTR_GEN_AI_REQUEST_MAX_TOKENS = 'gen_ai.request.max_tokens';
/** REL */ export const ATTR_GEN_AI_RESPONSE_ID = 'gen_ai.response.id';
/** REL */ export const ATTR_GEN_AI_RESPONSE_MODEL = 'gen_ai.response.model';
/** REL */ export const ATTR_GEN_AI_RESPONSE_FINISH_REASONS = 'gen_ai.response.finish_reasons';
/** REL */ export const ATTR_GEN_AI_OUTPUT_TYPE = 'gen_ai.output.type';
/** REL */ export const ATTR_GEN_AI_USAGE_INPUT_TOKENS = 'gen_ai.usage.input_tokens';
/** REL */ export const ATTR_GEN_AI_USAGE_OUTPUT_TOKENS = 'gen_ai.usage.output_tokens';
/** REL */ export const ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = 'gen_ai.usage.cache_read.input_tokens';
/** MAIN */ export const ATTR_GEN_AI_USAGE_AUDIO_INPUT_TOKENS = 'gen_ai.usage.audio.input_tokens';
/** MAIN */ export const ATTR_GEN_AI_USAGE_TEXT_INPUT_TOKENS = 'gen_ai.usage.text.input_tokens';
/** MAIN */ export const ATTR_GEN_AI_USAGE_IMAGE_INPUT_TOKENS = 'gen_ai.usage.image.input_tokens';
/** MAIN */ export const ATTR_GEN_AI_USAGE_AUDIO_OUTPUT_TOKENS = 'gen_ai.usage.audio.output_tokens';
/** MAIN */ export const ATTR_GEN_AI_USAGE_TEXT_OUTPUT_TOKENS = 'gen_ai.usage.text.output_tokens';
/** MAIN */ export const ATTR_GEN_AI_USAGE_AUDIO_CACHE_READ_INPUT_TOKENS = 'gen_ai.usage.audio.cache_read.input_tokens';
/** REL */ export const ATTR_GEN_AI_AGENT_NAME = 'gen_ai.agent.name';
/** PR #390 */ export const ATTR_GEN_AI_AGENT_INVOCATION_END_REASON = 'gen_ai.agent.invocation.end_reason';
/** PR #394 */ export const ATTR_GEN_AI_REALTIME_SESSION_ID = 'gen_ai.realtime_session.id';
/** REL */ export const ATTR_GEN_AI_TOOL_NAME = 'gen_ai.tool.name';
/** REL */ export const ATTR_GEN_AI_TOOL_CALL_ID = 'gen_ai.tool.call.id';
/** REL */ export const ATTR_GEN_AI_TOOL_TYPE = 'gen_ai.tool.type';
/** REL (opt-in content) */ export const ATTR_GEN_AI_INPUT_MESSAGES = 'gen_ai.input.messages';
/** REL (opt-in content) */ export const ATTR_GEN_AI_OUTPUT_MESSAGES = 'gen_ai.output.messages';
/** REL */ export const ATTR_GEN_AI_TOKEN_TYPE = 'gen_ai.token.type';
/** PR #197 */ export const ATTR_GEN_AI_TOKEN_MODALITY = 'gen_ai.token.modality';
/** MAIN */ export const ATTR_GEN_AI_GUARDRAIL_POLICY_ID = 'gen_ai.guardrail.policy.id';
/** MAIN */ export const ATTR_GEN_AI_GUARDRAIL_POLICY_VERSION = 'gen_ai.guardrail.policy.version';
/** MAIN */ export const ATTR_GEN_AI_GUARDRAIL_SOURCE = 'gen_ai.guardrail.source';
/** MAIN */ export const ATTR_GEN_AI_GUARDRAIL_RESULT_TYPE = 'gen_ai.guardrail.result.type';
/** MAIN */ export const ATTR_GEN_AI_GUARDRAIL_RESULT_REASON = 'gen_ai.guardrail.result.reason';
/** MAIN */ export const ATTR_GEN_AI_GUARDRAIL_COMPONENT_NAME = 'gen_ai.guardrail.component.name';

/** REL (general) */ export const ATTR_ERROR_TYPE = 'error.type';
/** REL (general) */ export const ATTR_SERVER_ADDRESS = 'server.address';
/** REL (general) */ export const ATTR_SERVER_PORT = 'server.port';
/** REL (general; Langfuse groups by it) */ export const ATTR_SESSION_ID = 'session.id';

export const GEN_AI_PROVIDER_OPENAI = 'openai';
export const OP_INVOKE_AGENT = 'invoke_agent';
export const OP_REALTIME_INFERENCE = 'realtime_inference';
export const OP_USER_SPEECH = 'user_speech';
export const OP_EXECUTE_TOOL = 'execute_tool';

/** Span names. The turn span is `invoke_agent` (no agent name: the proxy governs any client). */
export const SPAN_SESSION_CONNECT = 'rtproxy.session.connect';
/** A translation session's one span, upgrade to close: it has no turns (README, Telemetry). */
export const SPAN_SESSION_TRANSLATION = 'rtproxy.session.translation';
export const SPAN_TURN = 'invoke_agent';
export const SPAN_USER_SPEECH = 'user_speech';
export const spanInference = (model: string): string => (model ? `realtime_inference ${model}` : 'realtime_inference');
export const spanTool = (name: string): string => `execute_tool ${name}`;

// ---- Product attributes (OURS) ---------------------------------------------------------------

export const ATTR_TENANT_ID = 'rtproxy.tenant.id';
export const ATTR_SESSION_ID_PROXY = 'rtproxy.session.id';
export const ATTR_TURN_NUMBER = 'rtproxy.turn.number';
export const ATTR_TURN_INITIATOR = 'rtproxy.turn.initiator';
export const ATTR_TURN_ANCHOR = 'rtproxy.turn.anchor';
export const ATTR_TURN_RESPONSE_LATENCY = 'rtproxy.turn.response_latency';
export const ATTR_TURN_VOICE_TO_VOICE_LATENCY = 'rtproxy.turn.voice_to_voice_latency';
export const ATTR_TURN_TIME_TO_FIRST_TEXT = 'rtproxy.turn.time_to_first_text';
export const ATTR_TURN_OUTPUT_AUDIO_MS = 'rtproxy.turn.output_audio_ms';
export const ATTR_TURN_PLAYED_AUDIO_MS = 'rtproxy.turn.played_audio_ms';
export const ATTR_TURN_INTERRUPTED = 'rtproxy.turn.interrupted';
export const ATTR_TURN_INTERRUPTION_KIND = 'rtproxy.turn.interruption_kind';
export const ATTR_TURN_RESPONSES = 'rtproxy.turn.responses';
export const ATTR_TURN_COST_USD = 'rtproxy.turn.cost_usd';
export const ATTR_RESPONSE_TRIGGER = 'rtproxy.response.trigger';
export const ATTR_RESPONSE_OUT_OF_BAND = 'rtproxy.response.out_of_band';
export const ATTR_RESPONSE_STATUS = 'rtproxy.response.status';
export const ATTR_RESPONSE_TIME_TO_FIRST_AUDIO = 'rtproxy.response.time_to_first_audio';
export const ATTR_RESPONSE_TIME_TO_FIRST_TEXT = 'rtproxy.response.time_to_first_text';
export const ATTR_RESPONSE_DURATION = 'rtproxy.response.duration';
export const ATTR_RESPONSE_OUTPUT_AUDIO_MS = 'rtproxy.response.output_audio_ms';
export const ATTR_RESPONSE_COST_USD = 'rtproxy.response.cost_usd';
export const ATTR_RESPONSE_CANCELLED_BY = 'rtproxy.response.cancelled_by';
export const ATTR_USAGE_CACHED_TOKENS = 'rtproxy.usage.cached_tokens';
export const ATTR_USAGE_SOURCE = 'rtproxy.usage.source';
export const ATTR_AUDIO_START_MS = 'rtproxy.audio.start_ms';
export const ATTR_AUDIO_END_MS = 'rtproxy.audio.end_ms';
export const ATTR_AUDIO_INPUT_FORMAT = 'rtproxy.audio.input_format';
export const ATTR_AUDIO_OUTPUT_FORMAT = 'rtproxy.audio.output_format';
export const ATTR_VAD_TYPE = 'rtproxy.vad.type';
export const ATTR_VAD_SILENCE_MS = 'rtproxy.vad.silence_duration_ms';
export const ATTR_VAD_INTERRUPT_RESPONSE = 'rtproxy.vad.interrupt_response';
export const ATTR_TOOL_EXECUTOR = 'rtproxy.tool.executor';
export const ATTR_TOOL_OUTCOME = 'rtproxy.tool.outcome';
export const ATTR_GUARDRAIL_ACTION = 'rtproxy.guardrail.action';
export const ATTR_GUARDRAIL_RULE_ID = 'rtproxy.guardrail.rule.id';
export const ATTR_GUARDRAIL_DECISION_MS = 'rtproxy.guardrail.decision_ms';
export const ATTR_UPSTREAM_CONNECT_MS = 'rtproxy.upstream.connect_ms';
export const ATTR_SESSION_CLOSE_REASON = 'rtproxy.session.close_reason';
export const ATTR_SESSION_CLOSE_INITIATOR = 'rtproxy.session.close_initiator';
export const ATTR_SESSION_CLOSE_CODE = 'rtproxy.session.close_code';
export const ATTR_SESSION_INPUT_AUDIO_MS = 'rtproxy.session.input_audio_ms';
export const ATTR_SESSION_OUTPUT_AUDIO_MS = 'rtproxy.session.output_audio_ms';
export const ATTR_SESSION_COST_USD = 'rtproxy.session.cost_usd';
export const ATTR_BUDGET_ACTION = 'rtproxy.budget.action';
export const ATTR_BUDGET_SCOPE = 'rtproxy.budget.scope';
export const ATTR_VERDICT = 'rtproxy.verdict';
export const ATTR_VERDICT_FILTER = 'rtproxy.verdict.filter';
export const ATTR_VERDICT_CODE = 'rtproxy.verdict.code';
export const ATTR_ERROR_ORIGIN = 'rtproxy.error.origin';
export const ATTR_DIRECTION = 'direction';
export const ATTR_INTERRUPTION_KIND = 'kind';
/** Content attributes (opt-in) live under `rtproxy.pii.*` so a collector can strip them by prefix. */
export const ATTR_PII_INPUT_TRANSCRIPT = 'rtproxy.pii.input_transcript';
export const ATTR_PII_OUTPUT_TRANSCRIPT = 'rtproxy.pii.output_transcript';

// ---- Span event names ------------------------------------------------------------------------

export const EVENT_SPEECH_STARTED = 'input_audio_buffer.speech_started';
export const EVENT_SPEECH_STOPPED = 'input_audio_buffer.speech_stopped';
export const EVENT_COMMITTED = 'input_audio_buffer.committed';
export const EVENT_RESPONSE_CREATED = 'response.created';
export const EVENT_FIRST_AUDIO = 'rtproxy.first_output_audio';
export const EVENT_FIRST_TEXT = 'rtproxy.first_output_text';
export const EVENT_RESPONSE_CANCEL = 'response.cancel';
export const EVENT_TRUNCATE = 'conversation.item.truncate';
export const EVENT_INTERRUPTED = 'rtproxy.interrupted';
export const EVENT_ERROR = 'error';
export const EVENT_GUARDRAIL = 'gen_ai.guardrail.result';
export const EVENT_BUDGET = 'rtproxy.budget';
export const EVENT_PRUNE = 'rtproxy.prune';
export const EVENT_LOCK = 'rtproxy.lock';
export const EVENT_VERDICT = 'rtproxy.verdict';
export const EVENT_SESSION_STARTED = 'gen_ai.client.realtime_session.started';
export const EVENT_SESSION_ENDED = 'gen_ai.client.realtime_session.ended';
export const EVENT_UPSTREAM_CONNECTED = 'rtproxy.upstream.connected';

// ---- Metrics ---------------------------------------------------------------------------------

export const METRIC_OPERATION_DURATION = 'gen_ai.client.operation.duration';
export const METRIC_TOKEN_USAGE = 'gen_ai.client.token.usage';
export const METRIC_INVOKE_AGENT_DURATION = 'gen_ai.invoke_agent.duration';
export const METRIC_EXECUTE_TOOL_DURATION = 'gen_ai.execute_tool.duration';
export const METRIC_TURN_RESPONSE_LATENCY = 'rtproxy.turn.response_latency';
export const METRIC_TURN_VOICE_TO_VOICE = 'rtproxy.turn.voice_to_voice_latency';
export const METRIC_TURN_TIME_TO_FIRST_TEXT = 'rtproxy.turn.time_to_first_text';
export const METRIC_RESPONSE_TIME_TO_FIRST_AUDIO = 'rtproxy.response.time_to_first_audio';
export const METRIC_TURNS = 'rtproxy.turns';
export const METRIC_INTERRUPTIONS = 'rtproxy.interruptions';
export const METRIC_USAGE_TOKENS = 'rtproxy.usage.tokens';
export const METRIC_USAGE_COST = 'rtproxy.usage.cost';
export const METRIC_AUDIO_DURATION = 'rtproxy.audio.duration';
export const METRIC_SESSIONS_ACTIVE = 'rtproxy.sessions.active';
export const METRIC_SESSIONS_STARTED = 'rtproxy.sessions.started';
export const METRIC_SESSIONS_ENDED = 'rtproxy.sessions.ended';
export const METRIC_SESSION_DURATION = 'rtproxy.session.duration';
export const METRIC_UPSTREAM_CONNECT = 'rtproxy.upstream.connect.duration';
export const METRIC_GUARDRAIL_TRIPS = 'rtproxy.guardrail.trips';
export const METRIC_UNKNOWN_CONTENT = 'rtproxy.guardrail.unknown_content';
export const METRIC_BUDGET_EVENTS = 'rtproxy.budget.events';
export const METRIC_PRUNES = 'rtproxy.prunes';
export const METRIC_LOCKS = 'rtproxy.session.locks';
export const METRIC_VERDICTS = 'rtproxy.verdicts';
export const METRIC_ERRORS = 'rtproxy.errors';
export const METRIC_RELAY_FRAMES = 'rtproxy.relay.frames';
export const METRIC_RELAY_BYTES = 'rtproxy.relay.bytes';
export const METRIC_RELAY_LATENCY = 'rtproxy.relay.latency';
export const METRIC_BACKPRESSURE = 'rtproxy.backpressure.events';
export const METRIC_UPGRADES_REFUSED = 'rtproxy.upgrades.refused';
/** REL */ export const ATTR_REFUSAL_REASON = 'rtproxy.refusal.reason';
/** HTTP requests a module's route refused with one of the proxy's error codes (src/calls), by route and code. */
export const METRIC_HTTP_REFUSED = 'rtproxy.http.refused';
/** OURS: announcements of SIP calls to the tenants' apps (calls.sip.routes[].notify), by outcome. */
export const METRIC_CALL_NOTIFICATIONS = 'rtproxy.calls.notifications';
export const ATTR_NOTIFY_OUTCOME = 'rtproxy.notify.outcome';
/** OURS: call transfers (SIP REFER) tenants asked for, by tenant and outcome (transferred, refused, failed, unconfirmed). */
export const METRIC_CALL_TRANSFERS = 'rtproxy.calls.transfers';
export const ATTR_TRANSFER_OUTCOME = 'rtproxy.transfer.outcome';
/** Stable HTTP semconv: the route's path template (`/v1/realtime/calls/:callId/hangup`), never the path sent. */
export const ATTR_HTTP_ROUTE = 'http.route';

/** Semconv `gen_ai.client.token.usage` boundaries. */
export const TOKEN_BUCKETS: readonly number[] = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];
/** Semconv `gen_ai.client.operation.duration` boundaries (s). */
export const DURATION_BUCKETS: readonly number[] = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/** Turn latency boundaries (s): dense around the 0.5–1.2 s SLOs so `le="0.8"` ratios are exact. */
export const LATENCY_BUCKETS: readonly number[] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10];
/** Session duration boundaries (s), up to OpenAI's 60-minute cap. */
export const SESSION_BUCKETS: readonly number[] = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
export const CONNECT_BUCKETS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10];
/** Proxy overhead per frame (s): expected sub-millisecond. */
export const RELAY_BUCKETS: readonly number[] = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05];
