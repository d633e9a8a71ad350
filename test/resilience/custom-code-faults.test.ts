import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../support/client.js';
import { whenListening, type Listening } from '../support/spawned-proxy.js';

/**
 * The guardrail API promises that custom code which throws, rejects or times out "never takes the
 * proxy down". Two faults escaped it (found 2026-12-05): a guardrail whose own abort listener
 * throws (Node reports a listener's throw as an uncaught exception once the deadline aborts the
 * signal), and a guardrail that leaves a rejected Promise nobody handles (Node 20 ends the process
 * on an unhandled rejection). Both ended the relay process, every session on it with it. Run as a
 * process, as production runs: the test is that it is still there and serving.
 */

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;
const KEY = 'rpk_custom_faults_key_0123456789';

const ABORT_THROWS = `
export default { name: 'abort-throws', wants: ['input'], [Symbol.for('realtime-proxy.guardrail')]: true,
  evaluate(event, ctx) {
    if (!event.text.includes('slow')) return { action: 'allow' };
    ctx.signal.addEventListener('abort', () => { throw new Error('abort listener bug'); });
    ctx.signal.onabort = () => { throw new Error('onabort bug'); };
    return new Promise(() => {});
  } };
`;
const FLOATING = `
export default { name: 'floating', wants: ['input'], [Symbol.for('realtime-proxy.guardrail')]: true,
  evaluate(event) {
    if (event.text.includes('float')) Promise.reject(new Error('floating rejection bug'));
    return { action: 'allow' };
  } };
`;
const POLICY = `
guardrails:
  custom:
    - id: abort-throws
      module: ./abort-throws.mjs
      sources: [input]
      mode: blocking
      timeoutMs: 200
      onTimeout: block
    - id: floating
      module: ./floating.mjs
      sources: [input]
`;

let dir: string;
let child: ChildProcess;
let proxy: Listening;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rp-custom-faults-'));
  writeFileSync(join(dir, 'abort-throws.mjs'), ABORT_THROWS);
  writeFileSync(join(dir, 'floating.mjs'), FLOATING);
  writeFileSync(join(dir, 'faulty.yaml'), POLICY);
  // Every YAML file of the policy directory is a policy: the proxy's own config lives beside it.
  const file = join(dir, '..', `${dir.split('/').pop()}-proxy.yaml`);
  writeFileSync(
    file,
    `server: { host: 127.0.0.1, port: 0, workers: 1 }\nadmin: { port: 0 }\npolicies: { dir: ${dir}, default: faulty, watch: false }\ntenants:\n  t1:\n    keys: [{ key: ${KEY} }]\n`,
  );
  const env = { ...process.env };
  delete env.OPENAI_API_KEY;
  child = spawn(process.execPath, [bin, '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  proxy = await whenListening(child);
}, 30_000);

afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(dir, '..', `${dir.split('/').pop()}-proxy.yaml`), { force: true });
});

const client = () => new TestClient(`ws://127.0.0.1:${proxy.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } });
const item = (text: string, id: string) => ({ type: 'conversation.item.create', event_id: id, item: { type: 'message', role: 'user', content: [{ type: 'input_text', text }] } });

/** The proxy still admits a new session and relays an item through it. */
async function stillServing(): Promise<void> {
  expect(child.exitCode).toBeNull();
  const c = client();
  await c.next('session.created');
  c.send(item('hello again', 'evt_after'));
  await c.next('conversation.item.done');
  c.close();
}

describe('custom guardrail code that misbehaves', () => {
  it('an abort listener that throws when the deadline passes: the text gets onTimeout, the proxy stays up', async () => {
    const c = client();
    await c.next('session.created');
    c.send(item('this is slow', 'evt_slow'));
    const err = (await c.next('error', 5_000).catch((e: unknown) => { throw new Error(`${String(e)}; proxy exit ${child.exitCode}: ${proxy.output().slice(-1500)}`); }))['error'] as { code: string; event_id: string };
    expect(err).toMatchObject({ code: 'guardrail_blocked', event_id: 'evt_slow' });
    // The listener's throw surfaces a tick after the abort: give it time to end the process if it can.
    await proxy.outputMatching(/abort listener bug/, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    await stillServing();
    c.send(item('hello', 'evt_same_session'));
    await c.next('conversation.item.done');
    c.close();
  });

  it('a Promise the guardrail leaves rejected: logged, the proxy stays up', async () => {
    const c = client();
    await c.next('session.created');
    c.send(item('float away', 'evt_float'));
    await c.next('conversation.item.done');
    await proxy.outputMatching(/floating rejection bug/, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    await stillServing();
    c.close();
  });
});
