import { describe, expect, it } from 'vitest';
import { tenantShareExceeded } from './memory-budget.js';

// Mutation survivors of src/server/memory-budget.ts (nineteenth session, 2026-12-07): what the
// client reads when its tenant's share refuses it, which no test compared before.
describe('tenantShareExceeded: the text the client reads at each check', () => {
  it('a refused frame says it was not relayed and to retry (the session continues)', () => {
    const refusal = tenantShareExceeded('frame', 500);
    expect(refusal.message).toBe(
      "This tenant's sessions hold their share of the proxy's memory budget; the frame was not relayed. Retry shortly.",
    );
    expect(refusal.closeCode).toBeNull();
  });

  it('a session ended at the recount is told it was the largest, and closes 4008', () => {
    const refusal = tenantShareExceeded('recount', 500);
    expect(refusal.message).toBe(
      "This tenant's sessions held more than their share of the proxy's memory budget; this session, the largest, was ended.",
    );
    expect(refusal.closeCode).toBe(4008);
    expect(refusal.details).toEqual({ scope: 'tenant', limit: 500 });
  });

  it('a refused upgrade says to end a session or retry (HTTP 429, not the global refusal text)', () => {
    const refusal = tenantShareExceeded('upgrade', 500);
    expect(refusal.message).toBe(
      "This tenant's sessions hold their share of the proxy's memory budget; end one or retry shortly.",
    );
    expect(refusal.toHttpBody().error.message).toBe(refusal.message);
    expect(refusal.httpStatus).toBe(429);
  });
});
