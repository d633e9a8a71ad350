import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { RelaySession } from '../../src/relay/session.js';
import { startTestProxy, type TestProxy } from '../support/harness.js';

/**
 * The server's once-a-second tick (client and upstream deadlines, the memory budget's resync) ran
 * every session inside one try: a session whose tick threw ended the pass for every session after
 * it, and the budget kept its last figure, every second while that session lived (found
 * 2026-12-05, by reading the code after a helper's note). One session's failure now ends that
 * session alone.
 */
let tp: TestProxy;
beforeAll(async () => {
  tp = await startTestProxy();
});
afterAll(async () => {
  vi.restoreAllMocks();
  await tp?.stop();
});

describe('the server tick and session timers', () => {
  it('a session whose tick throws is closed (internal_error, 1011); the others are ticked and go on', async () => {
    const a = await tp.client();
    await a.next('session.created');
    const b = await tp.client();
    await b.next('session.created');
    let faulty: RelaySession | null = null;
    let othersTicked = 0;
    const tick = RelaySession.prototype.tick;
    vi.spyOn(RelaySession.prototype, 'tick').mockImplementation(function (this: RelaySession, now: number) {
      // The first session ticked is a's (sessions tick in the order they opened).
      faulty ??= this;
      if (this === faulty) throw new Error('tick bug');
      othersTicked++;
      tick.call(this, now);
    });
    const closed = await Promise.race([a.closed, new Promise<null>((r) => setTimeout(() => r(null), 3500))]);
    expect(closed?.code).toBe(1011);
    expect(a.events.find((e) => e.type === 'error')?.['error']).toMatchObject({ code: 'internal_error' });
    // b was ticked in the same pass as a's failure (it came after a), and works.
    expect(othersTicked).toBeGreaterThan(0);
    b.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    expect((await b.next('response.done'))['response']).toMatchObject({ status: 'completed' });
    expect(tp.logs.some((l) => l.msg === 'tick handler failed')).toBe(true);
    vi.restoreAllMocks();
    b.close();
  });

  it("a session timer whose callback throws (a filter's deadline) ends that session alone, as a handler's throw would", async () => {
    const a = await tp.client();
    await a.next('session.created');
    const b = await tp.client();
    await b.next('session.created');
    const sessions: RelaySession[] = [];
    const tick = RelaySession.prototype.tick;
    vi.spyOn(RelaySession.prototype, 'tick').mockImplementation(function (this: RelaySession, now: number) {
      if (!sessions.includes(this)) sessions.push(this);
      tick.call(this, now);
    });
    await vi.waitFor(() => expect(sessions.length).toBeGreaterThanOrEqual(2), { timeout: 3000 });
    vi.restoreAllMocks();
    // The first session to tick is a's (sessions tick in the order they opened).
    sessions[0]!.setTimer(1, () => {
      throw new Error('timer bug');
    });
    const closed = await a.closed;
    expect(closed.code).toBe(1011);
    expect(a.events.find((e) => e.type === 'error')?.['error']).toMatchObject({ code: 'internal_error' });
    expect(tp.logs.some((l) => l.msg === 'timer handler failed')).toBe(true);
    b.send({ type: 'response.create', response: { output_modalities: ['text'] } });
    expect((await b.next('response.done'))['response']).toMatchObject({ status: 'completed' });
    b.close();
  });
});
