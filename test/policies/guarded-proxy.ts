import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { policyDir } from './support.js';

/*
 * Apart from ./support.ts, which tests that measure their own heap import: this one loads the whole
 * proxy harness.
 */

/** A proxy whose tenant `acme` runs the policy `yaml` (named `guarded`) in front of the scripted upstream at `upstreamUrl`. */
export function guardedProxy(upstreamUrl: string, yaml: string): Promise<TestProxy> {
  return startTestProxy({
    tenants: { acme: { policy: 'guarded' } },
    config: { upstream: { provider: 'openai', url: upstreamUrl, apiKey: 'sk-upstream' }, policies: { dir: policyDir({ 'guarded.yaml': yaml }), watch: false } },
  });
}

/** A client of `proxy`'s tenant with every text frame it receives, as received (after its session.created). */
export async function clientWithFrames(proxy: TestProxy): Promise<{ c: TestClient; raw: string[] }> {
  const c = await proxy.client();
  const raw: string[] = [];
  c.ws.on('message', (data, isBinary) => {
    if (!isBinary) raw.push((data as Buffer).toString('utf8'));
  });
  await c.next('session.created');
  return { c, raw };
}

/** The codes of the `error` events `c` received. */
export const errorCodes = (c: TestClient): unknown[] => c.ofType('error').map((e) => (e['error'] as { code?: unknown }).code);

/** The types of the frames (raw text) that contain `text`. */
export const showing = (raw: readonly string[], text: string): unknown[] => raw.filter((f) => f.includes(text)).map((f) => (JSON.parse(f) as { type?: unknown }).type);
