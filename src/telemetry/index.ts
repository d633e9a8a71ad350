import type { ModuleDeps, ProxyModule } from '../app/module.js';

/** Stub: the telemetry concern registers its filters and routes here. */
export async function createTelemetryModule(_deps: ModuleDeps): Promise<ProxyModule> {
  return { name: 'telemetry', filters: [] };
}
