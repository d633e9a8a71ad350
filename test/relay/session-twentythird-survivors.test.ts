import { describe, expect, it } from 'vitest';
import { ProxyError } from '../../src/protocol/errors.js';
import { CONTINUE } from '../../src/pipeline/filter.js';
import { filterOf, relaySessionFixture, send, until } from '../support/relay-session.js';

/**
 * What mutation testing of src/relay/session.ts left open in the twenty-second session and the
 * twenty-third found reachable: each test names the mutant it kills. The relay core on its own
 * (test/support/relay-session.ts).
 */

const core = relaySessionFixture();
const { open } = core;

describe('RelaySession survivors: the session ends once', () => {
  // 1080: `#finish`'s `if (this.#ended) return;` removed. fail() finishes a lingering (or closing)
  // session without asking whether it ended: a handler failing after the end (a filter's timer) ran
  // the teardown again, and onEnded with it (the server's session_end record and lingering bytes twice).
  it("a filter's timer that throws after the session ended does not end it again", async () => {
    const up = await core.respondingUpstream(null);
    const timers = filterOf({}, () => CONTINUE);
    const { session, client, ended, timesEnded } = open([timers.factory], { upstreamUrl: up.url, lingerMs: 60_000 });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    // The proxy's close while a response runs: the client is closed, the upstream read on (the linger).
    session.close(new ProxyError('policy_violation'));
    expect(session.ended).toBe(false);
    session.fail('test', new Error('boom'));
    await ended;
    expect(timesEnded()).toBe(1);
    let fired = false;
    timers.ctx().setTimer(0, () => {
      fired = true;
      throw new Error('a timer firing after the end');
    });
    await until(() => fired, 'the late timer');
    await new Promise((r) => setImmediate(r));
    expect(timesEnded()).toBe(1);
    expect(session.endRecord()).toMatchObject({ initiator: 'proxy' });
  });

  it('a server tick failing on a session its own close ended (the close decided) does not end it again', async () => {
    const { session, client, ended, timesEnded } = open([]);
    await until(() => client.types().includes('session.created'), 'session.created');
    session.close(new ProxyError('policy_violation'));
    await ended;
    expect(client.ended?.code).toBe(4003);
    session.fail('tick', new Error('boom'));
    expect(timesEnded()).toBe(1);
    expect(client.ended?.code).toBe(4003);
  });
});

describe('RelaySession survivors: idle waiters at the end', () => {
  // 1087: the idle waiters not resolved at the end. A call's governor awaits idle() before its hang-up:
  // a session that ends first (the upstream closed) must not keep it waiting for its bound.
  it('idle() resolves when the session ends with a response still running, not at its bound', async () => {
    const up = await core.respondingUpstream(null);
    const { session, client, ended } = open([], { upstreamUrl: up.url });
    await until(() => client.types().includes('session.created'), 'session.created');
    send(session, { type: 'response.create' });
    await until(() => client.types().includes('response.created'), 'response.created');
    let idle = false;
    void session.idle(600_000).then(() => (idle = true));
    await new Promise((r) => setImmediate(r));
    expect(idle).toBe(false);
    up.connections.at(-1)!.close(1000, 'done');
    await ended;
    await until(() => idle, 'idle at the end');
  });
});
