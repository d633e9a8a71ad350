import type { ModuleDeps, ProxyModule } from '../app/module.js';

/** Stub: the metering concern registers its filters and routes here. */
export async function createMeteringModule(_deps: ModuleDeps): Promise<ProxyModule> {
  return { name: 'metering', filters: [] };
}
