import { validateHeaderValue } from 'node:http';
import type { Config } from '../config/schema.js';
import { ProxyError } from '../protocol/errors.js';
import { isTranslationSession } from '../protocol/events.js';

export interface UpstreamTarget {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Client headers that may reach the upstream. Everything else (tenant keys, beta markers, cookies) stays here. */
const FORWARDED_CLIENT_HEADERS = ['openai-safety-identifier'] as const;

/**
 * Null when every client header that `upstreamTarget` forwards can be sent upstream; else the
 * client's own bad request (`invalid_request`, 400 before the upgrade). uWS accepts bytes in a
 * header value that Node's HTTP client refuses to send (a DEL byte, control characters, a character
 * above U+00FF): left for the dial, they failed as `upstream_unavailable` (close 1013), which SDKs
 * retry forever. Checked with the validator the upstream request itself runs. Never throws.
 */
export function forwardedHeaderProblem(clientHeaders: ReadonlyMap<string, string>): ProxyError | null {
  for (const name of FORWARDED_CLIENT_HEADERS) {
    const v = clientHeaders.get(name);
    if (!v) continue;
    try {
      validateHeaderValue(name, v);
    } catch {
      return new ProxyError('invalid_request', { message: `The ${name} header has a character that cannot be forwarded upstream (a control character, DEL, invalid UTF-8 or a character above U+00FF).`, param: name });
    }
  }
  return null;
}

/**
 * The only client query parameters that reach the upstream. Everything else (`api_key`,
 * `deployment`, `api-version`, unknown names) stays here: the upstream URL is the proxy's.
 */
export const FORWARDED_QUERY_PARAMS = ['model', 'intent', 'call_id'] as const;

type UpstreamConfig = Config['upstream'];
type AzureConfig = NonNullable<UpstreamConfig['azure']>;

/** What the client asked for, after the allowlist: `model` is the model that will actually be dialled. */
export interface ClientQuery {
  readonly model: string;
  readonly query: ReadonlyMap<string, string>;
  /** Names (never values: `api_key` is a secret) of parameters that were not forwarded. */
  readonly dropped: readonly string[];
}

const badRequest = (message: string, param: string) => new ProxyError('invalid_request', { message, param });

/** The model the Azure default deployment runs (pricing, allowlist and locks use it). */
export function azureDefaultModel(azure: AzureConfig): string {
  return azure.model ?? azure.deployment;
}

/** The configured deployment of `model` in `azure.deployments` (own keys only: `?model=constructor` is no key). */
function mappedDeployment(azure: AzureConfig, model: string): string | undefined {
  return Object.prototype.hasOwnProperty.call(azure.deployments, model) ? azure.deployments[model] : undefined;
}

/** The deployment that serves `model`, or null when none is configured for it. */
export function azureDeployment(azure: AzureConfig, model: string): string | null {
  const mapped = mappedDeployment(azure, model);
  if (mapped !== undefined) return mapped;
  return model === '' || model === azureDefaultModel(azure) || model === azure.deployment ? azure.deployment : null;
}

/**
 * The configured upstream speaks the Azure preview protocol (beta event names and session shape):
 * `azure.apiVersion` dials `/openai/realtime?api-version=…&deployment=…` instead of the GA
 * `/openai/v1/realtime`. Session locks cannot be held there (their locked start state is GA-shaped).
 */
export function speaksPreviewProtocol(config: UpstreamConfig): boolean {
  return config.provider === 'azure' && config.azure?.apiVersion !== undefined;
}

function azureModels(azure: AzureConfig): string {
  return [azureDefaultModel(azure), ...Object.keys(azure.deployments)].join(', ');
}

/**
 * Reads the client's upgrade query: refuses a repeated or empty allowed parameter and `call_id`
 * unless enabled, drops every other parameter, and (Azure) maps the requested model to a
 * configured deployment, so that the session's model is the one dialled.
 */
export function readClientQuery(raw: string, config: UpstreamConfig): ClientQuery | ProxyError {
  const query = new Map<string, string>();
  const dropped: string[] = [];
  for (const [name, value] of new URLSearchParams(raw)) {
    if (!(FORWARDED_QUERY_PARAMS as readonly string[]).includes(name)) {
      // Compared as kept (cut): a long name given twice is named once.
      const shown = name.slice(0, 64);
      if (!dropped.includes(shown) && dropped.length < 16) dropped.push(shown);
      continue;
    }
    if (query.has(name)) return badRequest(`The query parameter '${name}' is given more than once.`, name);
    if (value === '') return badRequest(`The query parameter '${name}' is empty.`, name);
    query.set(name, value);
  }
  if (query.has('call_id') && !config.allowCallId) {
    return badRequest("Attaching to a call with 'call_id' is not enabled on this proxy.", 'call_id');
  }
  const intent = query.get('intent');
  if (intent !== undefined && intent !== 'transcription') return badRequest(`Unknown intent '${intent.slice(0, 64)}' (supported: transcription).`, 'intent');
  // Contradictions the upstream would refuse only after the upgrade (one of model, intent, call_id):
  // refused here, before it, with the parameter named. A call's socket runs the call's session.
  if (query.has('call_id')) {
    const forwarded = query.has('model') ? 'model' : intent !== undefined ? 'intent' : null;
    if (forwarded !== null) return badRequest(`A socket attaching to a call ('call_id') runs the call's session: '${forwarded}' cannot be given with it.`, forwarded);
  }
  if (intent !== undefined && query.has('model')) {
    return badRequest("'model' cannot be given with intent=transcription: a transcription session names its model in session.audio.input.transcription.", 'model');
  }
  let model = query.get('model') ?? '';
  const azure = config.provider === 'azure' ? config.azure : undefined;
  if (azure) {
    if (model === '' && intent === undefined && !query.has('call_id')) model = azureDefaultModel(azure);
    else if (model !== '') {
      if (azureDeployment(azure, model) === null) {
        return badRequest(`Model '${model.slice(0, 64)}' is not deployed on this proxy's Azure upstream (available: ${azureModels(azure)}).`, 'model');
      }
      if (mappedDeployment(azure, model) === undefined) model = azureDefaultModel(azure);
    }
    if (model !== '') query.set('model', model);
  }
  return { model, query, dropped };
}

/**
 * The refusal of a translation session (`…/realtime/translations`) before the upgrade, or null when
 * it can be opened: it names its model (`?model=`) and nothing else (a translation session is neither
 * a transcription session nor a call's socket), and the upstream has a translations endpoint of the
 * same shape: OpenAI's `/v1/realtime/translations`, Azure's GA `/openai/v1/realtime/translations`.
 * The Azure preview protocol (`azure.apiVersion`) has none: refused, never dialled elsewhere.
 */
export function translationQueryProblem(config: UpstreamConfig, query: ReadonlyMap<string, string>): ProxyError | null {
  for (const name of ['intent', 'call_id'] as const) {
    if (query.has(name)) return badRequest(`A translation session ('/realtime/translations') takes no '${name}'.`, name);
  }
  if (!query.has('model')) return badRequest("A translation session ('/realtime/translations') needs its model: '?model=gpt-realtime-translate'.", 'model');
  if (speaksPreviewProtocol(config)) {
    return new ProxyError('invalid_request', {
      message: "This proxy's upstream speaks the Azure preview protocol (upstream.azure.apiVersion), which has no translation sessions.",
      param: 'model',
    });
  }
  return null;
}

/**
 * Null when `model` can be dialled; an error when it cannot (an Azure model rewritten at
 * admission, e.g. by a policy alias, to a model no deployment serves).
 */
export function undialableModel(config: UpstreamConfig, model: string): ProxyError | null {
  if (config.provider !== 'azure' || !config.azure || azureDeployment(config.azure, model) !== null) return null;
  return new ProxyError('invalid_request', { message: `Model '${model.slice(0, 64)}' is not deployed on this proxy's Azure upstream (available: ${azureModels(config.azure)}).`, param: 'model' });
}

/**
 * The upstream URL and headers for one session: the allowed client parameters (`clientQuery`
 * from `readClientQuery`); credentials, deployment and API version only from the proxy config.
 * Azure is dialled on the GA endpoint `/openai/v1/realtime?model=<deployment>` (a translation
 * session: `/openai/v1/realtime/translations`, and `…/translations` under `upstream.url`) unless
 * `azure.apiVersion` asks for the preview protocol.
 */
export function upstreamTarget(config: UpstreamConfig, clientQuery: ReadonlyMap<string, string>, clientHeaders: ReadonlyMap<string, string>): UpstreamTarget {
  const headers: Record<string, string> = { 'user-agent': 'realtime-governance-proxy/0.1' };
  for (const name of FORWARDED_CLIENT_HEADERS) {
    const v = clientHeaders.get(name);
    if (v) headers[name] = v;
  }
  const intent = clientQuery.get('intent');
  const callId = clientQuery.get('call_id');
  const model = clientQuery.get('model') ?? '';
  let url: URL;
  if (config.provider === 'azure') {
    const azure = config.azure;
    if (!azure) throw new Error('upstream.azure is required when upstream.provider is azure');
    const deployment = azureDeployment(azure, model);
    if (deployment === null) throw new Error(`no Azure deployment serves model ${model}`);
    const base = azure.endpoint.replace(/^http/, 'ws');
    if (azure.apiVersion !== undefined) {
      url = new URL('/openai/realtime', base);
      url.searchParams.set('api-version', azure.apiVersion);
      url.searchParams.set('deployment', deployment);
    } else {
      url = new URL(isTranslationSession(clientQuery) ? '/openai/v1/realtime/translations' : '/openai/v1/realtime', base);
      if (intent === undefined && callId === undefined) url.searchParams.set('model', deployment);
    }
    headers['api-key'] = config.apiKey;
  } else {
    url = new URL(config.url);
    // Translation sessions live under the realtime endpoint: `/v1/realtime` → `/v1/realtime/translations`.
    if (isTranslationSession(clientQuery)) url.pathname = `${url.pathname.replace(/\/+$/, '')}/translations`;
    if (model !== '') url.searchParams.set('model', model);
    headers['authorization'] = `Bearer ${config.apiKey}`;
    if (config.organization) headers['openai-organization'] = config.organization;
    if (config.project) headers['openai-project'] = config.project;
  }
  if (intent !== undefined) url.searchParams.set('intent', intent);
  if (callId !== undefined && config.allowCallId) url.searchParams.set('call_id', callId);
  return { url: url.toString(), headers };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

/**
 * Client frames must be masked (RFC 6455) so that attacker-chosen bytes never appear in clear to a
 * transparent intermediary. Over TLS no intermediary sees them, and loopback has none: there an
 * all-zero mask is equivalent, and relayed bytes go out as they are (client-frame.ts).
 */
export function maskingIsMoot(url: string): boolean {
  const u = new URL(url);
  return u.protocol === 'wss:' || LOOPBACK.test(u.hostname);
}
