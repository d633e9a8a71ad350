import { describe, expect, it } from 'vitest';
import { authRefusalOf, authRefusalOfCloseReason, authRefusalOfReply, UPSTREAM_CREDENTIALS_MESSAGE, upstreamAuthRejected } from './auth-refusal.js';

const MASKED = 'Incorrect API key provided: sk-proj-*********************************WXYZ. You can find your API key at https://platform.openai.com/account/api-keys.';
const openAiBody = (code: string, type = 'invalid_request_error') => JSON.stringify({ error: { message: MASKED, type, param: null, code } });

describe("the upstream refusing the proxy's own credentials (2026-12-06)", () => {
  it("an error event's invalid_api_key (and the other credential codes and types) is a refusal, with its detail for the log", () => {
    expect(authRefusalOf({ type: 'invalid_request_error', code: 'invalid_api_key', message: MASKED, param: null })).toEqual({ status: null, code: 'invalid_api_key', type: 'invalid_request_error', message: MASKED.slice(0, 200) });
    for (const code of ['invalid_organization', 'mismatched_organization', 'invalid_project', 'mismatched_project', 'account_deactivated']) expect(authRefusalOf({ code })?.code).toBe(code);
    for (const type of ['authentication_error', 'permission_error']) expect(authRefusalOf({ type, code: null })?.type).toBe(type);
  });

  it('other upstream errors are not (they go on to the client as before)', () => {
    for (const e of [{ type: 'invalid_request_error', code: 'invalid_value', message: 'x' }, { code: 'session_expired' }, { type: 'server_error' }, null, 'invalid_api_key', ['invalid_api_key'], {}]) expect(authRefusalOf(e)).toBeNull();
    // A code that is not a short name is not read as one.
    expect(authRefusalOf({ code: 'invalid_api_key extra words' })).toBeNull();
  });

  it('an HTTP answer: 401 and 403 whatever the body, another 4xx/5xx with a credential code, never a 2xx', () => {
    expect(authRefusalOfReply(401, Buffer.from(openAiBody('invalid_api_key')))).toMatchObject({ status: 401, code: 'invalid_api_key' });
    expect(authRefusalOfReply(403, Buffer.from('<html>forbidden</html>'))).toEqual({ status: 403, code: null, type: null, message: null });
    expect(authRefusalOfReply(400, Buffer.from(openAiBody('invalid_organization')))).toMatchObject({ status: 400, code: 'invalid_organization' });
    expect(authRefusalOfReply(400, Buffer.from(openAiBody('invalid_offer')))).toBeNull();
    expect(authRefusalOfReply(404, Buffer.from(openAiBody('call_not_found')))).toBeNull();
    expect(authRefusalOfReply(502, Buffer.from('not json'))).toBeNull();
    expect(authRefusalOfReply(200, Buffer.from(openAiBody('invalid_api_key')))).toBeNull();
    expect(authRefusalOfReply(201, '')).toBeNull();
  });

  it("a close reason as OpenAI sends it ('invalid_request_error.invalid_api_key'), not other reasons", () => {
    expect(authRefusalOfCloseReason('invalid_request_error.invalid_api_key')).toEqual({ status: null, code: 'invalid_api_key', type: 'invalid_request_error', message: null });
    expect(authRefusalOfCloseReason('invalid_api_key')).toMatchObject({ code: 'invalid_api_key', type: null });
    expect(authRefusalOfCloseReason('authentication_error.whatever')).toMatchObject({ type: 'authentication_error' });
    for (const r of ['', 'invalid_request_error.missing_model', 'Your session hit the maximum duration of 60 minutes.', 'invalid_request_error.beta_api_shape_disabled']) expect(authRefusalOfCloseReason(r)).toBeNull();
  });

  it("the tenant's error: upstream_rejected with a fixed message, nothing of the upstream's text; the status when there was one", () => {
    const e = upstreamAuthRejected({ status: null, code: 'invalid_api_key', type: 'invalid_request_error', message: MASKED });
    expect(e.toHttpBody()).toEqual({ error: { type: 'server_error', code: 'upstream_rejected', message: UPSTREAM_CREDENTIALS_MESSAGE, param: null } });
    // 4101, not the catalogue's 1011 (which the openai SDK's reconnect retries).
    expect(e.closeCode).toBe(4101);
    const r = upstreamAuthRejected({ status: 401, code: 'invalid_api_key', type: null, message: MASKED }, null);
    expect(r.httpStatus).toBe(502);
    expect(r.closeCode).toBeNull();
    expect(JSON.stringify(r.toHttpBody())).not.toMatch(/sk-proj|WXYZ|invalid_api_key/);
    expect(r.details).toEqual({ status: 401 });
  });
});
