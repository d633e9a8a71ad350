import type { ModuleDeps, ProxyModule } from '../app/module.js';

/** Stub: the policies concern registers its filters and routes here. */
export async function createPoliciesModule(_deps: ModuleDeps): Promise<ProxyModule> {
  return { name: 'policies', filters: [] };
}
