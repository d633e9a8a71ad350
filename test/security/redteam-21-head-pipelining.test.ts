import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startTestProxy, type TestProxy } from '../support/harness.js';
import { FLOOD_BYTES, pipelineWithoutReading } from '../support/raw-upgrade.js';

/**
 * Red team, no key: one connection that pipelines HEAD requests and never reads the answers.
 *
 * HEAD probes were served from 2026-12-07 (Azure Front Door's default probe): a HEAD answer was ended
 * with `endWithoutBody`, which, like `end`, buffers in the process whatever the socket does not take
 * and keeps the connection, so uWS went on reading and answering. The fix of 2026-12-06
 * (test/security/redteam-preauth-pipelining.test.ts: answers written with `tryEnd`, or closing the
 * connection when they have no body) did not reach this path: a client sending `HEAD /healthz` (or a
 * HEAD of any path: the 404) back to back without reading made the proxy hold every answer's head,
 * about 3 bytes per byte it sent (32 MB sent: +89 MB resident), unbounded and outside the memory
 * budget. Now a HEAD answer closes the connection, as a CORS preflight's bodiless 204 does (probes
 * open a connection per probe).
 * The bound asserted is in bytes the client could hand over before the proxy cut the connection
 * (loopback socket buffers hold a few MiB); before the fix every byte was taken.
 */

/** One HEAD on a connection of its own, read whole: the status line and headers as the bytes say. */
function headOnce(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`HEAD ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`));
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) socket.destroy();
    });
    socket.on('close', () => resolve(got));
    socket.on('error', () => resolve(got));
  });
}

describe('red team (no key): pipelined HEAD requests whose answers are never read', () => {
  let tp: TestProxy | null = null;
  afterEach(async () => {
    await tp?.stop();
    tp = null;
  });

  it.each([
    ['HEAD /healthz', '/healthz'],
    ['HEAD /readyz', '/readyz'],
    ['HEAD of an unknown path (404)', '/nothing-here'],
  ])('%s back to back on one connection: the proxy cuts the connection instead of buffering every answer', async (_what, path) => {
    tp = await startTestProxy();
    const flood = await pipelineWithoutReading(tp.port, `HEAD ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    // Old code: every byte taken (cut false): the proxy held each answer's head.
    expect(flood.cut).toBe(true);
    expect(flood.sent).toBeLessThan(FLOOD_BYTES);
    expect((await fetch(`${tp.httpUrl}/healthz`)).status).toBe(200);
  });

  it('control: a HEAD probe still gets the GET\'s status and headers, without a body, and the connection is closed', async () => {
    tp = await startTestProxy();
    const answer = await headOnce(tp.port, '/healthz');
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(answer.toLowerCase()).toContain('content-type: application/json');
    expect(answer.toLowerCase()).toContain('connection: close');
    expect(answer.slice(answer.indexOf('\r\n\r\n') + 4)).toBe('');
  });
});
