import { expect, it } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { entryOf, policyFrom, wire } from '../../test/policies/support.js';
import { GuardrailFilter } from './guardrails.js';
import { MAX_UNKNOWN_LOGGED_PER_SESSION } from './unknown-types-log.js';

// Until 2026-12-06 the set of unknown event types already logged was process-wide (1024 types, never
// reset), so this test had a file of its own; it is per session now.

it('logs a session\'s unknown event types once each, for at most 16 types, then one line saying the rest are counted; every one is still decided and reported', async () => {
  const policy = entryOf(await policyFrom('guardrails:\n  unknownContentEvents: block'));
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, policy);
  for (let i = 0; i < 1030; i++) {
    expect(filter.onServer(wire({ type: `x.unknown_${i}` })), `x.unknown_${i}`).toEqual({ kind: 'drop' });
  }
  expect(MAX_UNKNOWN_LOGGED_PER_SESSION).toBe(16);
  const warned = session.lines.filter((l) => l['msg'] === 'event type not in the content-path table');
  expect(warned).toHaveLength(16);
  expect(warned.at(-1)!['eventType']).toBe('x.unknown_15');
  const limit = session.lines.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('more event types not in the content-path table'));
  expect(limit.map((l) => [l['limit'], l['action']])).toEqual([[16, 'block']]);
  expect(session.reports.filter((r) => r.kind === 'unknown_content')).toHaveLength(1030);
  // A new session logs again.
  const next = new LoggedSession();
  new GuardrailFilter(next, policy).onServer(wire({ type: 'x.unknown_0' }));
  expect(next.lines.filter((l) => l['msg'] === 'event type not in the content-path table').map((l) => l['eventType'])).toEqual(['x.unknown_0']);
});
