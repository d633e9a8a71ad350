import { afterEach, describe, expect, it } from 'vitest';
import { policyDir } from '../policies/support.js';
import { startTestProxy, type TestClient, type TestProxy } from '../support/harness.js';
import { barrier, recordingUpstream, type RecordedConnection, type RecordingUpstream } from './edges-support.js';

/**
 * Adversarial review of the session locks, 2026-12-05: the tools lock's MCP `server_url` allowlist
 * ("tools (function allowlist, MCP server_url allowlist, forced require_approval)").
 *
 * The Realtime API's MCP tool names its server by one of three members: "One of `server_url`,
 * `connector_id`, or `tunnel_id` must be provided" (openai 7.57 `RealtimeToolsConfigUnion.Mcp`,
 * and the same for response.create tools). The lock reads `server_url` only: a tool that names an
 * allowed `server_url` and also a `connector_id` (Gmail, Drive, Outlook…) or a `tunnel_id` (a
 * Secure MCP Tunnel) passes unchanged, and which server the upstream then connects to is the
 * upstream's choice, not the policy's. A lock that allows servers by URL must not forward a tool
 * that names its server any other way (refused, or the other members removed).
 *
 * Real proxy on loopback, a recording upstream: assertions are on the bytes the upstream received.
 */

const POLICY = `
locks:
  tools:
    functions: [lookup_order]
    mcpServerUrls: ["https://mcp.acme.example/support"]
    requireApproval: always
`;

const proxies: TestProxy[] = [];
const upstreams: RecordingUpstream[] = [];
afterEach(async () => {
  // The upstream first: a session whose response it never ended then ends at once, where stopping the
  // proxy first waits out the linger bound for that response.done (5 s a test).
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  await Promise.all(proxies.splice(0).map((p) => p.stop()));
});

async function setup(): Promise<{ c: TestClient; up: RecordedConnection }> {
  const upstream = await recordingUpstream();
  upstreams.push(upstream);
  const tp = await startTestProxy({
    tenants: { acme: { policy: 'mcp' } },
    config: {
      upstream: { provider: 'openai', url: upstream.url, apiKey: 'sk-upstream' },
      policies: { dir: policyDir({ 'mcp.yaml': POLICY }), watch: false },
    },
  });
  proxies.push(tp);
  const c = await tp.client();
  const up = await upstream.connection();
  await c.next('session.created');
  return { c, up };
}

/** Every MCP tool the upstream received after `from`, in session.update and response.create alike. */
function mcpToolsForwarded(up: RecordedConnection, from: number): Record<string, unknown>[] {
  const tools: Record<string, unknown>[] = [];
  for (const raw of up.raw.slice(from)) {
    if (raw.includes('"barrier_')) continue;
    const ev = JSON.parse(raw) as { session?: { tools?: unknown[] }; response?: { tools?: unknown[] } };
    for (const t of [...(ev.session?.tools ?? []), ...(ev.response?.tools ?? [])]) {
      if ((t as { type?: string }).type === 'mcp') tools.push(t as Record<string, unknown>);
    }
  }
  return tools;
}

describe('adversary (locks/mcp): an MCP tool is on an allowed server only by its server_url', () => {
  it.each([
    ['connector_id', 'connector_gmail'],
    ['tunnel_id', 'tun_attacker_1'],
  ])('a tool naming an allowed server_url and a %s (%s) does not reach the upstream with it', async (member, value) => {
    const { c, up } = await setup();
    const from = up.raw.length;
    const tool = { type: 'mcp', server_label: 'acme', server_url: 'https://mcp.acme.example/support', [member]: value, require_approval: 'always' };
    c.send({ type: 'session.update', session: { type: 'realtime', tools: [tool] } });
    c.send({ type: 'response.create', response: { tools: [tool] } });
    await barrier(c, up, member);
    const forwarded = mcpToolsForwarded(up, from);
    // Refused or stripped, either way: no MCP tool upstream names its server other than by an allowed URL.
    expect(forwarded.filter((t) => t[member] !== undefined)).toEqual([]);
    expect(up.raw.slice(from).join('\n')).not.toContain(value);
  });
});
