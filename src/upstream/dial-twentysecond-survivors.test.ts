import { describe, expect, it } from 'vitest';
import { parseConfig } from '../config/load.js';
import type { ConfigInput } from '../config/schema.js';
import { ProxyError } from '../protocol/errors.js';
import { TRANSLATION_SESSION_KEY } from '../protocol/events.js';
import {
  azureDefaultModel,
  azureDeployment,
  forwardedHeaderProblem,
  maskingIsMoot,
  readClientQuery,
  speaksPreviewProtocol,
  translationQueryProblem,
  undialableModel,
  upstreamTarget,
  type ClientQuery,
} from './dial.js';

/**
 * Mutation survivors of src/upstream/dial.ts (twenty-second session): which client parameters and
 * headers reach the upstream, the Azure URL forms and the model dialled, asserted on the exact
 * values the proxy builds (the upgrade tests in test/governance/edges-query.test.ts show them on
 * the wire). The real upstream key is only ever the proxy's; a client's never appears.
 */

type Upstream = ReturnType<typeof parseConfig>['upstream'];
/** Parsed once per distinct input (the schema's parse is the slow part of these tests). */
const parsed = new Map<string, Upstream>();
function upstreamOf(upstream: NonNullable<ConfigInput['upstream']>): Upstream {
  const key = JSON.stringify(upstream);
  const known = parsed.get(key);
  if (known) return known;
  const config = parseConfig({ upstream }, '(test)', {}).upstream;
  parsed.set(key, config);
  return config;
}

const openai = (extra: Partial<NonNullable<ConfigInput['upstream']>> = {}) =>
  upstreamOf({ provider: 'openai', url: 'wss://api.example.test/v1/realtime', apiKey: 'sk-proxy-own', ...extra });
const azure = (extra: Record<string, unknown> = {}, upstream: Partial<NonNullable<ConfigInput['upstream']>> = {}) =>
  upstreamOf({
    provider: 'azure',
    apiKey: 'azure-proxy-own',
    azure: { endpoint: 'https://res.openai.azure.test', deployment: 'prod-realtime', model: 'gpt-realtime', deployments: { 'gpt-realtime-mini': 'prod-mini' }, ...extra },
    ...upstream,
  });

function read(raw: string, config: Upstream): ClientQuery {
  const q = readClientQuery(raw, config);
  if (q instanceof ProxyError) throw new Error(`refused: ${q.message}`);
  return q;
}
function refusal(raw: string, config: Upstream): { code: string; param: string | null; message: string; status: number } {
  const q = readClientQuery(raw, config);
  if (!(q instanceof ProxyError)) throw new Error(`admitted ?${raw}`);
  return { code: q.code, param: q.param, message: q.message, status: q.httpStatus };
}

describe('forwardedHeaderProblem: the refusal names the header it cannot forward', () => {
  it('a DEL byte in OpenAI-Safety-Identifier is a 400 invalid_request with the header as param and the reason', () => {
    const problem = forwardedHeaderProblem(new Map([['openai-safety-identifier', 'user\x7f1']]));
    expect(problem?.code).toBe('invalid_request');
    expect(problem?.httpStatus).toBe(400);
    expect(problem?.param).toBe('openai-safety-identifier');
    expect(problem?.message).toBe(
      'The openai-safety-identifier header has a character that cannot be forwarded upstream (a control character, DEL, invalid UTF-8 or a character above U+00FF).',
    );
  });

  it('an absent or empty header and other headers are no problem', () => {
    expect(forwardedHeaderProblem(new Map())).toBeNull();
    expect(forwardedHeaderProblem(new Map([['openai-safety-identifier', '']]))).toBeNull();
    expect(forwardedHeaderProblem(new Map([['x-other', 'bad\x7f']]))).toBeNull();
  });
});

describe('readClientQuery: the allowlist, its refusals and what it reports as dropped', () => {
  it('names each dropped parameter once, cut to 64 characters, at most 16 names, never a value', () => {
    const long = 'n'.repeat(100);
    // A long name given twice is named once (until 2026-12-07 it was compared uncut with the cut names kept: listed each time).
    const q = read(`api_key=sk-secret&deployment=d&api_key=again&${long}=v&${long}=w`, openai());
    expect(q.dropped).toEqual(['api_key', 'deployment', 'n'.repeat(64)]);
    expect([...q.query]).toEqual([]);
    expect(q.model).toBe('');
    const many = Array.from({ length: 20 }, (_, i) => `p${i}=x`).join('&');
    expect(read(many, openai()).dropped).toEqual(Array.from({ length: 16 }, (_, i) => `p${i}`));
  });

  it('the refusals carry their exact messages and params', () => {
    expect(refusal('model=a&model=b', openai())).toEqual({ code: 'invalid_request', status: 400, param: 'model', message: "The query parameter 'model' is given more than once." });
    expect(refusal('intent=', openai())).toEqual({ code: 'invalid_request', status: 400, param: 'intent', message: "The query parameter 'intent' is empty." });
    expect(refusal('call_id=rtc_1', openai())).toEqual({ code: 'invalid_request', status: 400, param: 'call_id', message: "Attaching to a call with 'call_id' is not enabled on this proxy." });
    expect(refusal(`intent=${'x'.repeat(100)}`, openai())).toEqual({
      code: 'invalid_request',
      status: 400,
      param: 'intent',
      message: `Unknown intent '${'x'.repeat(64)}' (supported: transcription).`,
    });
  });

  it('contradictions name the parameter: model on a call socket or with intent=transcription, intent on a call socket', () => {
    const allowed = openai({ allowCallId: true });
    expect(refusal('call_id=rtc_1&intent=transcription', allowed)).toEqual({
      code: 'invalid_request',
      status: 400,
      param: 'intent',
      message: "A socket attaching to a call ('call_id') runs the call's session: 'intent' cannot be given with it.",
    });
    expect(refusal('call_id=rtc_1&model=gpt-realtime', allowed)).toEqual({
      code: 'invalid_request',
      status: 400,
      param: 'model',
      message: "A socket attaching to a call ('call_id') runs the call's session: 'model' cannot be given with it.",
    });
    expect(refusal('intent=transcription&model=gpt-realtime', allowed)).toEqual({
      code: 'invalid_request',
      status: 400,
      param: 'model',
      message: "'model' cannot be given with intent=transcription: a transcription session names its model in session.audio.input.transcription.",
    });
    expect(refusal('model=', allowed)).toEqual({ code: 'invalid_request', status: 400, param: 'model', message: "The query parameter 'model' is empty." });
    expect(read('intent=transcription', allowed)).toEqual({ model: '', query: new Map([['intent', 'transcription']]), dropped: [] });
    expect(read('call_id=rtc_1', allowed)).toEqual({ model: '', query: new Map([['call_id', 'rtc_1']]), dropped: [] });
  });

  it('an OpenAI upstream keeps the model as asked (no Azure mapping, even with an azure section) and no model when none was asked', () => {
    expect(read('model=gpt-realtime-mini', openai())).toEqual({ model: 'gpt-realtime-mini', query: new Map([['model', 'gpt-realtime-mini']]), dropped: [] });
    const withAzureSection = openai({ azure: { endpoint: 'https://x.test', deployment: 'd' } });
    expect(read('model=gpt-4o', withAzureSection)).toEqual({ model: 'gpt-4o', query: new Map([['model', 'gpt-4o']]), dropped: [] });
    expect(read('', withAzureSection)).toEqual({ model: '', query: new Map(), dropped: [] });
    expect(read('', openai())).toEqual({ model: '', query: new Map(), dropped: [] });
  });

  it('Azure: no model is the default deployment\'s model; a transcription or call socket gets no model', () => {
    expect(read('', azure())).toEqual({ model: 'gpt-realtime', query: new Map([['model', 'gpt-realtime']]), dropped: [] });
    expect(read('intent=transcription', azure())).toEqual({ model: '', query: new Map([['intent', 'transcription']]), dropped: [] });
    expect(read('call_id=rtc_1', azure({}, { allowCallId: true }))).toEqual({ model: '', query: new Map([['call_id', 'rtc_1']]), dropped: [] });
  });

  it('Azure: a mapped model stays itself; the deployment name becomes the model it runs', () => {
    expect(read('model=gpt-realtime-mini', azure()).model).toBe('gpt-realtime-mini');
    expect(read('model=prod-realtime', azure())).toEqual({ model: 'gpt-realtime', query: new Map([['model', 'gpt-realtime']]), dropped: [] });
  });

  it('Azure: a model no deployment serves is refused with the models available, the name cut to 64 characters', () => {
    const r = refusal(`model=${'m'.repeat(80)}`, azure());
    expect(r).toEqual({
      code: 'invalid_request',
      status: 400,
      param: 'model',
      message: `Model '${'m'.repeat(64)}' is not deployed on this proxy's Azure upstream (available: gpt-realtime, gpt-realtime-mini).`,
    });
  });
});

describe('Azure deployments', () => {
  it('the default model is the configured model, else the deployment', () => {
    expect(azureDefaultModel({ endpoint: 'https://x.test', deployment: 'dep', model: 'mod', deployments: {} })).toBe('mod');
    expect(azureDefaultModel({ endpoint: 'https://x.test', deployment: 'dep', deployments: {} })).toBe('dep');
  });

  it('an empty model, the default model and the deployment name dial the default deployment; mapped models their own; others none', () => {
    const a = { endpoint: 'https://x.test', deployment: 'dep', model: 'mod', deployments: { mini: 'dep-mini' } };
    expect(azureDeployment(a, '')).toBe('dep');
    expect(azureDeployment(a, 'mod')).toBe('dep');
    expect(azureDeployment(a, 'dep')).toBe('dep');
    expect(azureDeployment(a, 'mini')).toBe('dep-mini');
    expect(azureDeployment(a, 'other')).toBeNull();
    expect(azureDeployment(a, 'toString')).toBeNull();
  });

  it('undialableModel: only an Azure model no deployment serves, with the models available', () => {
    expect(undialableModel(openai(), 'anything')).toBeNull();
    expect(undialableModel(upstreamOf({ provider: 'azure', apiKey: 'k' }), 'anything')).toBeNull();
    // An azure section under another provider is not dialled.
    expect(undialableModel(openai({ azure: { endpoint: 'https://x.test', deployment: 'd' } }), 'gpt-4o')).toBeNull();
    expect(undialableModel(azure(), 'gpt-realtime-mini')).toBeNull();
    const e = undialableModel(azure(), `x${'y'.repeat(80)}`);
    expect(e?.code).toBe('invalid_request');
    expect(e?.param).toBe('model');
    expect(e?.message).toBe(`Model 'x${'y'.repeat(63)}' is not deployed on this proxy's Azure upstream (available: gpt-realtime, gpt-realtime-mini).`);
  });

  it('the preview protocol is Azure with an apiVersion only', () => {
    expect(speaksPreviewProtocol(azure({ apiVersion: '2025-04-01-preview' }))).toBe(true);
    expect(speaksPreviewProtocol(azure())).toBe(false);
    expect(speaksPreviewProtocol(upstreamOf({ provider: 'azure', apiKey: 'k' }))).toBe(false);
    // An azure section under another provider is not dialled: no preview protocol.
    expect(speaksPreviewProtocol(openai({ azure: { endpoint: 'https://x.test', deployment: 'd', apiVersion: '2025-04-01-preview' } }))).toBe(false);
  });
});

describe('translationQueryProblem', () => {
  const translation = (entries: [string, string][]) => new Map([[TRANSLATION_SESSION_KEY, ''], ...entries]);

  it('names intent or call_id as the parameter a translation session does not take', () => {
    expect(translationQueryProblem(openai(), translation([['intent', 'transcription']]))).toMatchObject({
      code: 'invalid_request',
      param: 'intent',
      message: "A translation session ('/realtime/translations') takes no 'intent'.",
    });
    expect(translationQueryProblem(openai(), translation([['model', 'm'], ['call_id', 'rtc_1']]))).toMatchObject({
      param: 'call_id',
      message: "A translation session ('/realtime/translations') takes no 'call_id'.",
    });
  });

  it('needs a model; refused on the Azure preview protocol; else none', () => {
    expect(translationQueryProblem(openai(), translation([]))).toMatchObject({
      code: 'invalid_request',
      param: 'model',
      message: "A translation session ('/realtime/translations') needs its model: '?model=gpt-realtime-translate'.",
    });
    expect(translationQueryProblem(azure({ apiVersion: '2025-04-01-preview' }), translation([['model', 'gpt-realtime']]))).toMatchObject({
      code: 'invalid_request',
      param: 'model',
      message: "This proxy's upstream speaks the Azure preview protocol (upstream.azure.apiVersion), which has no translation sessions.",
    });
    expect(translationQueryProblem(azure(), translation([['model', 'gpt-realtime']]))).toBeNull();
    expect(translationQueryProblem(openai(), translation([['model', 'gpt-realtime-translate']]))).toBeNull();
  });
});

describe('upstreamTarget: the URL and headers dialled', () => {
  const none = new Map<string, string>();

  it('OpenAI: the proxy\'s key, organization and project, its user agent, the safety identifier; nothing else of the client\'s', () => {
    const t = upstreamTarget(
      openai({ organization: 'org-1', project: 'proj-1' }),
      new Map([['model', 'gpt-realtime']]),
      new Map([
        ['openai-safety-identifier', 'user-1'],
        ['authorization', 'Bearer rpk_tenant_key'],
        ['openai-organization', 'org-client'],
      ]),
    );
    expect(t).toStrictEqual({
      url: 'wss://api.example.test/v1/realtime?model=gpt-realtime',
      headers: {
        'user-agent': 'realtime-governance-proxy/0.1',
        'openai-safety-identifier': 'user-1',
        authorization: 'Bearer sk-proxy-own',
        'openai-organization': 'org-1',
        'openai-project': 'proj-1',
      },
    });
    // Without them configured, none is sent; an empty safety identifier is not forwarded.
    expect(upstreamTarget(openai(), none, new Map([['openai-safety-identifier', '']]))).toStrictEqual({
      url: 'wss://api.example.test/v1/realtime',
      headers: { 'user-agent': 'realtime-governance-proxy/0.1', authorization: 'Bearer sk-proxy-own' },
    });
  });

  it('OpenAI translation sessions: /translations under the configured path, trailing slashes dropped', () => {
    const q = new Map([[TRANSLATION_SESSION_KEY, ''], ['model', 'gpt-realtime-translate']]);
    expect(upstreamTarget(openai({ url: 'wss://api.example.test/v1/realtime//' }), q, none).url).toBe('wss://api.example.test/v1/realtime/translations?model=gpt-realtime-translate');
    expect(upstreamTarget(openai({ url: 'wss://api.example.test/v1/realtime' }), q, none).url).toBe('wss://api.example.test/v1/realtime/translations?model=gpt-realtime-translate');
  });

  it('call_id goes upstream only when enabled; intent alone', () => {
    const q = new Map([['call_id', 'rtc_1']]);
    expect(upstreamTarget(openai(), q, none).url).toBe('wss://api.example.test/v1/realtime');
    expect(upstreamTarget(openai({ allowCallId: true }), q, none).url).toBe('wss://api.example.test/v1/realtime?call_id=rtc_1');
    // Enabled, a socket that names no call names none upstream.
    expect(upstreamTarget(openai({ allowCallId: true }), new Map([['model', 'gpt-realtime']]), none).url).toBe('wss://api.example.test/v1/realtime?model=gpt-realtime');
    expect(upstreamTarget(openai(), new Map([['intent', 'transcription']]), none).url).toBe('wss://api.example.test/v1/realtime?intent=transcription');
  });

  it('Azure GA: wss on the endpoint, the deployment as model, the api-key header alone', () => {
    expect(upstreamTarget(azure(), new Map([['model', 'gpt-realtime-mini']]), new Map([['openai-safety-identifier', 'u']]))).toStrictEqual({
      url: 'wss://res.openai.azure.test/openai/v1/realtime?model=prod-mini',
      headers: { 'user-agent': 'realtime-governance-proxy/0.1', 'openai-safety-identifier': 'u', 'api-key': 'azure-proxy-own' },
    });
    expect(upstreamTarget(azure({ endpoint: 'http://127.0.0.1:9' }), none, none).url).toBe('ws://127.0.0.1:9/openai/v1/realtime?model=prod-realtime');
    // Only the scheme is rewritten: an endpoint already ws(s) keeps an http inside its name.
    expect(upstreamTarget(azure({ endpoint: 'wss://http-res.example.test' }), none, none).url).toBe('wss://http-res.example.test/openai/v1/realtime?model=prod-realtime');
  });

  it('Azure GA: a transcription or call socket names no deployment; a translation session its endpoint', () => {
    expect(upstreamTarget(azure(), new Map([['intent', 'transcription']]), none).url).toBe('wss://res.openai.azure.test/openai/v1/realtime?intent=transcription');
    expect(upstreamTarget(azure({}, { allowCallId: true }), new Map([['call_id', 'rtc_1']]), none).url).toBe('wss://res.openai.azure.test/openai/v1/realtime?call_id=rtc_1');
    expect(upstreamTarget(azure(), new Map([[TRANSLATION_SESSION_KEY, ''], ['model', 'gpt-realtime']]), none).url).toBe(
      'wss://res.openai.azure.test/openai/v1/realtime/translations?model=prod-realtime',
    );
  });

  it('Azure preview: api-version and deployment from the config only', () => {
    const t = upstreamTarget(azure({ apiVersion: '2025-04-01-preview' }), new Map([['model', 'gpt-realtime-mini']]), none);
    expect(t.url).toBe('wss://res.openai.azure.test/openai/realtime?api-version=2025-04-01-preview&deployment=prod-mini');
    expect(t.headers).toStrictEqual({ 'user-agent': 'realtime-governance-proxy/0.1', 'api-key': 'azure-proxy-own' });
  });

  it('Azure without its section, or a model no deployment serves, is never dialled', () => {
    const noSection = upstreamOf({ provider: 'azure', apiKey: 'k' });
    expect(() => upstreamTarget(noSection, none, none)).toThrow('upstream.azure is required when upstream.provider is azure');
    expect(() => upstreamTarget(azure(), new Map([['model', 'gpt-4o']]), none)).toThrow('no Azure deployment serves model gpt-4o');
  });
});

describe('maskingIsMoot: zero masks only over TLS or to loopback', () => {
  it('wss: anywhere and ws: to loopback are moot', () => {
    expect(maskingIsMoot('wss://api.example.test/v1/realtime')).toBe(true);
    expect(maskingIsMoot('ws://127.0.0.1:9/v1')).toBe(true);
    expect(maskingIsMoot('ws://127.10.200.31:9/v1')).toBe(true);
    expect(maskingIsMoot('ws://localhost:9/v1')).toBe(true);
    expect(maskingIsMoot('ws://[::1]:9/v1')).toBe(true);
  });

  it('ws: to any other host masks, however much of the name looks like loopback', () => {
    for (const url of ['ws://api.example.test/v1', 'ws://notlocalhost/v1', 'ws://localhost.example.test/v1', 'ws://127.0.0.1.example.test/v1', 'ws://x127.0.0.1y.test/v1', 'ws://10.0.0.1/v1', 'ws://[::2]/v1']) {
      expect(maskingIsMoot(url), url).toBe(false);
    }
  });
});
