import { describe, expect, it } from 'vitest';
import { presentedCredentials } from './auth.js';

const h = (o: Record<string, string>) => new Map(Object.entries(o));

describe('presentedCredentials', () => {
  it('reads a bearer key and answers no subprotocol for header clients', () => {
    expect(presentedCredentials(h({ authorization: 'Bearer rpk_abc' }))).toEqual({
      key: 'rpk_abc',
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
    expect(c).toEqual({ key: 'ek_secret', browser: true, protocol: 'realtime', betaMarker: false });
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
});
