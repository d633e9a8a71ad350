import { createCallsModule } from '../calls/index.js';
import { createMeteringModule } from '../metering/index.js';
import { createPoliciesModule } from '../policies/index.js';
import { createTelemetryModule } from '../telemetry/index.js';
import type { ModuleDeps, ProxyModule } from './module.js';

/**
 * The concerns, in chain order. Client → upstream frames pass them first to last, upstream →
 * client frames last to first. So telemetry sees every client event as sent and every server
 * event as finally forwarded; metering sees the final client request and every server event
 * (usage included) before policies can drop anything. Calls come last: their filter only admits
 * (call id → tenant) and watches reports, and the module closes first (calls hang up while the
 * ledger is still open); it runs the others' filters on the sidebands it owns. The demo page is no
 * concern of the chain: the process that serves the admin listener adds it (src/main.ts).
 */
export async function createModules(deps: ModuleDeps): Promise<ProxyModule[]> {
  const modules: ProxyModule[] = [];
  try {
    modules.push(await createTelemetryModule(deps));
    const policies = await createPoliciesModule(deps);
    modules.push(policies);
    const metering = await createMeteringModule(deps);
    modules.push(metering);
    // Refusals reach every module built before (telemetry counts them), as the server's upgrade refusals do.
    const others = [...modules];
    const requestRefused = (route: string, code: string): void => {
      for (const m of others) m.onRequestRefused?.(route, code);
    };
    const callNotified = (tenant: string, outcome: string): void => {
      for (const m of others) m.onCallNotified?.(tenant, outcome);
    };
    const callTransferred = (tenant: string, outcome: string): void => {
      for (const m of others) m.onCallTransferred?.(tenant, outcome);
    };
    modules.push(await createCallsModule({ ...deps, registry: policies.registry, metering, filters: modules.flatMap((m) => m.filters), requestRefused, callNotified, callTransferred }));
  } catch (err) {
    await Promise.allSettled(modules.map((m) => m.close?.()));
    throw err;
  }
  return modules;
}
