import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import type { Verdict } from '../src/pipeline/filter.js';
import { Frame } from '../src/pipeline/frame.js';
import { compilePolicy, parsePolicyYaml } from '../src/policies/compile.js';
import { GuardrailFilter } from '../src/policies/guardrails.js';
import { FakeSession } from '../test/support/fake-session.js';
import { compileChild } from './lib/compiled.js';
import { REPO_ROOT } from './lib/ipc.js';

/**
 * `npx tsx bench/held-deltas.ts [--interval-ms 40] [--policy customer-support] [--rounds 2000] [--turns-per-session 1] [--from-source]`: what holding back
 * streamed text costs. Not a test: numbers only.
 *
 * Plays assistant transcripts (no rule trips) through the guardrail filter as word-sized
 * deltas arriving every `interval-ms` (virtual time), and records for every character the delay
 * between its arrival and the moment the filter released it to the client (the hold-back added by
 * policies; 0 when it leaves with its own delta). Also reports the filter's own CPU per delta, and
 * per audio frame (which it routes by type without parsing).
 */

const { values } = parseArgs({
  options: { 'interval-ms': { type: 'string', default: '40' }, policy: { type: 'string', default: 'customer-support' }, rounds: { type: 'string', default: '2000' }, 'turns-per-session': { type: 'string', default: '1' }, 'from-source': { type: 'boolean', default: false } },
});
// Measured as production runs: compiled (dist/, this script bundled around it), not through tsx,
// whose per-closure naming helpers made the filter look ~3× as expensive per delta.
const compiledRoot = process.env['HELD_DELTAS_ROOT'];
if (compiledRoot === undefined && !values['from-source']) {
  const script = await compileChild('bench/held-deltas.ts', REPO_ROOT);
  const run = spawnSync(process.execPath, [script, ...process.argv.slice(2)], { stdio: 'inherit', env: { ...process.env, HELD_DELTAS_ROOT: REPO_ROOT } });
  process.exit(run.status ?? 1);
}
const intervalMs = Number(values['interval-ms']);
const dir = join(compiledRoot ?? join(import.meta.dirname, '..'), 'policies');
const file = join(dir, `${values.policy}.yaml`);
const text = readFileSync(file, 'utf8').replace(/\n  custom:\n(?: {4}.*\n)+/, '\n');
const policy = await compilePolicy(parsePolicyYaml(text, file), { name: values.policy!, file, root: dir, text });

const SENTENCES = [
  'Thanks for calling Acme support. I can see your order 1042 shipped yesterday and should arrive on Friday.',
  'Your account email on file is the one you used at checkout, and the refund policy allows returns within thirty days.',
  'I have created ticket 88213 for the damaged item; a specialist will call you back at 555 0142 within two business days.',
  'The premium plan costs 19 dollars a month, billed on the first, and you can cancel any time from the settings page.',
  'Let me check the tracking number for you: it is 1Z999AA10123456784, currently in transit through the Denver hub.',
];

function wire(event: Record<string, unknown>): Frame {
  return new Frame(event['type'] as string, Buffer.from(JSON.stringify(event)));
}

function words(s: string): string[] {
  return s.match(/\S+\s*/g) ?? [];
}

const delays: number[] = [];
let deltas = 0;
let cpuMs = 0;
const ROUNDS = Number(values.rounds);
// Responses per session: with more than one, each scan's window holds the earlier answers' text too
// (up to the policy's window), as in a long conversation; with one, only the sentence so far.
const TURNS = Math.max(1, Number(values['turns-per-session']));
let session = new FakeSession();
let filter = new GuardrailFilter(session, { name: policy.name, file, current: policy, loadedAt: 0, lastError: null });
for (let round = 0; round < ROUNDS; round++) {
  if (round > 0 && round % TURNS === 0) {
    session = new FakeSession();
    filter = new GuardrailFilter(session, { name: policy.name, file, current: policy, loadedAt: 0, lastError: null });
  }
  const feed = (f: Frame): Verdict => {
    session.conversation.observeServer(f);
    const t = performance.now();
    const v = filter.onServer(f) as Verdict;
    cpuMs += performance.now() - t;
    return v;
  };
  const responseId = `resp_${round}`;
  feed(wire({ type: 'response.created', response: { id: responseId, status: 'in_progress', output: [] } }));
  const sentence = SENTENCES[round % SENTENCES.length]!;
  const pieces = words(sentence);
  /** Arrival time of each character not yet released. */
  const pending: number[] = [];
  let now = 0;
  const release = (n: number) => {
    for (let i = 0; i < n; i++) delays.push(now - pending.shift()!);
  };
  const ids = { response_id: responseId, item_id: `item_${round}`, output_index: 0, content_index: 0 };
  for (const piece of pieces) {
    for (let i = 0; i < piece.length; i++) pending.push(now);
    const v = feed(wire({ type: 'response.output_audio_transcript.delta', ...ids, delta: piece }));
    deltas++;
    const out = v.kind === 'continue' ? piece : v.kind === 'replace' ? String(v.frame.json()['delta']) : '';
    release(out.length);
    now += intervalMs;
  }
  now -= intervalMs; // the .done follows the last delta at once
  const before = session.client.length;
  feed(wire({ type: 'response.output_audio_transcript.done', ...ids, transcript: sentence }));
  const flushed = session.client.slice(before).map((e) => String(e['delta'] ?? '')).join('');
  release(flushed.length);
  if (pending.length !== 0) throw new Error(`round ${round}: ${pending.length} characters never released`);
}

// Audio frames in both directions: the filter's whole cost is its routing by type.
const audioFilter = new GuardrailFilter(new FakeSession(), { name: policy.name, file, current: policy, loadedAt: 0, lastError: null });
const audioOut = new Frame('response.output_audio.delta', Buffer.alloc(8000, 65));
const audioIn = new Frame('input_audio_buffer.append', Buffer.alloc(8000, 65));
let audioNs = Infinity;
for (let r = 0; r < 3; r++) {
  const t = performance.now();
  for (let i = 0; i < 500_000; i++) {
    audioFilter.onServer(audioOut);
    audioFilter.onClient(audioIn);
  }
  audioNs = Math.min(audioNs, ((performance.now() - t) * 1e6) / 1e6);
}
if (audioOut.parsed || audioIn.parsed) throw new Error('an audio frame was parsed');

delays.sort((a, b) => a - b);
const q = (p: number) => delays[Math.min(delays.length - 1, Math.floor(p * delays.length))]!;
const held = delays.filter((d) => d > 0).length / delays.length;
console.log(
  JSON.stringify(
    {
      policy: policy.name,
      intervalMs,
      characters: delays.length,
      heldShare: Math.round(held * 1000) / 1000,
      addedLatencyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99), max: delays[delays.length - 1] },
      filterCpuMicrosPerDelta: Math.round((cpuMs / deltas) * 1000 * 10) / 10,
      filterNanosPerAudioFrame: Math.round(audioNs * 10) / 10,
    },
    null,
    2,
  ),
);
