import { startTestProxy, type TestProxy } from '../support/harness.js';
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
