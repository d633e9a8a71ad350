import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { resolveSettings } from '../../src/telemetry/settings.js';

/*
 * A platform team applies deploy/kubernetes as shipped and points its Prometheus (another pod:
 * kubernetes_sd pod discovery, or a PodMonitor) at the proxy. Until 2026-12-07 /metrics lived only
 * on the admin listener, bound to 127.0.0.1 inside the pod, and the Deployment declared no metrics
 * port: no scraper outside the pod could reach it, so every dashboard of grafana/ stayed empty and
 * no alert on sessions, refusals or spend could fire.
 *
 * Where the proxy serves /metrics is read here the way the proxy reads it (parseConfig, then the
 * telemetry settings with the pod's environment): a listener on a non-loopback address, on a port
 * the container declares, with the scrape annotations naming it.
 */

const dir = new URL('../../deploy/kubernetes', import.meta.url).pathname;

type Doc = Record<string, any>;
function docs(file: string): Doc[] {
  return parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => d.toJS() as Doc);
}

const LOOPBACK = /^(127\.|localhost$|::1$|\[::1\]$)/;

describe('deploy/kubernetes: Prometheus can scrape the proxy', () => {
  const configMap = docs('config.yaml').find((d) => d['kind'] === 'ConfigMap' && d['metadata'].name === 'realtime-proxy-config')!;
  const deployment = docs('deployment.yaml').find((d) => d['kind'] === 'Deployment')!;
  const template = deployment['spec'].template;
  const container = template.spec.containers[0];
  const podEnv = { NODE_ENV: 'production', OPENAI_API_KEY: 'sk-test', REALTIME_PROXY_ADMIN_KEY: 'admin-key-0123456789abcdef' };
  const config = parseConfig(parse(configMap['data']['proxy.yaml']), 'proxy.yaml', podEnv);
  const prometheus = resolveSettings(config.telemetry, podEnv).metrics.prometheus;
  // Port null: /metrics is a route of the admin listener (admin.host:admin.port).
  const served = prometheus.port === null ? { host: config.admin.host, port: config.admin.port } : { host: prometheus.host, port: prometheus.port };

  it('serves /metrics on an address other pods reach', () => {
    expect(prometheus.enabled).toBe(true);
    expect(served.host, `/metrics is served on ${served.host}:${served.port}`).not.toMatch(LOOPBACK);
  });

  it('declares the metrics port on the container and names it in the scrape annotations', () => {
    const ports: { name?: string; containerPort: number }[] = container.ports;
    expect(ports.map((p) => p.containerPort)).toContain(served.port);
    const annotations: Record<string, string> = template.metadata.annotations ?? {};
    expect(annotations['prometheus.io/scrape']).toBe('true');
    expect(annotations['prometheus.io/port']).toBe(String(served.port));
    expect(annotations['prometheus.io/path']).toBe(prometheus.path);
  });

  it('keeps the metrics port off the Service (tenants reach the client port only)', () => {
    const service = docs('deployment.yaml').find((d) => d['kind'] === 'Service')!;
    const named = new Map<string, number>((container.ports as { name: string; containerPort: number }[]).map((p) => [p.name, p.containerPort]));
    const targets = (service['spec'].ports as { targetPort: string | number }[]).map((p) => (typeof p.targetPort === 'string' ? named.get(p.targetPort) : p.targetPort));
    expect(targets).not.toContain(served.port);
  });
});
