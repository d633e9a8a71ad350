/**
 * A bench config file's document (bench/config/*.yaml) as the proxy runs it in the bench: its
 * listeners on loopback with ports the OS picks, `workers` relay workers, and the upstream at
 * `upstreamUrl` (the fake upstream, or a port nothing listens on when nothing connects).
 */
export function relayConfigInput(doc: Record<string, unknown>, upstreamUrl: string, workers: number): Record<string, unknown> {
  const section = (name: string) => (doc[name] ?? {}) as Record<string, unknown>;
  return {
    ...doc,
    server: { ...section('server'), host: '127.0.0.1', port: 0, workers },
    admin: { ...section('admin'), host: '127.0.0.1', port: 0 },
    upstream: { ...section('upstream'), provider: 'openai', url: upstreamUrl, apiKey: 'sk-bench-upstream' },
  };
}
