import { expect, it } from 'vitest';
import { LoggedSession } from '../../test/support/fake-session.js';
import { entryOf, policyFrom, wire } from '../../test/policies/support.js';
import { GuardrailFilter } from './guardrails.js';

// Its own file: the set of unknown event types already logged is process-wide, and a test file gets
// a fresh module (vitest isolates files), so here it starts empty.

it('logs unknown event types once each, for at most 1024 types (a hostile peer cannot grow the set); they are still decided', async () => {
  const session = new LoggedSession();
  const filter = new GuardrailFilter(session, entryOf(await policyFrom('guardrails:\n  unknownContentEvents: block')));
  for (let i = 0; i < 1030; i++) {
    expect(filter.onServer(wire({ type: `x.unknown_${i}` })), `x.unknown_${i}`).toEqual({ kind: 'drop' });
  }
  const warned = session.lines.filter((l) => l['msg'] === 'event type not in the content-path table');
  expect(warned).toHaveLength(1024);
  expect(warned.at(-1)!['eventType']).toBe('x.unknown_1023');
});
