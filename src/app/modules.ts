import { createDemoModule } from '../demo/index.js';
import { createMeteringModule } from '../metering/index.js';
import { createPoliciesModule } from '../policies/index.js';
import { createTelemetryModule } from '../telemetry/index.js';
import type { ModuleDeps, ProxyModule } from './module.js';

/**
 * The concerns, in chain order. Client → upstream frames pass them first to last, upstream →
 * client frames last to first. So telemetry sees every client event as sent and every server
 * event as finally forwarded; metering sees the final client request and every server event
 * (usage included) before policies can drop anything.
 */
export async function createModules(deps: ModuleDeps): Promise<ProxyModule[]> {
  const modules: ProxyModule[] = [];
  try {
    modules.push(await createTelemetryModule(deps));
    modules.push(await createPoliciesModule(deps));
    modules.push(await createMeteringModule(deps));
    modules.push(createDemoModule(deps));
  } catch (err) {
    await Promise.allSettled(modules.map((m) => m.close?.()));
    throw err;
  }
  return modules;
}
