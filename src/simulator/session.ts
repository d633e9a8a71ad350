import type {
  AudioTranscription,
  NoiseReductionType,
  RealtimeReasoning,
  RealtimeToolChoiceConfig,
  RealtimeToolsConfigUnion,
  RealtimeTracingConfig,
  RealtimeTruncation,
} from 'openai/resources/realtime/realtime';
import type { RealtimeSessionCreateResponse, RealtimeTranscriptionSessionCreateResponse } from 'openai/resources/realtime/client-secrets';
import type { ResponsePrompt } from 'openai/resources/responses/responses';
import type { AudioFormatKind } from './audio.js';
import { invalidType, invalidValue, missingParameter, outOfRange, SimError, unknownParameter } from './errors.js';
import { newId, type Wire } from './wire.js';

export type AudioFormat = { type: 'audio/pcm'; rate: 24000 } | { type: 'audio/pcmu' } | { type: 'audio/pcma' };

export interface ServerVad {
  type: 'server_vad';
  threshold: number;
  prefix_padding_ms: number;
  silence_duration_ms: number;
  idle_timeout_ms: number | null;
  create_response: boolean;
  interrupt_response: boolean;
}

export interface SemanticVad {
  type: 'semantic_vad';
  eagerness: 'low' | 'medium' | 'high' | 'auto';
  create_response: boolean;
  interrupt_response: boolean;
}

export type TurnDetection = ServerVad | SemanticVad;

export interface InputAudioConfig {
  format: AudioFormat;
  transcription: AudioTranscription | null;
  noise_reduction: { type: NoiseReductionType } | null;
  turn_detection: TurnDetection | null;
}

export interface RealtimeSessionState {
  type: 'realtime';
  object: 'realtime.session';
  id: string;
  model: string;
  output_modalities: Array<'text' | 'audio'>;
  instructions: string;
  tools: RealtimeToolsConfigUnion[];
  tool_choice: RealtimeToolChoiceConfig;
  max_output_tokens: number | 'inf';
  tracing: RealtimeTracingConfig | null;
  truncation: RealtimeTruncation;
  prompt: ResponsePrompt | null;
  expires_at: number;
  audio: {
    input: InputAudioConfig;
    output: { format: AudioFormat; voice: string; speed: number };
  };
  include: Array<'item.input_audio_transcription.logprobs'> | null;
  reasoning?: RealtimeReasoning;
  parallel_tool_calls?: boolean;
}

export interface TranscriptionSessionState {
  type: 'transcription';
  object: 'realtime.transcription_session';
  id: string;
  expires_at: number;
  audio: { input: InputAudioConfig };
  include: Array<'item.input_audio_transcription.logprobs'> | null;
}

export type SessionState = RealtimeSessionState | TranscriptionSessionState;

// Compile-time proof that the session objects the simulator emits have the SDK's session shape.
type Assignable<T extends U, U> = T;
export type _RealtimeSessionIsWire = Assignable<RealtimeSessionState, Wire<RealtimeSessionCreateResponse>>;
export type _TranscriptionSessionIsWire = Assignable<TranscriptionSessionState, Wire<RealtimeTranscriptionSessionCreateResponse>>;

export const DEFAULT_INSTRUCTIONS =
  'You are a friendly, concise voice assistant. Speak naturally and keep answers short unless asked for detail. ' +
  'Answer in the language the user speaks.';

export const KNOWN_MODELS: readonly string[] = [
  'gpt-realtime',
  'gpt-realtime-mini',
  'gpt-realtime-1.5',
  'gpt-realtime-2',
  'gpt-realtime-2.1',
  'gpt-realtime-2.1-mini',
];

const DATED = /^(.*)-(\d{4})-(\d{2})-(\d{2})$/;

export function isKnownModel(model: string): boolean {
  const m = DATED.exec(model);
  return KNOWN_MODELS.includes(m ? m[1]! : model);
}

export function defaultServerVad(): ServerVad {
  return {
    type: 'server_vad',
    threshold: 0.5,
    prefix_padding_ms: 300,
    silence_duration_ms: 200,
    idle_timeout_ms: null,
    create_response: true,
    interrupt_response: true,
  };
}

export function createRealtimeSession(model: string, nowSeconds: number, lifetimeSeconds = 3600): RealtimeSessionState {
  return {
    type: 'realtime',
    object: 'realtime.session',
    id: newId('sess'),
    model,
    output_modalities: ['audio'],
    instructions: DEFAULT_INSTRUCTIONS,
    tools: [],
    tool_choice: 'auto',
    max_output_tokens: 'inf',
    tracing: null,
    truncation: 'auto',
    prompt: null,
    expires_at: nowSeconds + lifetimeSeconds,
    audio: {
      input: {
        format: { type: 'audio/pcm', rate: 24000 },
        transcription: null,
        noise_reduction: null,
        turn_detection: defaultServerVad(),
      },
      output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'marin', speed: 1 },
    },
    include: null,
  };
}

export function createTranscriptionSession(nowSeconds: number, lifetimeSeconds = 3600): TranscriptionSessionState {
  return {
    type: 'transcription',
    object: 'realtime.transcription_session',
    id: newId('sess'),
    expires_at: nowSeconds + lifetimeSeconds,
    audio: {
      input: {
        format: { type: 'audio/pcm', rate: 24000 },
        transcription: null,
        noise_reduction: null,
        turn_detection: defaultServerVad(),
      },
    },
    include: null,
  };
}

export function formatKind(format: AudioFormat): AudioFormatKind {
  return format.type === 'audio/pcm' ? 'pcm' : format.type === 'audio/pcmu' ? 'pcmu' : 'pcma';
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkKeys(obj: Record<string, unknown>, path: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) if (!allowed.includes(key)) throw unknownParameter(`${path}.${key}`);
}

function expectObject(v: unknown, path: string): Record<string, unknown> {
  if (!isObject(v)) throw invalidType(path, 'an object', v);
  return v;
}

function expectString(v: unknown, path: string): string {
  if (typeof v !== 'string') throw invalidType(path, 'a string', v);
  return v;
}

function expectBoolean(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') throw invalidType(path, 'a boolean', v);
  return v;
}

function expectNumber(v: unknown, path: string, min: number, max: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidType(path, integer ? 'an integer' : 'a number', v);
  if (integer && !Number.isInteger(v)) throw invalidType(path, 'an integer', v);
  if (v < min || v > max) throw outOfRange(path, v, min, max);
  return v;
}

export function parseFormat(v: unknown, path: string): AudioFormat {
  const o = expectObject(v, path);
  checkKeys(o, path, ['type', 'rate']);
  const type = o['type'] ?? 'audio/pcm';
  if (type === 'audio/pcm') {
    if (o['rate'] !== undefined) {
      const rate = expectNumber(o['rate'], `${path}.rate`, 24000, 24000, true);
      if (rate !== 24000) throw invalidValue(`${path}.rate`, rate, ['24000']);
    }
    return { type: 'audio/pcm', rate: 24000 };
  }
  if (type === 'audio/pcmu' || type === 'audio/pcma') {
    if (o['rate'] !== undefined) throw unknownParameter(`${path}.rate`);
    return { type };
  }
  throw invalidValue(`${path}.type`, type, ['audio/pcm', 'audio/pcmu', 'audio/pcma']);
}

export function parseModalities(v: unknown, path: string): Array<'text' | 'audio'> {
  if (!Array.isArray(v)) throw invalidType(path, 'an array', v);
  if (v.length === 1 && (v[0] === 'audio' || v[0] === 'text')) return [v[0]];
  throw new SimError(
    'invalid_value',
    `Invalid modalities: ${JSON.stringify(v)}. Supported combinations are: ['text'] and ['audio'].`,
    path,
  );
}

export function parseMaxOutputTokens(v: unknown, path: string): number | 'inf' {
  if (v === 'inf') return 'inf';
  return expectNumber(v, path, 1, 4096, true);
}

function parseTurnDetection(v: unknown, path: string, current: TurnDetection | null): TurnDetection | null {
  if (v === null) return null;
  const o = expectObject(v, path);
  const type = o['type'];
  if (type === 'server_vad') {
    checkKeys(o, path, ['type', 'threshold', 'prefix_padding_ms', 'silence_duration_ms', 'idle_timeout_ms', 'create_response', 'interrupt_response']);
    const base = current?.type === 'server_vad' ? current : defaultServerVad();
    const idle = o['idle_timeout_ms'];
    return {
      type: 'server_vad',
      threshold: o['threshold'] === undefined ? base.threshold : expectNumber(o['threshold'], `${path}.threshold`, 0, 1),
      prefix_padding_ms: o['prefix_padding_ms'] === undefined ? base.prefix_padding_ms : expectNumber(o['prefix_padding_ms'], `${path}.prefix_padding_ms`, 0, 10_000, true),
      silence_duration_ms: o['silence_duration_ms'] === undefined ? base.silence_duration_ms : expectNumber(o['silence_duration_ms'], `${path}.silence_duration_ms`, 0, 10_000, true),
      idle_timeout_ms: idle === undefined ? base.idle_timeout_ms : idle === null ? null : expectNumber(idle, `${path}.idle_timeout_ms`, 5000, 30_000, true),
      create_response: o['create_response'] === undefined ? base.create_response : expectBoolean(o['create_response'], `${path}.create_response`),
      interrupt_response: o['interrupt_response'] === undefined ? base.interrupt_response : expectBoolean(o['interrupt_response'], `${path}.interrupt_response`),
    };
  }
  if (type === 'semantic_vad') {
    checkKeys(o, path, ['type', 'eagerness', 'create_response', 'interrupt_response']);
    const base: SemanticVad = current?.type === 'semantic_vad' ? current : { type: 'semantic_vad', eagerness: 'auto', create_response: true, interrupt_response: true };
    const eagerness = o['eagerness'] ?? base.eagerness;
    if (eagerness !== 'low' && eagerness !== 'medium' && eagerness !== 'high' && eagerness !== 'auto') {
      throw invalidValue(`${path}.eagerness`, eagerness, ['low', 'medium', 'high', 'auto']);
    }
    return {
      type: 'semantic_vad',
      eagerness,
      create_response: o['create_response'] === undefined ? base.create_response : expectBoolean(o['create_response'], `${path}.create_response`),
      interrupt_response: o['interrupt_response'] === undefined ? base.interrupt_response : expectBoolean(o['interrupt_response'], `${path}.interrupt_response`),
    };
  }
  if (type === undefined) throw missingParameter(`${path}.type`);
  throw invalidValue(`${path}.type`, type, ['server_vad', 'semantic_vad']);
}

function parseTranscription(v: unknown, path: string): AudioTranscription | null {
  if (v === null) return null;
  const o = expectObject(v, path);
  checkKeys(o, path, ['model', 'language', 'prompt', 'delay', 'keywords', 'languages']);
  const out: AudioTranscription = {};
  if (o['model'] !== undefined) out.model = expectString(o['model'], `${path}.model`);
  if (o['language'] !== undefined) out.language = expectString(o['language'], `${path}.language`);
  if (o['prompt'] !== undefined) out.prompt = expectString(o['prompt'], `${path}.prompt`);
  if (o['delay'] !== undefined) {
    const d = o['delay'];
    if (d !== 'minimal' && d !== 'low' && d !== 'medium' && d !== 'high' && d !== 'xhigh') throw invalidValue(`${path}.delay`, d, ['minimal', 'low', 'medium', 'high', 'xhigh']);
    out.delay = d;
  }
  for (const key of ['keywords', 'languages'] as const) {
    const list = o[key];
    if (list === undefined) continue;
    if (!Array.isArray(list) || !list.every((x): x is string => typeof x === 'string')) throw invalidType(`${path}.${key}`, 'an array of strings', list);
    out[key] = list;
  }
  if (out.model === undefined) out.model = 'gpt-4o-mini-transcribe';
  return out;
}

function parseNoiseReduction(v: unknown, path: string): { type: NoiseReductionType } | null {
  if (v === null) return null;
  const o = expectObject(v, path);
  checkKeys(o, path, ['type', 'strength']);
  const type = o['type'];
  if (type !== 'near_field' && type !== 'far_field') throw invalidValue(`${path}.type`, type, ['near_field', 'far_field']);
  if (o['strength'] !== undefined) expectNumber(o['strength'], `${path}.strength`, 0, 1);
  return { type };
}

function applyInput(input: InputAudioConfig, v: unknown, path: string): void {
  const o = expectObject(v, path);
  checkKeys(o, path, ['format', 'noise_reduction', 'transcription', 'turn_detection']);
  if (o['format'] !== undefined) input.format = parseFormat(o['format'], `${path}.format`);
  if (o['noise_reduction'] !== undefined) input.noise_reduction = parseNoiseReduction(o['noise_reduction'], `${path}.noise_reduction`);
  if (o['transcription'] !== undefined) input.transcription = parseTranscription(o['transcription'], `${path}.transcription`);
  if (o['turn_detection'] !== undefined) input.turn_detection = parseTurnDetection(o['turn_detection'], `${path}.turn_detection`, input.turn_detection);
}

export function parseVoice(v: unknown, path: string): string {
  if (isObject(v) && typeof v['id'] === 'string') return v['id'];
  return expectString(v, path);
}

export function parseTools(v: unknown, path: string): RealtimeToolsConfigUnion[] {
  if (!Array.isArray(v)) throw invalidType(path, 'an array', v);
  return v.map((tool, i) => {
    const p = `${path}[${i}]`;
    const o = expectObject(tool, p);
    const type = o['type'] ?? 'function';
    if (type === 'function') {
      checkKeys(o, p, ['type', 'name', 'description', 'parameters']);
      if (o['name'] === undefined) throw missingParameter(`${p}.name`);
      expectString(o['name'], `${p}.name`);
      if (o['description'] !== undefined) expectString(o['description'], `${p}.description`);
      if (o['parameters'] !== undefined) expectObject(o['parameters'], `${p}.parameters`);
    } else if (type === 'mcp') {
      if (o['server_label'] === undefined) throw missingParameter(`${p}.server_label`);
      expectString(o['server_label'], `${p}.server_label`);
    } else {
      throw invalidValue(`${p}.type`, type, ['function', 'mcp']);
    }
    // Shape checked above; the remaining fields are kept verbatim like OpenAI echoes them.
    return o as unknown as RealtimeToolsConfigUnion;
  });
}

export function parseToolChoice(v: unknown, path: string): RealtimeToolChoiceConfig {
  if (v === 'auto' || v === 'none' || v === 'required') return v;
  if (isObject(v) && v['type'] === 'function' && typeof v['name'] === 'string') return { type: 'function', name: v['name'] };
  if (isObject(v) && v['type'] === 'mcp' && typeof v['server_label'] === 'string') {
    return typeof v['name'] === 'string' ? { type: 'mcp', server_label: v['server_label'], name: v['name'] } : { type: 'mcp', server_label: v['server_label'] };
  }
  throw invalidValue(path, typeof v === 'string' ? v : JSON.stringify(v), ['none', 'auto', 'required']);
}

function parseTruncation(v: unknown, path: string): RealtimeTruncation {
  if (v === 'auto' || v === 'disabled') return v;
  const o = expectObject(v, path);
  checkKeys(o, path, ['type', 'retention_ratio', 'token_limits']);
  if (o['type'] !== 'retention_ratio') throw invalidValue(`${path}.type`, o['type'], ['retention_ratio']);
  const ratio = expectNumber(o['retention_ratio'], `${path}.retention_ratio`, 0, 1);
  const out: RealtimeTruncation = { type: 'retention_ratio', retention_ratio: ratio };
  if (o['token_limits'] !== undefined) {
    const limits = expectObject(o['token_limits'], `${path}.token_limits`);
    checkKeys(limits, `${path}.token_limits`, ['post_instructions']);
    if (limits['post_instructions'] !== undefined) {
      out.token_limits = { post_instructions: expectNumber(limits['post_instructions'], `${path}.token_limits.post_instructions`, 0, 1_000_000, true) };
    } else out.token_limits = {};
  }
  return out;
}

function parseTracing(v: unknown, path: string): RealtimeTracingConfig | null {
  if (v === null || v === 'auto') return v;
  const o = expectObject(v, path);
  checkKeys(o, path, ['workflow_name', 'group_id', 'metadata']);
  const out: RealtimeTracingConfig = {};
  if (o['workflow_name'] !== undefined) out.workflow_name = expectString(o['workflow_name'], `${path}.workflow_name`);
  if (o['group_id'] !== undefined) out.group_id = expectString(o['group_id'], `${path}.group_id`);
  if (o['metadata'] !== undefined) out.metadata = o['metadata'];
  return out;
}

export function parsePrompt(v: unknown, path: string): ResponsePrompt | null {
  if (v === null) return null;
  const o = expectObject(v, path);
  checkKeys(o, path, ['id', 'version', 'variables']);
  if (o['id'] === undefined) throw missingParameter(`${path}.id`);
  const out: ResponsePrompt = { id: expectString(o['id'], `${path}.id`) };
  if (o['version'] !== undefined && o['version'] !== null) out.version = expectString(o['version'], `${path}.version`);
  if (o['variables'] !== undefined && o['variables'] !== null) {
    const vars = expectObject(o['variables'], `${path}.variables`);
    const copy: NonNullable<ResponsePrompt['variables']> = {};
    for (const [k, val] of Object.entries(vars)) copy[k] = parsePromptVariable(val, `${path}.variables.${k}`);
    out.variables = copy;
  }
  return out;
}

/** A variable is a string or a Responses input part: input_text, input_image or input_file. */
function parsePromptVariable(v: unknown, path: string): NonNullable<ResponsePrompt['variables']>[string] {
  if (typeof v === 'string') return v;
  const o = expectObject(v, path);
  const type = expectString(o['type'], `${path}.type`);
  const keys: Record<string, readonly string[]> = {
    input_text: ['type', 'text'],
    input_image: ['type', 'image_url', 'file_id', 'detail'],
    input_file: ['type', 'file_data', 'file_id', 'file_url', 'filename'],
  };
  const allowed = keys[type];
  if (!allowed) throw invalidValue(`${path}.type`, type, Object.keys(keys));
  checkKeys(o, path, allowed);
  for (const k of allowed) if (k !== 'type' && o[k] !== undefined && o[k] !== null) expectString(o[k], `${path}.${k}`);
  if (type === 'input_text' && o['text'] === undefined) throw missingParameter(`${path}.text`);
  return structuredClone(o) as unknown as NonNullable<ResponsePrompt['variables']>[string];
}

export function parseReasoning(v: unknown, path: string): RealtimeReasoning {
  const o = expectObject(v, path);
  checkKeys(o, path, ['effort']);
  const effort = o['effort'];
  if (effort === undefined) return {};
  if (effort !== 'minimal' && effort !== 'low' && effort !== 'medium' && effort !== 'high' && effort !== 'xhigh') {
    throw invalidValue(`${path}.effort`, effort, ['minimal', 'low', 'medium', 'high', 'xhigh']);
  }
  return { effort };
}

function parseInclude(v: unknown, path: string): Array<'item.input_audio_transcription.logprobs'> | null {
  if (v === null) return null;
  if (!Array.isArray(v)) throw invalidType(path, 'an array', v);
  return v.map((x, i) => {
    if (x !== 'item.input_audio_transcription.logprobs') throw invalidValue(`${path}[${i}]`, x, ['item.input_audio_transcription.logprobs']);
    return x;
  });
}

export interface UpdateContext {
  /** Assistant audio already exists: the voice can no longer change. */
  readonly voiceLocked: boolean;
}

/**
 * Apply a `session.update` payload. Returns the new effective session or throws `SimError`;
 * on error the current session is untouched (OpenAI discards the whole update).
 */
export function applySessionUpdate(current: SessionState, raw: unknown, ctx: UpdateContext): SessionState {
  if (raw === undefined) throw missingParameter('session');
  const o = expectObject(raw, 'session');
  const type = o['type'];
  if (type === undefined) throw missingParameter('session.type');
  if (type !== 'realtime' && type !== 'transcription') throw invalidValue('session.type', type, ['realtime', 'transcription']);
  if (type !== current.type) {
    throw new SimError('invalid_value', `Cannot change the session type from '${current.type}' to '${String(type)}'.`, 'session.type');
  }
  if (current.type === 'transcription') {
    const next = structuredClone(current);
    checkKeys(o, 'session', ['type', 'audio', 'include']);
    if (o['audio'] !== undefined) {
      const audio = expectObject(o['audio'], 'session.audio');
      checkKeys(audio, 'session.audio', ['input']);
      if (audio['input'] !== undefined) applyInput(next.audio.input, audio['input'], 'session.audio.input');
    }
    if (o['include'] !== undefined) next.include = parseInclude(o['include'], 'session.include');
    return next;
  }
  const next = structuredClone(current);
  checkKeys(o, 'session', [
    'type', 'model', 'instructions', 'output_modalities', 'audio', 'tools', 'tool_choice', 'max_output_tokens',
    'truncation', 'prompt', 'tracing', 'include', 'reasoning', 'parallel_tool_calls',
  ]);
  if (o['model'] !== undefined) {
    const model = expectString(o['model'], 'session.model');
    // The connection's model is fixed; a differing known model is ignored (clients often resend
    // their own default), an unknown one is refused.
    if (!isKnownModel(model)) throw new SimError('invalid_model', `Model "${model}" is not supported in realtime mode.`, 'session.model');
  }
  if (o['instructions'] !== undefined) next.instructions = expectString(o['instructions'], 'session.instructions');
  if (o['output_modalities'] !== undefined) next.output_modalities = parseModalities(o['output_modalities'], 'session.output_modalities');
  if (o['audio'] !== undefined) {
    const audio = expectObject(o['audio'], 'session.audio');
    checkKeys(audio, 'session.audio', ['input', 'output']);
    if (audio['input'] !== undefined) applyInput(next.audio.input, audio['input'], 'session.audio.input');
    if (audio['output'] !== undefined) {
      const out = expectObject(audio['output'], 'session.audio.output');
      checkKeys(out, 'session.audio.output', ['format', 'voice', 'speed']);
      if (out['format'] !== undefined) next.audio.output.format = parseFormat(out['format'], 'session.audio.output.format');
      if (out['speed'] !== undefined) next.audio.output.speed = expectNumber(out['speed'], 'session.audio.output.speed', 0.25, 1.5);
      if (out['voice'] !== undefined) {
        const voice = parseVoice(out['voice'], 'session.audio.output.voice');
        if (voice !== current.audio.output.voice && ctx.voiceLocked) {
          throw new SimError('cannot_update_voice', "Cannot update a conversation's voice if assistant audio is present.", 'session.audio.output.voice');
        }
        next.audio.output.voice = voice;
      }
    }
  }
  if (o['tools'] !== undefined) next.tools = parseTools(o['tools'], 'session.tools');
  if (o['tool_choice'] !== undefined) next.tool_choice = parseToolChoice(o['tool_choice'], 'session.tool_choice');
  if (o['max_output_tokens'] !== undefined) next.max_output_tokens = parseMaxOutputTokens(o['max_output_tokens'], 'session.max_output_tokens');
  if (o['truncation'] !== undefined) next.truncation = parseTruncation(o['truncation'], 'session.truncation');
  if (o['prompt'] !== undefined) next.prompt = parsePrompt(o['prompt'], 'session.prompt');
  if (o['tracing'] !== undefined) {
    const tracing = parseTracing(o['tracing'], 'session.tracing');
    if (current.tracing !== null && JSON.stringify(tracing) !== JSON.stringify(current.tracing)) {
      throw new SimError('invalid_value', 'Tracing configuration cannot be modified once enabled.', 'session.tracing');
    }
    next.tracing = tracing;
  }
  if (o['include'] !== undefined) next.include = parseInclude(o['include'], 'session.include');
  if (o['reasoning'] !== undefined) next.reasoning = parseReasoning(o['reasoning'], 'session.reasoning');
  if (o['parallel_tool_calls'] !== undefined) next.parallel_tool_calls = expectBoolean(o['parallel_tool_calls'], 'session.parallel_tool_calls');
  return next;
}
