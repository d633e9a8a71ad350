import { describe, expect, it } from 'vitest';
import { barrier, guardedRecordingProxy, type RecordedConnection } from './edges-support.js';

/**
 * Red team (locks, fifteenth pass): the MCP `server_url` allowlist and URL parser differentials.
 *
 * The tools lock checks a tool's `server_url` with the WHATWG URL parser (`new URL`), which reads a
 * backslash in a special scheme's authority as a path separator: `https://mcp.acme.example\@evil.example/`
 * is host `mcp.acme.example`, path `/@evil.example/`, allowed under `https://mcp.acme.example/` (the
 * allowlist entry policies/README.md shows). The proxy then forwarded the string as the client wrote it,
 * and an RFC 3986 reader (Python's `urllib.parse.urlsplit`, which reports hostname `evil.example` for it;
 * the upstream is not Node) reads the authority up to the first `/`: user info
 * `mcp.acme.example\`, host `evil.example`. Which server OpenAI then lists tools from and calls is
 * not the one the policy allowed; the lock must hold whatever parser reads the URL.
 * README ("Session locks"): "MCP allowlist by `server_url`".
 *
 * Real proxy on loopback, a recording upstream: assertions are on the bytes the upstream received.
 */

const POLICY = `
locks:
  tools:
    mcpServerUrls: ["https://mcp.acme.example/"]
    requireApproval: always
`;

const proxy = guardedRecordingProxy(POLICY, 'mcp-url');

/** The host an RFC 3986 reader takes: the authority runs to the first `/`, `?` or `#`; the host follows its last `@`. */
function rfc3986Host(url: string): string | null {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(url)?.[1];
  if (authority === undefined) return null;
  return authority.slice(authority.lastIndexOf('@') + 1).replace(/:\d*$/, '').toLowerCase();
}

/** The `server_url` of every MCP tool the upstream received after `from`. */
function forwardedServerUrls(up: RecordedConnection, from: number): string[] {
  const urls: string[] = [];
  for (const raw of up.raw.slice(from)) {
    if (raw.includes('"barrier_')) continue;
    const ev = JSON.parse(raw) as { session?: { tools?: unknown[] }; response?: { tools?: unknown[] } };
    for (const t of [...(ev.session?.tools ?? []), ...(ev.response?.tools ?? [])]) {
      const tool = t as { type?: string; server_url?: string };
      if (tool.type === 'mcp' && typeof tool.server_url === 'string') urls.push(tool.server_url);
    }
  }
  return urls;
}

const mcpTool = (serverUrl: string) => ({ type: 'mcp', server_label: 'kb', server_url: serverUrl, require_approval: 'always' });

describe('red team 15: an MCP server_url that parsers read differently', () => {
  it('a backslash before "@": whatever reaches the upstream names the allowed host to an RFC 3986 reader too', async () => {
    const { c, up } = await proxy.connect();
    const from = up.raw.length;
    c.send({ type: 'session.update', session: { type: 'realtime', tools: [mcpTool('https://mcp.acme.example\\@evil.example/')] } });
    c.send({ type: 'response.create', response: { tools: [mcpTool('https://mcp.acme.example\\@evil.example/sse')] } });
    await barrier(c, up, 'mcp-url');
    const urls = forwardedServerUrls(up, from);
    // Old code: both forwarded as written; an RFC 3986 reader (Python's urlsplit) connects to evil.example.
    expect(urls.map(rfc3986Host).filter((h) => h !== 'mcp.acme.example')).toEqual([]);
  });

  it('controls: an allowed URL passes as it is; another host is still refused', async () => {
    const { c, up } = await proxy.connect();
    const from = up.raw.length;
    c.send({ type: 'session.update', session: { type: 'realtime', tools: [mcpTool('https://mcp.acme.example/sse'), mcpTool('https://evil.example/')] } });
    await barrier(c, up, 'mcp-url-control');
    expect(forwardedServerUrls(up, from)).toEqual(['https://mcp.acme.example/sse']);
  });
});
