import { afterEach, describe, expect, it, vi } from 'vitest';
import { background, type JobHandle } from './thread.js';

/**
 * The shared background thread: jobs share one thread, a failing job is lost alone, a dead thread
 * loses every job and the next attach starts a new one, and the thread ends with its last job.
 */

/** Echoes what it receives with the thread's id; `throw` throws in the handler, `fail-later` fails from a timer, `crash-later` throws from a timer. */
const ECHO = `
const { threadId } = require('node:worker_threads');
if (init.throwAtStart) throw new Error('start refused');
return (m) => {
  if (m === 'throw') throw new Error('handler broke');
  if (m === 'fail-later') { setTimeout(() => fail(new Error('timer failed')), 1); return; }
  if (m === 'crash-later') { setTimeout(() => { throw new Error('uncaught in a timer'); }, 1); return; }
  if (m === 'send-then-throw') { send({ echo: m, threadId, tag: init.tag }); throw new Error('after send'); }
  if (m === 'burst') { for (let i = 0; i < 50; i++) send({ echo: i, threadId, tag: init.tag }); return; }
  send({ echo: m, threadId, tag: init.tag });
};
`;

interface Probe {
  readonly handle: JobHandle;
  readonly messages: { echo: unknown; threadId: number; tag: string }[];
  readonly lost: string[];
}

const attached: JobHandle[] = [];
afterEach(() => {
  for (const h of attached.splice(0)) h.detach();
});

function probe(tag: string, init: Record<string, unknown> = {}): Probe {
  const messages: Probe['messages'] = [];
  const lost: string[] = [];
  const handle = background.attach(
    { source: ECHO, init: { tag, ...init } },
    { message: (m) => messages.push(m as Probe['messages'][number]), lost: (r) => lost.push(r) },
  );
  attached.push(handle);
  return { handle, messages, lost };
}

/** A job whose owner detaches it on its first message (what arrives after that must be dropped). */
function detachingOnFirstMessage(tag: string): { handle: JobHandle; got: unknown[]; lost: string[] } {
  const got: unknown[] = [];
  const lost: string[] = [];
  const handle: JobHandle = background.attach(
    { source: ECHO, init: { tag } },
    {
      message: (m) => {
        got.push(m);
        handle.detach();
      },
      lost: (r) => lost.push(r),
    },
  );
  attached.push(handle);
  return { handle, got, lost };
}

async function echo(p: Probe, body: string): Promise<{ echo: unknown; threadId: number; tag: string }> {
  const before = p.messages.length;
  expect(p.handle.post(body)).toBe(true);
  await vi.waitFor(() => expect(p.messages.length).toBeGreaterThan(before), { timeout: 10_000, interval: 5 });
  return p.messages[p.messages.length - 1]!;
}

describe('background thread', () => {
  it('runs every job on one thread, routes each message to its own job, and ends with the last job', async () => {
    const a = probe('a');
    const b = probe('b');
    const fromA = await echo(a, 'one');
    const fromB = await echo(b, 'two');
    expect(fromA).toEqual({ echo: 'one', threadId: fromA.threadId, tag: 'a' });
    expect(fromB).toEqual({ echo: 'two', threadId: fromA.threadId, tag: 'b' });
    expect(fromA.threadId).toBeGreaterThan(0);
    expect(background.jobs).toBe(2);
    a.handle.detach();
    expect(a.handle.attached).toBe(false);
    expect(a.handle.post('late')).toBe(false);
    expect(background.running).toBe(true);
    expect((await echo(b, 'three')).echo).toBe('three');
    b.handle.detach();
    b.handle.detach(); // twice is harmless
    expect(background.jobs).toBe(0);
    expect(background.running).toBe(false);
    expect(a.lost).toEqual([]);
    expect(b.lost).toEqual([]);
  });

  it('a job that throws at start, in its handler or through fail() is lost alone; its neighbour goes on', async () => {
    const steady = probe('steady');
    const first = (await echo(steady, 'x')).threadId;
    const refused = probe('refused', { throwAtStart: true });
    await vi.waitFor(() => expect(refused.lost).toEqual(['start refused']), { timeout: 10_000, interval: 5 });
    expect(refused.handle.attached).toBe(false);
    expect(refused.handle.post('x')).toBe(false);

    const broken = probe('broken');
    await echo(broken, 'fine');
    broken.handle.post('throw');
    await vi.waitFor(() => expect(broken.lost).toEqual(['handler broke']), { timeout: 10_000, interval: 5 });

    const failing = probe('failing');
    failing.handle.post('fail-later');
    await vi.waitFor(() => expect(failing.lost).toEqual(['timer failed']), { timeout: 10_000, interval: 5 });

    expect((await echo(steady, 'still here')).threadId).toBe(first);
    expect(steady.lost).toEqual([]);
    expect(background.jobs).toBe(1);
  });

  it('a thread that dies loses every job (once each); the next attach starts a new thread', async () => {
    const a = probe('a');
    const b = probe('b');
    const old = (await echo(a, 'x')).threadId;
    await echo(b, 'y');
    b.handle.post('crash-later');
    await vi.waitFor(() => {
      expect(a.lost).toHaveLength(1);
      expect(b.lost).toHaveLength(1);
    }, { timeout: 10_000, interval: 5 });
    expect(a.lost[0]).toMatch(/uncaught in a timer/);
    expect(background.running).toBe(false);
    expect(a.handle.attached).toBe(false);
    expect(a.handle.post('x')).toBe(false);
    a.handle.detach(); // after the loss: harmless

    const c = probe('c');
    const fresh = (await echo(c, 'z')).threadId;
    expect(fresh).not.toBe(old);
    await background.kill();
    await vi.waitFor(() => expect(c.lost).toEqual(['the background thread exited']), { timeout: 10_000, interval: 5 });
    expect(a.lost).toHaveLength(1);
  });

  it('a job whose init cannot be cloned is refused at attach, and leaves no thread running for it', () => {
    expect(background.running).toBe(false);
    expect(() => background.attach({ source: ECHO, init: { f: () => 1 } }, { message: () => {}, lost: () => {} })).toThrow();
    expect(background.jobs).toBe(0);
    expect(background.running).toBe(false);
  });

  it('a job refused at attach leaves the other jobs on the thread running', async () => {
    const live = probe('live');
    const before = (await echo(live, 'x')).threadId;
    expect(() => background.attach({ source: ECHO, init: { f: () => 1 } }, { message: () => {}, lost: () => {} })).toThrow();
    expect(background.running).toBe(true);
    expect((await echo(live, 'still')).threadId).toBe(before);
    expect(live.lost).toEqual([]);
  });

  it('a message that cannot be cloned is not sent (post says so); the job goes on', async () => {
    const p = probe('p');
    await echo(p, 'x');
    expect(p.handle.post({ f: () => 1 })).toBe(false);
    expect((await echo(p, 'after')).echo).toBe('after');
  });

  it('messages a job sent before its owner detached it are dropped, not delivered or thrown', async () => {
    const other = probe('other');
    const { handle, got } = detachingOnFirstMessage('chatty');
    handle.post('burst');
    await vi.waitFor(() => expect(got).toHaveLength(1), { timeout: 10_000, interval: 5 });
    // The other 49 arrived after the detach: the thread and the process go on.
    expect((await echo(other, 'fine')).echo).toBe('fine');
    expect(got).toHaveLength(1);
  });

  it('a failure a job reports after its owner detached it is dropped (the owner hears nothing more)', async () => {
    const other = probe('other');
    const { handle, got, lost } = detachingOnFirstMessage('late');
    handle.post('send-then-throw');
    await vi.waitFor(() => expect(got).toHaveLength(1), { timeout: 10_000, interval: 5 });
    expect((await echo(other, 'fine')).echo).toBe('fine');
    expect(lost).toEqual([]);
  });

  it('kill with no thread running does nothing', async () => {
    expect(background.running).toBe(false);
    await expect(background.kill()).resolves.toBeUndefined();
  });

  it('an owner whose callback throws does not take the process down', async () => {
    const lost: string[] = [];
    const handle = background.attach(
      { source: ECHO, init: { tag: 'rude' } },
      {
        message: () => {
          throw new Error('owner bug');
        },
        lost: (r) => lost.push(r),
      },
    );
    attached.push(handle);
    const other = probe('other');
    handle.post('x');
    // The rude owner's message arrives first (same thread, sent first); the neighbour still answers.
    expect((await echo(other, 'after')).echo).toBe('after');
    expect(lost).toEqual([]);
    expect(handle.attached).toBe(true);
  });
});
