import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { callsProxy, mint, until } from '../calls/support.js';
import type { TestProxy } from '../support/harness.js';

/**
 * Adversarial review of the HTTP surface (2026-12-06): one tenant's (or one browser's) unfinished
 * request bodies take the memory budget every tenant shares.
 *
 * README, threat model: "an authenticated tenant is treated as hostile to every other tenant", and
 * HTTP bodies "count in the same budget while held (503 overloaded past it)". Bodies of senders not
 * yet authenticated are bounded per source and by a deadline; once the sender is authenticated —
 * a tenant key, or a *client secret* (a browser's, i.e. an end user's credential) looked up in the
 * store — neither holds: no per-tenant (or per-secret) share, no deadline of the proxy's own (uWS
 * cuts a stalled body after ~10 s; measured: a body fed 17 KiB every 4 s was cut at 12 s). So the
 * holder of one client secret, posting unfinished SDP offers to /v1/realtime/calls, fills
 * `server.memoryBudgetBytes`, and from then on every other tenant's new WebSocket session is
 * refused 503 `overloaded` and its HTTP requests too, for as long as it re-posts them: about
 * 25 KB/s per 250 KiB held (the default 256 MiB budget: ~1,000 connections, ~25 MB/s; a smaller
 * budget, proportionally less). A per-tenant share of the body bytes (as unauthenticated senders
 * have per source) would keep the damage inside the attacker's own tenant.
 */

const KiB = 1024;

/** One POST whose body is left unfinished (the connection kept open). */
function unfinishedPost(port: number, path: string, headers: Readonly<Record<string, string>>, part: Buffer): Socket {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => undefined);
  s.write([`POST ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), '', ''].join('\r\n'));
  s.write(part);
  return s;
}

/** Opens a WebSocket session with a tenant key: 'open', or the refusal's status and body. */
function upgrade(url: string, key: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101, body: '' });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('error', () => undefined);
  });
}

describe("adversary: a client secret's unfinished bodies and the shared memory budget", () => {
  let tp: TestProxy;
  const held: Socket[] = [];
  // 5 × 200 KiB fills it exactly.
  const BUDGET = 5 * 200 * KiB;

  beforeAll(async () => {
    tp = await callsProxy({ tenants: { acme: {}, other: {} }, extra: { config: { server: { memoryBudgetBytes: BUDGET } } } });
  });

  afterAll(async () => {
    for (const s of held) s.destroy();
    await tp?.stop();
  });

  it("another tenant's session and client-secret request still get through while one secret holder keeps offers unfinished", async () => {
    const secret = await mint(tp, 'acme');
    expect(secret.status).toBe(200);
    const ek = secret.json['value'] as string;
    const part = Buffer.from(`v=0\r\n${'a=x\r\n'.repeat((200 * KiB - 5) / 5)}`, 'latin1');
    expect(part.length).toBe(200 * KiB);
    // What the proxy answered each offer (the bytes up to the end of its head), once it did.
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) {
      const s = unfinishedPost(tp.port, '/v1/realtime/calls', { authorization: `Bearer ${ek}`, 'content-type': 'application/sdp', 'content-length': String(250 * KiB) }, part);
      let text = '';
      let answered = false;
      s.on('data', (d: Buffer) => {
        text += d.toString('latin1');
        if (answered || !text.includes('\r\n\r\n')) return;
        answered = true;
        answers.push(text);
      });
      held.push(s);
    }
    const budget = tp.proxy.server.memoryBudget;
    // The secret was looked up; its bodies are read as authenticated. Fixed 2026-12-06: they count
    // in the tenant's share of the budget (a quarter), so each offer is either held whole or refused.
    // (This wait said "all five held" before the fix: the attack's own precondition, which the fix removes.)
    await until(() => answers.length >= 1 && budget.held === (5 - answers.length) * part.length, 'each offer held or refused', 10_000);
    expect(budget.held).toBeLessThanOrEqual(budget.ownerShare);
    expect(answers.every((a) => a.startsWith('HTTP/1.1 503 ') && a.includes('"code":"overloaded"'))).toBe(true);
    expect(tp.proxy.server.unverifiedBodies).toBe(0);
    // Tenant "other" has done nothing; today both are refused while acme's browser holds the budget.
    const session = await upgrade(tp.url, tp.key('other'));
    expect(session).toEqual({ status: 101, body: '' });
    const otherMint = await mint(tp, 'other');
    expect(otherMint.status).toBe(200);
    expect(otherMint.json['value']).toMatch(/^ek_proxy_/);
  });

  it("a tenant's stalled body gets the proxy's own deadline: 408 request_timeout, its bytes released (added with the fix)", async () => {
    const budget = tp.proxy.server.memoryBudget;
    const s = unfinishedPost(tp.port, '/v1/realtime/client_secrets', { authorization: `Bearer ${tp.key('other')}`, 'content-type': 'application/json', 'content-length': String(100 * KiB) }, Buffer.from('{"session":', 'latin1'));
    held.push(s);
    // Before the fix: no answer at all (uWS cut the connection after ~10-14 s, or never while bytes trickled).
    const answer = await new Promise<string>((resolve) => {
      let text = '';
      s.on('data', (d: Buffer) => (text += d.toString('latin1')));
      s.on('close', () => resolve(text));
    });
    expect(answer.split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).toEqual({ error: { type: 'invalid_request_error', code: 'request_timeout', message: 'The request body did not arrive in time.' } });
    await until(() => budget.heldBy('tenant:other') === 0, 'the stalled body released');
    expect(tp.proxy.server.unverifiedBodies).toBe(0);
  });
});
