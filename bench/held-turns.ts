import { parseArgs } from 'node:util';
import { policyDir } from '../test/policies/support.js';
import { appendEvents, speechThenSilence, startTestProxy } from '../test/support/harness.js';

/**
 * `npx tsx bench/held-turns.ts [--turns 40] [--transcription-ms 0]`: what holding spoken turns
 * (`guardrails.holdSpokenInput`) adds to each turn. Not a test: numbers only.
 *
 * The real proxy on loopback with the embedded simulator as upstream (server VAD, transcription
 * taking `transcription-ms`). For every spoken turn it records, on the simulator's own clock,
 * the delay between the upstream's `input_audio_buffer.committed` and the moment the upstream
 * starts the response: with the hold, when the proxy's `response.create` arrives; without it,
 * when server VAD starts the response itself (`response.created`, same instant as the commit).
 * The difference is what holding costs: the transcription time plus the proxy's check.
 */

const { values } = parseArgs({ options: { turns: { type: 'string', default: '40' }, 'transcription-ms': { type: 'string', default: '0' } } });
const turns = Number(values.turns);
const transcriptionMs = Number(values['transcription-ms']);

const HELD = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
  holdSpokenInput: { enabled: true, timeoutMs: 10000 }
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe }
`;
const OPEN = `
guardrails:
  rules:
    - { id: injection, sources: [input], match: { phrases: ["ignore previous instructions"] }, action: block }
locks:
  inputTranscription: { model: gpt-4o-mini-transcribe }
`;

const tp = await startTestProxy({
  tenants: { held: { policy: 'held' }, open: { policy: 'open' } },
  config: { policies: { dir: policyDir({ 'held.yaml': HELD, 'open.yaml': OPEN }), watch: false }, logging: { level: 'warn' } },
  simulator: { timing: { transcriptionDelayMs: transcriptionMs, deltaIntervalMs: 0 } },
});

async function measure(tenant: 'held' | 'open'): Promise<number[]> {
  const delays: number[] = [];
  for (let i = 0; i < turns; i++) {
    const before = tp.sim.connections.length;
    const c = await tp.client({ tenant });
    await c.next('session.created');
    await c.next('session.updated');
    for (const e of appendEvents(speechThenSilence(400, 500), 20)) c.send(e);
    await c.next('response.done', 10_000);
    const conn = tp.sim.connections[before]!;
    const committed = conn.sent.find((e) => e.type === 'input_audio_buffer.committed')!.t;
    const started = tenant === 'held' ? conn.received.find((e) => e.type === 'response.create')!.t : conn.sent.find((e) => e.type === 'response.created')!.t;
    delays.push(started - committed);
    c.close();
    await c.closed;
  }
  return delays;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

await measure('held'); // warm-up (speech synthesis cache, JIT)
const open = await measure('open');
const held = await measure('held');
console.log(`held spoken turns, ${turns} turns each, simulator transcription ${transcriptionMs} ms, loopback`);
console.log(`committed → response start   p50        p90        p99`);
console.log(`no hold (server VAD)         ${fmt(pct(open, 50)).padEnd(10)} ${fmt(pct(open, 90)).padEnd(10)} ${fmt(pct(open, 99))}`);
console.log(`holdSpokenInput              ${fmt(pct(held, 50)).padEnd(10)} ${fmt(pct(held, 90)).padEnd(10)} ${fmt(pct(held, 99))}`);
await tp.stop();
