import { describe, expect, it } from 'vitest';
import { parseSubprotocols, presentedCredentials } from './auth.js';

const h = (o: Record<string, string>) => new Map(Object.entries(o));

describe('presentedCredentials', () => {
  it('reads a bearer key and answers no subprotocol for header clients', () => {
    expect(presentedCredentials(h({ authorization: 'Bearer rpk_abc' }))).toEqual({
      key: 'rpk_abc',
      ambiguous: false,
      browser: false,
      protocol: '',
      betaMarker: false,
    });
  });

  it('reads the Azure-style api-key header', () => {
    expect(presentedCredentials(h({ 'api-key': 'rpk_azure' })).key).toBe('rpk_azure');
  });

  it('reads the browser subprotocol key and echoes realtime, never the key entry', () => {
    const c = presentedCredentials(
      h({ 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.ek_secret, openai-project.proj_1, openai-agents-sdk.0.20.0' }),
    );
    expect(c).toEqual({ key: 'ek_secret', ambiguous: false, browser: true, protocol: 'realtime', betaMarker: false });
  });

  it('treats subprotocol clients without a key as browsers', () => {
    const c = presentedCredentials(h({ 'sec-websocket-protocol': 'realtime' }));
    expect(c.key).toBeNull();
    expect(c.browser).toBe(true);
  });

  it('detects the retired beta markers', () => {
    expect(presentedCredentials(h({ authorization: 'Bearer k', 'openai-beta': 'realtime=v1' })).betaMarker).toBe(true);
    const c = presentedCredentials(h({ 'sec-websocket-protocol': 'realtime, openai-beta.realtime-v1, openai-insecure-api-key.k' }));
    expect(c.betaMarker).toBe(true);
    expect(c.protocol).toBe('realtime');
  });

  it('parses a bearer header strictly: scheme any case, one token, surrounding spaces', () => {
    expect(presentedCredentials(h({ authorization: 'bearer rpk_lower' })).key).toBe('rpk_lower');
    expect(presentedCredentials(h({ authorization: 'BEARER   rpk_spaced   ' })).key).toBe('rpk_spaced');
    expect(presentedCredentials(h({ authorization: 'Bearer rpk_a rpk_b' })).key).toBeNull();
    expect(presentedCredentials(h({ authorization: 'Basic cnBrOng=' })).key).toBeNull();
    expect(presentedCredentials(h({ authorization: 'XBearer rpk_x' })).key).toBeNull();
    expect(presentedCredentials(h({ authorization: 'Bearer' })).key).toBeNull();
    expect(presentedCredentials(h({ authorization: '' })).key).toBeNull();
  });

  it('refuses two carriers of a key instead of letting one win (Authorization, api-key, subprotocols), whether the keys differ or not', () => {
    const sub = 'realtime, openai-insecure-api-key.rpk_sub';
    const ambiguous = (o: Record<string, string>) => expect(presentedCredentials(h(o))).toMatchObject({ key: null, ambiguous: true });
    ambiguous({ authorization: 'Bearer rpk_bearer', 'api-key': 'rpk_api' });
    ambiguous({ authorization: 'Bearer rpk_bearer', 'api-key': 'rpk_api', 'sec-websocket-protocol': sub });
    ambiguous({ authorization: 'Bearer rpk_bearer', 'sec-websocket-protocol': sub });
    ambiguous({ 'api-key': 'rpk_api', 'sec-websocket-protocol': sub });
    ambiguous({ 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.rpk_a, openai-insecure-api-key.rpk_b' });
    // The same key twice is refused too, as a repeated Authorization or api-key header is.
    ambiguous({ authorization: 'Bearer rpk_same', 'api-key': 'rpk_same' });
    ambiguous({ 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.rpk_same, openai-insecure-api-key.rpk_same' });
    // A malformed bearer beside another key: a front end may read it otherwise.
    ambiguous({ authorization: 'Bearer rpk_a rpk_b', 'api-key': 'rpk_api' });
    // Two subprotocol keys: a browser (it is answered with an error event and close 4000).
    expect(presentedCredentials(h({ 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.a, openai-insecure-api-key.b' })).browser).toBe(true);
    expect(presentedCredentials(h({ authorization: 'Bearer a', 'sec-websocket-protocol': sub })).browser).toBe(false);
  });

  it('a carrier that presents no key does not count: another scheme, a bare Bearer, a blank api-key, an empty subprotocol key', () => {
    const all = { authorization: 'Bearer rpk_bearer', 'api-key': 'rpk_api', 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.rpk_sub' };
    expect(presentedCredentials(h({ 'api-key': all['api-key'], authorization: 'Basic x' }))).toEqual({ key: 'rpk_api', ambiguous: false, browser: false, protocol: '', betaMarker: false });
    expect(presentedCredentials(h({ 'api-key': all['api-key'], authorization: 'Bearer  ' })).key).toBe('rpk_api');
    expect(presentedCredentials(h({ 'sec-websocket-protocol': all['sec-websocket-protocol'], 'api-key': '' }))).toEqual({ key: 'rpk_sub', ambiguous: false, browser: true, protocol: 'realtime', betaMarker: false });
    expect(presentedCredentials(h({ authorization: all.authorization, 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.' }))).toEqual({ key: 'rpk_bearer', ambiguous: false, browser: false, protocol: 'realtime', betaMarker: false });
  });

  it('trims the api-key header and treats a blank one as no key', () => {
    expect(presentedCredentials(h({ 'api-key': '  rpk_padded \t' })).key).toBe('rpk_padded');
    expect(presentedCredentials(h({ 'api-key': '   ' }))).toEqual({ key: null, ambiguous: false, browser: false, protocol: '', betaMarker: false });
  });

  it('an empty subprotocol key is no key, but the client is still a browser', () => {
    expect(presentedCredentials(h({ 'sec-websocket-protocol': 'realtime, openai-insecure-api-key.' }))).toEqual({ key: null, ambiguous: false, browser: true, protocol: 'realtime', betaMarker: false });
  });

  it('a client with no credential and no subprotocol is a header client', () => {
    expect(presentedCredentials(h({}))).toEqual({ key: null, ambiguous: false, browser: false, protocol: '', betaMarker: false });
  });

  it('echoes realtime when offered, else the first public non-beta entry, never a private one', () => {
    expect(presentedCredentials(h({ 'sec-websocket-protocol': 'openai-insecure-api-key.k, custom-a, realtime' })).protocol).toBe('realtime');
    expect(presentedCredentials(h({ 'sec-websocket-protocol': 'openai-insecure-api-key.k, openai-beta.realtime-v1, custom-a, custom-b' })).protocol).toBe('custom-a');
    expect(presentedCredentials(h({ 'sec-websocket-protocol': 'openai-insecure-api-key.k, openai-organization.org_1, openai-project.proj_1' })).protocol).toBe('');
    expect(presentedCredentials(h({ 'sec-websocket-protocol': 'openai-beta.realtime-v1, openai-insecure-api-key.k' })).protocol).toBe('');
  });

  it('detects the beta header in any case, and only that value', () => {
    expect(presentedCredentials(h({ 'openai-beta': 'REALTIME=V1' })).betaMarker).toBe(true);
    expect(presentedCredentials(h({ 'openai-beta': 'assistants=v2' })).betaMarker).toBe(false);
    expect(presentedCredentials(h({ 'sec-websocket-protocol': 'realtime' })).betaMarker).toBe(false);
  });
});

describe('parseSubprotocols', () => {
  it('splits on commas, trims, drops empty entries', () => {
    expect(parseSubprotocols(undefined)).toEqual([]);
    expect(parseSubprotocols('')).toEqual([]);
    expect(parseSubprotocols(' a ,, b,  ,c ')).toEqual(['a', 'b', 'c']);
    expect(parseSubprotocols('realtime')).toEqual(['realtime']);
  });
});
