/**
 * Red team 23 (metering): a `mode: blocking` custom guardrail pauses its direction until its verdict,
 * at most its `timeoutMs` (up to 30 s). A client that leaves mid-response is given
 * `metering.lingerAfterClientCloseMs` (5 s by default) for the response's `response.done` to be read
 * and billed as OpenAI bills it; with a guardrail timeout longer than that, the linger can end while
 * the guardrail still decides, and every response whose `response.done` waited behind it is billed at
 * its reservation (its worst case), not at its usage. Nothing said so. Neither value is clamped (each is
 * the operator's explicit choice: a guardrail timing out sooner than configured would apply its
 * `onTimeout` to honest traffic all session long); `run` and `check-config` warn alike, naming both.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { tempDir } from '../support/temp-dir.js';
import { MAX_RESPONSES } from '../../src/protocol/conversation.js';
import { scriptedMeteredProxy, scriptedResponse, textUsage, until, usageRecords, sessionThenClientEvents } from './support.js';

const bin = new URL('../../bin/realtime-proxy.mjs', import.meta.url).pathname;

const proxies: TestProxy[] = [];
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SLOW = `
export default { name: 'slow', wants: ['output'], [Symbol.for('realtime-proxy.guardrail')]: true,
  evaluate() { return new Promise(() => {}); } };
`;

/** A policies directory whose default policy runs the never-answering guardrail with these settings. */
function policiesWith(custom: { mode: string; timeoutMs?: number }, defaultsTimeoutMs?: number): string {
  const dir = tempDir('rp-linger-guardrail-');
  writeFileSync(join(dir, 'slow.mjs'), SLOW);
  const defaults = defaultsTimeoutMs === undefined ? '' : `  defaults:\n    timeoutMs: ${defaultsTimeoutMs}\n`;
  const timeout = custom.timeoutMs === undefined ? '' : `      timeoutMs: ${custom.timeoutMs}\n`;
  writeFileSync(join(dir, 'default.yaml'), `guardrails:\n${defaults}  custom:\n    - id: slow-check\n      module: ./slow.mjs\n      sources: [output]\n      mode: ${custom.mode}\n${timeout}`);
  return dir;
}

const OUTLASTS = /outlast|longer than metering\.lingerAfterClientCloseMs/;

async function runWarnings(policies: string, metering: Record<string, unknown>): Promise<Record<string, unknown>[]> {
  const tp = await startTestProxy({ config: { policies: { dir: policies, watch: false }, metering } });
  proxies.push(tp);
  return tp.logs.filter((l) => l.level === 40 && typeof l.msg === 'string' && OUTLASTS.test(l.msg));
}

describe('red team 23: a blocking custom guardrail whose timeout outlasts the close linger', () => {
  it('run warns once, naming the policy, the guardrail and both durations', async () => {
    const warned = await runWarnings(policiesWith({ mode: 'blocking', timeoutMs: 8_000 }), { lingerAfterClientCloseMs: 5_000 });
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ policy: 'default', guardrail: 'slow-check', timeoutMs: 8_000, lingerAfterClientCloseMs: 5_000 });
    expect(String(warned[0]!['msg'])).toContain('metering.lingerAfterClientCloseMs');
  });

  it('run warns for a timeout the policy defaults give it too', async () => {
    const warned = await runWarnings(policiesWith({ mode: 'blocking' }, 6_000), { lingerAfterClientCloseMs: 5_000 });
    expect(warned.map((l) => [l['guardrail'], l['timeoutMs']])).toEqual([['slow-check', 6_000]]);
  });

  it('says nothing when the linger covers the timeout, when the guardrail does not pause (parallel), without a linger (0: billed at once) or without metering', async () => {
    expect(await runWarnings(policiesWith({ mode: 'blocking', timeoutMs: 5_000 }), { lingerAfterClientCloseMs: 5_000 })).toEqual([]);
    expect(await runWarnings(policiesWith({ mode: 'parallel', timeoutMs: 8_000 }), { lingerAfterClientCloseMs: 5_000 })).toEqual([]);
    expect(await runWarnings(policiesWith({ mode: 'blocking', timeoutMs: 8_000 }), { lingerAfterClientCloseMs: 0 })).toEqual([]);
    expect(await runWarnings(policiesWith({ mode: 'blocking', timeoutMs: 8_000 }), { enabled: false })).toEqual([]);
  });

  it('a policy reloaded with such a guardrail (policies.watch) is warned about too', async () => {
    const dir = policiesWith({ mode: 'blocking', timeoutMs: 2_000 });
    const tp = await startTestProxy({ config: { policies: { dir, watch: true, watchDebounceMs: 20 }, metering: { lingerAfterClientCloseMs: 5_000 } } });
    proxies.push(tp);
    const warned = () => tp.logs.filter((l) => l.level === 40 && typeof l.msg === 'string' && OUTLASTS.test(l.msg));
    expect(warned()).toEqual([]);
    writeFileSync(join(dir, 'default.yaml'), 'version: 2\nguardrails:\n  custom:\n    - id: slow-check\n      module: ./slow.mjs\n      sources: [output]\n      mode: blocking\n      timeoutMs: 9000\n');
    await expect.poll(() => tp.logs.some((l) => l.msg === 'policy reloaded' && l['version'] === '2'), { timeout: 5_000 }).toBe(true);
    expect(warned().map((l) => [l['policy'], l['guardrail'], l['timeoutMs'], l['lingerAfterClientCloseMs']])).toEqual([['default', 'slow-check', 9_000, 5_000]]);
  });

  it('check-config warns the same on stderr, and the config is still ok (exit 0)', () => {
    const policies = policiesWith({ mode: 'blocking', timeoutMs: 8_000 });
    const dir = tempDir('rp-linger-config-');
    const file = join(dir, 'proxy.yaml');
    writeFileSync(file, `policies: { dir: ${policies}, watch: false }\nmetering: { lingerAfterClientCloseMs: 5000, ledger: { path: ':memory:' } }\ntenants:\n  t1:\n    keys: [{ key: rpk_linger_check_key_0123456789 }]\n`);
    const env = { ...process.env };
    delete env.OPENAI_API_KEY;
    const r = spawnSync(process.execPath, [bin, 'check-config', '--config', file], { encoding: 'utf8', env });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`${file}: ok`);
    const warnings = r.stderr.split('\n').filter((l) => OUTLASTS.test(l));
    expect(warnings).toHaveLength(1);
    for (const part of ['default', 'slow-check', '8000', '5000', 'metering.lingerAfterClientCloseMs']) expect(warnings[0]).toContain(part);
  });

  // What the warning is about, end to end (and finding 1 of the twenty-third pass with a guardrail in
  // place of a stalled ledger): the linger ends while the guardrail still decides on the first
  // response's text; that response's done, and the whole of a second response the upstream started
  // after it, wait behind the verdict. Both are billed at their reservation at the close; until the
  // twenty-third pass the second (its response.created and response.done both unread) was free.
  it('a response whose response.created and response.done waited behind the verdict when the linger ended is billed, at its reservation', async () => {
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        sessionThenClientEvents(ws, send, (ev) => {
          if (ev.type === 'conversation.item.create') {
            send({ type: 'response.created', response: scriptedResponse('resp_first', 'in_progress') });
            send({ type: 'response.output_text.done', response_id: 'resp_first', item_id: 'item_out', output_index: 0, content_index: 0, text: 'judged slowly' });
          }
          // The client left: the linger cancelled the running response.
          if (ev.type === 'response.cancel') {
            send({ type: 'response.done', response: scriptedResponse('resp_first', 'cancelled', { usage: textUsage(10, 5) }) });
            send({ type: 'response.created', response: scriptedResponse('resp_second', 'in_progress') });
            send({ type: 'response.done', response: scriptedResponse('resp_second', 'completed', { usage: textUsage(10, 5) }) });
          }
        });
      },
      { config: { policies: { dir: policiesWith({ mode: 'blocking', timeoutMs: 30_000 }), watch: false } }, metering: { lingerAfterClientCloseMs: 300 } },
    );
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } });
    await c.next('response.created');
    c.close();
    await c.closed;

    const records = async (): Promise<Record<string, unknown>[]> => await usageRecords(tp.adminUrl, '?tenant=acme');
    await until(() => tp.logs.some((l) => l.msg === 'session end'), 10_000, 'the session ended');
    await until(async () => (await records()).length >= 2, 10_000, 'both responses billed');
    const all = await records();
    expect(all.map((r) => [r['ref'], r['source'], r['estimated'], r['settledBy']]).sort()).toEqual([
      ['resp_first', 'response', true, 'client_gone_estimate'],
      ['resp_second', 'response', true, 'client_gone_estimate'],
    ]);
    for (const r of all) expect(r['costNanos']).toBeGreaterThan(0);
  });
});

/*
 * Found 2026-12-07 (bounds helper): at most 64 responses run at once, but a done one frees its place,
 * so a client's creates go on while the verdict holds the server direction; the view keeps the last
 * MAX_RESPONSES (256) done ones, and the close walked only those: the oldest of 300 were released as
 * never started, free.
 */
describe('more responses than the view keeps, started and ended behind one verdict', () => {
  it(`${MAX_RESPONSES + 44} out-of-band creates answered while the guardrail decides: each billed once at the close`, async () => {
    const N = MAX_RESPONSES + 44;
    let answered = 0;
    const tp = await scriptedMeteredProxy(
      cleanups,
      (ws, send) => {
        sessionThenClientEvents(ws, send, (ev) => {
          if (ev.type === 'conversation.item.create') {
            send({ type: 'response.created', response: scriptedResponse('resp_first', 'in_progress') });
            send({ type: 'response.output_text.done', response_id: 'resp_first', item_id: 'item_out', output_index: 0, content_index: 0, text: 'judged slowly' });
          }
          if (ev.type === 'response.create') {
            const id = `resp_oob_${answered++}`;
            send({ type: 'response.created', response: scriptedResponse(id, 'in_progress', { conversation_id: null, max_output_tokens: 16 }) });
            send({ type: 'response.done', response: scriptedResponse(id, 'completed', { conversation_id: null, max_output_tokens: 16, usage: textUsage(10, 5) }) });
          }
        });
      },
      {
        tenants: { acme: { limits: { dailyUsd: 10_000 } } },
        config: { policies: { dir: policiesWith({ mode: 'blocking', timeoutMs: 30_000 }), watch: false } },
        metering: { lingerAfterClientCloseMs: 300 },
      },
    );
    const c = await tp.client();
    await c.next('session.created');
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'go' }] } });
    await c.next('response.created');
    // In waves the relay lets run at once (the first still runs): the next once the upstream answered these.
    for (let sent = 0; sent < N; ) {
      const wave = Math.min(32, N - sent);
      for (let i = 0; i < wave; i++) c.send({ type: 'response.create', response: { conversation: 'none', output_modalities: ['text'], max_output_tokens: 16 } });
      sent += wave;
      await until(() => answered === sent, 10_000, `${sent} creates answered upstream`);
    }
    // Nothing past the first response.created reached the client: the rest waits behind the verdict.
    expect(c.events).toEqual([expect.objectContaining({ type: 'session.created' }), { type: 'response.created', response: scriptedResponse('resp_first', 'in_progress') }]);
    c.close();
    await c.closed;

    const records = async (): Promise<Record<string, unknown>[]> => await usageRecords(tp.adminUrl, '?tenant=acme');
    await until(() => tp.logs.some((l) => l.msg === 'session end'), 10_000, 'the session ended');
    await until(async () => (await records()).length >= N + 1, 10_000, 'every response billed');
    const all = await records();
    const refs = all.map((r) => String(r['ref']));
    expect(new Set(refs).size).toBe(N + 1);
    // The view keeps 256: the first (running) and the last 255; the 45 before those are billed by their place.
    expect(refs.filter((r) => r.startsWith('resp_oob_'))).toHaveLength(MAX_RESPONSES - 1);
    expect(refs.filter((r) => r.startsWith('unread-response:'))).toHaveLength(N - MAX_RESPONSES + 1);
    expect(refs).toContain('resp_first');
    for (const r of all) expect([r['estimated'], r['settledBy'], (r['costNanos'] as number) > 0]).toEqual([true, 'client_gone_estimate', true]);
  }, 60_000);
});
