import { appendEvents, speechThenSilence, type TestClient, type TestProxy } from '../support/harness.js';
import { expect } from 'vitest';
import { spend, until, usageRecords } from './support.js';

/*
 * The moves of test/metering/redteam-16-sessions-vad-cap.test.ts, for sessions in different relay
 * workers and instances: a large text item in each session's conversation (free until a response
 * reads it), one text answer spending most of a $0.15 `worst_case` cap, then spoken turns whose VAD
 * response (~$0.08 for the conversation it reads) is cancelled at `response.created` and billed.
 */

/** The tenant limits: a cap one answer reading a BIG conversation nearly spends. */
export const HOLD_LIMITS = { dailyUsd: '0.15', maxResponseOutputTokens: 16, maxConcurrentSessions: 50 } as const;

// ~20,000 simulator tokens of text: $0.08 at gpt-realtime's $4/1M text input, for every response reading it.
const BIG = 'lorem ipsum dolor sit amet '.repeat(3000);

export async function bigConversation(c: TestClient, id: string): Promise<void> {
  c.send({ type: 'conversation.item.create', item: { id, type: 'message', role: 'user', content: [{ type: 'input_text', text: BIG }] } });
  await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === id, 10_000, 'the big item');
}

/** One text answer reading the conversation (~$0.08): most of the cap. */
export async function spendMostOfCap(c: TestClient): Promise<void> {
  c.send({ type: 'response.create', response: { output_modalities: ['text'] } });
  const first = await c.waitFor((e) => e.type === 'response.done' || e.type === 'error', 10_000, 'the first answer');
  if (first.type !== 'response.done') throw new Error(`the first answer was refused: ${JSON.stringify(first)}`);
}

/**
 * One spoken turn; true when the upstream started a response for it (then its response.done has
 * been read: the cancelled response is billed by the time this returns).
 */
export async function speakOneTurn(c: TestClient, marker: string): Promise<boolean> {
  const startedBefore = c.ofType('response.created').length;
  const doneBefore = c.ofType('response.done').length;
  for (const ev of appendEvents(speechThenSilence(700, 800))) c.send(ev);
  // A marker item after the audio: once it is done, the upstream has read (or never got) the turn.
  c.send({ type: 'conversation.item.create', item: { id: marker, type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } });
  await c.waitFor((e) => e.type === 'conversation.item.done' && (e['item'] as { id: string }).id === marker, 10_000, 'marker item');
  if (c.ofType('response.created').length === startedBefore) return false;
  await c.nth('response.done', doneBefore + 1, 10_000);
  return true;
}

/** Whether the client was told its input audio is held over the tenant cap. */
export function audioRefused(c: TestClient): boolean {
  return c.ofType('error').some((e) => {
    const err = e['error'] as { code?: string; param?: string };
    return err.code === 'budget_exceeded' && err.param === 'input_audio_buffer.append';
  });
}

export const HELD_ELSEWHERE = 'metering: tenant over a cap in another relay worker or instance: its sessions here hold their input audio';

/**
 * Waits (bounded) for `tp` to log that a hold from elsewhere reached a session of `worker` (any
 * worker when undefined). Not an assertion: without the hold the test goes on, and the money spent
 * says what happened.
 */
export async function holdArrived(tp: TestProxy, worker?: number): Promise<void> {
  // 30 s: on a loaded CI machine the hold once took longer than 10 s, and the second session paid.
  await until(() => tp.logs.some((l) => l.msg === HELD_ELSEWHERE && (worker === undefined || l['worker'] === worker)), 30_000, 'the hold from elsewhere').catch(() => undefined);
}

/**
 * The scenario of the cross-process hold tests: both sessions hold a large conversation, the tenant
 * spends most of its cap, `first` speaks (its VAD response is cancelled over the cap and billed: the
 * one the bound allows), the hold reaches the other process (`holdReached`), then `second` speaks:
 * its audio is held, no response starts, nothing more is billed. Before the hold crossed processes
 * the second session's response was billed too (~$0.08 for its conversation read the first time).
 */
export async function secondSessionPaysNothing(first: TestClient, second: TestClient, adminUrl: string, holdReached: () => Promise<void>): Promise<void> {
  await bigConversation(first, 'item_big_first');
  await bigConversation(second, 'item_big_second');
  await spendMostOfCap(first);
  const afterAnswer = (await spend(adminUrl)).day.spentNanos;
  expect(await speakOneTurn(first, 'item_marker_first')).toBe(true);
  await holdReached();
  const started = await speakOneTurn(second, 'item_marker_second');

  const records = await usageRecords(adminUrl, '?tenant=acme');
  const spent = (await spend(adminUrl)).day.spentNanos;
  // Past the answer: the first session's cancelled response (~$0.009: its conversation was read
  // once already, cached).
  expect(spent - afterAnswer).toBeLessThan(0.05e9);
  // The cancel may land after the 16-token response has ended on its own (incomplete): billed alike.
  expect(records).toHaveLength(2);
  expect(['cancelled', 'incomplete']).toContain(records[1]!['status']);
  expect(started).toBe(false);
  expect(audioRefused(second)).toBe(true);
  first.close();
  second.close();
}
