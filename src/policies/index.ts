import { isAbsolute, resolve } from 'node:path';
import { json, type ModuleDeps, type ProxyModule } from '../app/module.js';
import { PolicyError, type ModuleLoader } from './compile.js';
import { guardrailsFactory } from './guardrails.js';
import { warnGuardrailsOutlastingLinger } from './linger.js';
import { locksFactory } from './locks.js';
import { PolicyRegistry } from './registry.js';
import { speaksPreviewProtocol } from '../upstream/dial.js';
import { truncationFactory } from './truncation.js';

export { PolicyError } from './compile.js';
export { PolicyRegistry } from './registry.js';
export { resolveModel } from './locks.js';

export interface PoliciesModule extends ProxyModule {
  readonly registry: PolicyRegistry;
}

export interface PoliciesModuleOptions {
  /** Custom module loader (tests). */
  readonly loadModule?: ModuleLoader;
}

/**
 * The policy concern: loads `policies/` and contributes three filters, in this order:
 *
 * 1. `policies.locks`: rewrites/rejects client session.update / response.create first, so the
 *    other filters see the locked request; upstream → client it runs last (session.created
 *    injection, function-call allowlist) after the guardrails have seen the frame.
 * 2. `policies.guardrails`: content rules on both directions.
 * 3. `policies.truncation`: sees client response.create last (after locks and guardrails
 *    accepted it) and server conversation events first, before anything can drop them.
 */
export async function createPoliciesModule(deps: ModuleDeps, options: PoliciesModuleOptions = {}): Promise<PoliciesModule> {
  const cfg = deps.config.policies;
  const dir = cfg.dir === undefined ? resolve(deps.baseDir, 'policies') : isAbsolute(cfg.dir) ? cfg.dir : resolve(deps.baseDir, cfg.dir);
  const log = deps.log.child({ module: 'policies' });
  const registry = await PolicyRegistry.load({
    dir,
    dirRequired: cfg.dir !== undefined,
    defaultName: cfg.default,
    watch: cfg.watch,
    debounceMs: cfg.watchDebounceMs,
    log,
    ...(options.loadModule ? { loadModule: options.loadModule } : {}),
  });
  const unknown = [...deps.tenants.tenants.values()].filter((t) => t.policy !== null && !registry.has(t.policy));
  if (unknown.length > 0) {
    registry.close();
    throw new PolicyError(
      dir,
      unknown.map((t) => `tenants.${t.id}.policy: no policy named "${t.policy}" (known: ${registry.entries().map((e) => e.name).join(', ')})`),
    );
  }
  log.info({ dir, policies: registry.entries().map((e) => ({ name: e.name, version: e.current.version })), watch: cfg.watch }, 'policies loaded');
  // At boot the config's check warned already (src/config/compile.ts); a reload may bring a slower guardrail.
  const lingerMs = deps.config.metering.enabled ? deps.config.metering.lingerAfterClientCloseMs : 0;
  registry.onChange((e) => {
    const entry = e.kind === 'rejected' ? undefined : registry.get(e.name);
    if (entry) warnGuardrailsOutlastingLinger(log, entry.current, lingerMs);
  });
  return {
    name: 'policies',
    registry,
    filters: [locksFactory(registry, { previewUpstream: speaksPreviewProtocol(deps.config.upstream) }), guardrailsFactory(registry), truncationFactory(registry)],
    routes: [
      {
        method: 'GET',
        path: '/admin/policies',
        auth: 'admin',
        handle: () =>
          json(200, {
            dir,
            default: registry.defaultName,
            policies: registry.entries().map((e) => ({
              name: e.name,
              version: e.current.version,
              file: e.file,
              loadedAt: new Date(e.loadedAt).toISOString(),
              rules: e.current.rules.length,
              custom: e.current.custom.length,
              lastError: e.lastError,
            })),
          }),
      },
    ],
    async close() {
      registry.close();
    },
  };
}
