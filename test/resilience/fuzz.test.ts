import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { FuzzSource, type FuzzFrame } from './support/fuzz-frames.js';

/**
 * 100,000 malformed client frames over a few sessions: the proxy must not crash, must answer every
 * frame exactly once (its own catalogue error, or the upstream's error relayed), must keep the
 * sessions open, and the sessions must still hold a normal conversation afterwards.
 */

const SESSIONS = 4;
const FRAMES = 100_000;
const PER_SESSION = FRAMES / SESSIONS;
/** Frames in flight per session before the sender waits for answers (bounds memory). */
const WINDOW = 400;

interface ErrorBody {
  readonly code?: unknown;
  readonly event_id?: unknown;
}

interface Tally {
  sent: number;
  answers: number;
  /** Frames with an id, by id. */
  readonly pending: Map<string, FuzzFrame>;
  /** Expected answers without an id, by code. */
  readonly anonymousExpected: Map<string, number>;
  readonly anonymousGot: Map<string, number>;
  readonly problems: string[];
  readonly kinds: Map<string, number>;
  nonErrors: number;
}

/** An unknown event type with this id prefix: its upstream answer ends the run (everything before it has arrived). */
const MARKER = 'mk_end_';

const inc = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

function watch(c: TestClient, tally: Tally): () => void {
  const onMessage = (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      tally.problems.push('binary frame from the proxy');
      return;
    }
    const ev = JSON.parse(data.toString('utf8')) as { type?: unknown; error?: ErrorBody };
    if (ev.type !== 'error') {
      tally.nonErrors++;
      if (tally.problems.length < 20) tally.problems.push(`unexpected ${String(ev.type)}`);
      return;
    }
    const code = typeof ev.error?.code === 'string' ? ev.error.code : String(ev.error?.code);
    const id = typeof ev.error?.event_id === 'string' ? ev.error.event_id : null;
    // The end-of-run marker (see below) is not a fuzz frame.
    if (id !== null && id.startsWith(MARKER)) return;
    tally.answers++;
    if (id !== null && id.startsWith('fz_')) {
      const f = tally.pending.get(id);
      if (!f) {
        if (tally.problems.length < 20) tally.problems.push(`answer for ${id} (${code}) not expected or answered twice`);
        return;
      }
      tally.pending.delete(id);
      if (!f.codes.includes(code) && tally.problems.length < 20) tally.problems.push(`${f.kind} ${id}: got ${code}, expected ${f.codes.join('|')}`);
      return;
    }
    inc(tally.anonymousGot, code);
  };
  c.ws.on('message', onMessage);
  return () => c.ws.off('message', onMessage);
}

async function until(pred: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function fuzzSession(c: TestClient, source: FuzzSource, tally: Tally): Promise<void> {
  for (let i = 0; i < PER_SESSION; i++) {
    const f = source.next();
    inc(tally.kinds, f.kind);
    if (f.id !== null) tally.pending.set(f.id, f);
    else inc(tally.anonymousExpected, f.codes.join('|'));
    tally.sent++;
    c.ws.send(f.data, { binary: f.binary });
    if (tally.sent - tally.answers >= WINDOW) {
      await until(() => tally.sent - tally.answers < WINDOW / 2 || c.ws.readyState !== c.ws.OPEN, 20_000, () => `answers stalled at ${tally.answers}/${tally.sent}`);
      if (c.ws.readyState !== c.ws.OPEN) throw new Error(`session closed after ${tally.sent} frames`);
    }
  }
  await until(() => tally.answers >= tally.sent, 20_000, () => `${tally.answers}/${tally.sent} answered; unanswered ids e.g. ${[...tally.pending.values()].slice(0, 5).map((f) => `${f.kind}:${f.id}`).join(', ')}`);
}

describe('fuzz: 100,000 malformed client frames', () => {
  let tp: TestProxy;
  beforeAll(async () => {
    tp = await startTestProxy({ config: { logging: { level: 'warn' } }, simulator: { recordAudio: false } });
    // Log lines are parsed and kept by the harness: the suite also checks none is an error.
  });
  afterAll(async () => {
    await tp.stop();
  });

  it('answers every frame exactly once with a catalogue or upstream error, keeps every session, and stays usable', async () => {
    const clients = await Promise.all(Array.from({ length: SESSIONS }, () => tp.client()));
    await Promise.all(clients.map((c) => c.next('session.created')));
    const tallies: Tally[] = clients.map(() => ({
      sent: 0,
      answers: 0,
      pending: new Map(),
      anonymousExpected: new Map(),
      anonymousGot: new Map(),
      problems: [],
      kinds: new Map(),
      nonErrors: 0,
    }));
    const unwatch = clients.map((c, i) => watch(c, tallies[i]!));
    await Promise.all(clients.map((c, i) => fuzzSession(c, new FuzzSource(1000 + i, String(i)), tallies[i]!)));
    // Over-answering would show up as extra answers arriving late: a marker that round-trips through
    // the proxy and the upstream after the last fuzz frame bounds the wait for them.
    clients.forEach((c, i) => c.send({ type: 'no.such.marker', event_id: `${MARKER}${i}` }));
    await Promise.all(clients.map((c, i) => c.waitFor((e) => e.type === 'error' && (e['error'] as ErrorBody).event_id === `${MARKER}${i}`, 20_000, `marker ${i}`)));
    unwatch.forEach((u) => u());

    let sent = 0;
    for (const t of tallies) {
      sent += t.sent;
      expect(t.problems).toEqual([]);
      expect(t.nonErrors).toBe(0);
      expect(t.answers).toBe(t.sent);
      expect([...t.pending.keys()]).toEqual([]);
      // Answers without an id: the counts per acceptable-code group must add up exactly.
      const got = new Map(t.anonymousGot);
      for (const [group, n] of t.anonymousExpected) {
        let have = 0;
        for (const code of group.split('|')) have += got.get(code) ?? 0;
        expect(have, `answers for ${group}`).toBeGreaterThanOrEqual(n);
      }
      const expectedTotal = [...t.anonymousExpected.values()].reduce((a, b) => a + b, 0);
      const gotTotal = [...got.values()].reduce((a, b) => a + b, 0);
      expect(gotTotal).toBe(expectedTotal);
      const allowed = new Set([...t.anonymousExpected.keys()].flatMap((g) => g.split('|')));
      expect([...got.keys()].filter((k) => !allowed.has(k))).toEqual([]);
    }
    expect(sent).toBe(FRAMES);
    // Bad input is the client's problem, never an error-level event for the operator.
    expect(tp.logs.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([]);
    // Every category was exercised.
    const kinds = new Set(tallies.flatMap((t) => [...t.kinds.keys()]));
    for (const k of ['garbage', 'truncated', 'truncated-append', 'non-object', 'type-wrong-type', 'type-missing', 'binary', 'unknown-type', 'field-wrong-type', 'unknown-field', 'escaped-key', 'escaped-value', 'cancel-nothing', 'huge-string', 'deep-nesting', 'deep-nesting-before-type', 'deep-array']) {
      expect(kinds, k).toContain(k);
    }
    // No session was lost, and each still holds a normal conversation.
    expect(tp.proxy.server.sessionCount).toBe(SESSIONS);
    clients.forEach((c, i) => c.say(`say: still fine ${i}`));
    const dones = await Promise.all(clients.map((c) => c.next('response.done', 10_000)));
    for (const d of dones) expect((d['response'] as { status: string }).status).toBe('completed');
    for (const c of clients) c.close();
    await Promise.all(clients.map((c) => c.closed));
  }, 60_000);

  it('drops a connection that sends invalid UTF-8 in a text frame, and cleans up its upstream', async () => {
    const before = tp.proxy.server.sessionCount;
    const upstreamBefore = tp.sim.connections.length;
    const clients = await Promise.all(Array.from({ length: 20 }, () => tp.client()));
    await Promise.all(clients.map((c) => c.next('session.created')));
    const bad = [Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), Buffer.from('{"type":"\xc3\x28"}', 'latin1'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf8, 0x88, 0x80, 0x80, 0x80])];
    clients.forEach((c, i) => c.ws.send(bad[i % bad.length]!, { binary: false }));
    const closes = await Promise.all(clients.map((c) => c.closed));
    // uWS fails the connection (RFC 6455 §8.1): the TCP connection ends without a close frame.
    for (const cl of closes) expect([1006, 1007]).toContain(cl.code);
    const mine = tp.sim.connections.slice(upstreamBefore);
    await Promise.all(mine.map((u) => u.closed));
    await until(() => tp.proxy.server.sessionCount === before, 2000, () => `${tp.proxy.server.sessionCount} sessions left`);
  });
});
