import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import * as S from '../../src/telemetry/semconv.js';
import { allPanels, GRAFANA_DIR, loadDashboards, prometheusBinaries, promtool, targetsOf } from './support/dashboards.js';

/**
 * Structural checks of grafana/ (Grafana, Tempo and the collector cannot run here): dashboards are
 * well-formed and only use variables and metric names that exist; provisioning, compose and the
 * configs they mount agree with each other. Query results are tested against a real Prometheus in
 * prometheus.test.ts.
 */

const yamlOf = (file: string): Record<string, unknown> => parseYaml(readFileSync(join(GRAFANA_DIR, file), 'utf8')) as Record<string, unknown>;

/** Prometheus names the JS exporter gives our instruments (counters get `_total`). */
function exportedNames(): Set<string> {
  const names = new Set<string>(['target_info']);
  const counters = new Set<string>([
    S.METRIC_TURNS, S.METRIC_INTERRUPTIONS, S.METRIC_USAGE_TOKENS, S.METRIC_USAGE_COST, S.METRIC_AUDIO_DURATION, S.METRIC_SESSIONS_STARTED,
    S.METRIC_SESSIONS_ENDED, S.METRIC_GUARDRAIL_TRIPS, S.METRIC_BUDGET_EVENTS, S.METRIC_PRUNES, S.METRIC_LOCKS, S.METRIC_VERDICTS, S.METRIC_ERRORS,
    S.METRIC_RELAY_FRAMES, S.METRIC_RELAY_BYTES, S.METRIC_BACKPRESSURE, S.METRIC_UPGRADES_REFUSED, S.METRIC_HTTP_REFUSED, S.METRIC_CALL_NOTIFICATIONS, S.METRIC_CALL_TRANSFERS,
  ]);
  const histograms = [
    S.METRIC_OPERATION_DURATION, S.METRIC_TOKEN_USAGE, S.METRIC_INVOKE_AGENT_DURATION, S.METRIC_EXECUTE_TOOL_DURATION, S.METRIC_TURN_RESPONSE_LATENCY,
    S.METRIC_TURN_VOICE_TO_VOICE, S.METRIC_TURN_TIME_TO_FIRST_TEXT, S.METRIC_RESPONSE_TIME_TO_FIRST_AUDIO, S.METRIC_SESSION_DURATION, S.METRIC_UPSTREAM_CONNECT,
    S.METRIC_RELAY_LATENCY,
  ];
  const prom = (n: string) => n.replaceAll('.', '_');
  for (const c of counters) names.add(`${prom(c)}_total`);
  for (const h of histograms) for (const s of ['_bucket', '_count', '_sum']) names.add(prom(h) + s);
  names.add(prom(S.METRIC_SESSIONS_ACTIVE));
  return names;
}

describe('grafana dashboards (structure)', () => {
  const dashboards = loadDashboards();

  it('has the four dashboards with fixed uids, null ids and a schema version', () => {
    expect([...dashboards.keys()]).toEqual(['rtproxy-governance.json', 'rtproxy-overview.json', 'rtproxy-traces.json', 'rtproxy-usage.json']);
    const uids = new Set<string>();
    for (const [file, d] of dashboards) {
      expect(d.uid).toBe(file.replace('.json', ''));
      expect(d.id).toBeNull();
      expect(d.schemaVersion).toBeGreaterThanOrEqual(36);
      expect(d.tags).toContain('rtproxy');
      uids.add(d.uid);
    }
    expect(uids.size).toBe(4);
  });

  it('panels have unique ids, fit the 24-column grid, and use a templated datasource', () => {
    for (const [file, d] of dashboards) {
      const panels = allPanels(d.panels);
      const ids = panels.map((p) => p.id);
      expect(new Set(ids).size, file).toBe(ids.length);
      for (const p of panels) {
        expect(p.gridPos.x + p.gridPos.w, `${file}: ${p.title}`).toBeLessThanOrEqual(24);
        expect(p.gridPos.h).toBeGreaterThan(0);
        if (p.type === 'row' || p.type === 'text') continue;
        expect(['${datasource}', '${tempo_ds}'], `${file}: ${p.title}`).toContain(p.datasource?.uid);
        expect(p.targets?.length, `${file}: ${p.title}`).toBeGreaterThan(0);
      }
    }
  });

  it('every query uses defined variables, known metric names and the right datasource type', () => {
    const known = exportedNames();
    let promql = 0;
    let traceql = 0;
    for (const [file, d] of dashboards) {
      const vars = new Set(d.templating.list.map((v) => v.name));
      for (const t of targetsOf(file, d)) {
        const where = `${file}: ${t.panel} ${t.refId}`;
        for (const m of t.query.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)/g)) {
          const name = m[1]!;
          if (name.startsWith('__')) continue;
          expect(vars.has(name), `${where} uses undefined variable $${name}`).toBe(true);
        }
        if (t.kind === 'promql') {
          promql++;
          expect(t.datasourceUid, where).toBe('${datasource}');
          const metrics = [...t.query.matchAll(/\b((?:rtproxy|gen_ai)_[a-z0-9_]+)\s*\{/g)].map((m) => m[1]!);
          expect(metrics.length, `${where}: no metric`).toBeGreaterThan(0);
          for (const m of metrics) expect(known.has(m), `${where}: unknown metric ${m}`).toBe(true);
        } else {
          traceql++;
          expect(t.datasourceUid, where).toBe('${tempo_ds}');
          expect(t.query).toMatch(/^\{.*\}$/);
        }
      }
      for (const v of d.templating.list) {
        if (v.type !== 'query') continue;
        expect(v.allValue).toBe('.*');
        expect(v.datasource?.uid).toBe('${datasource}');
      }
    }
    expect(promql).toBeGreaterThan(40);
    expect(traceql).toBeGreaterThanOrEqual(6);
  });

  it('links the metric dashboards to the traces dashboard', () => {
    const overview = readFileSync(join(GRAFANA_DIR, 'dashboards/rtproxy-overview.json'), 'utf8');
    expect(overview).toContain('/d/rtproxy-traces/');
  });
});

describe('grafana provisioning and docker-compose (structure)', () => {
  it('provisions Prometheus and Tempo with the uids the dashboards default to', () => {
    const ds = yamlOf('provisioning/datasources/datasources.yaml') as { apiVersion: number; datasources: { name: string; type: string; uid: string; url: string }[] };
    expect(ds.apiVersion).toBe(1);
    expect(ds.datasources.map((d) => [d.type, d.uid])).toEqual([
      ['prometheus', 'prometheus'],
      ['tempo', 'tempo'],
    ]);
    for (const d of loadDashboards().values()) {
      for (const v of d.templating.list) {
        if (v.type === 'datasource') expect(['prometheus', 'tempo']).toContain(v.query);
      }
    }
  });

  it('compose brings up proxy, collector, Prometheus, Tempo, Grafana and Redis with mounts that exist', () => {
    const compose = yamlOf('docker-compose.yml') as { services: Record<string, { image?: string; build?: { context: string; dockerfile: string }; volumes?: string[]; depends_on?: string[]; ports?: string[] }> };
    const services = compose.services;
    expect(Object.keys(services).sort()).toEqual(['grafana', 'otel-collector', 'prometheus', 'proxy', 'redis', 'tempo']);
    expect(existsSync(resolve(GRAFANA_DIR, services['proxy']!.build!.context, services['proxy']!.build!.dockerfile))).toBe(true);
    for (const [name, svc] of Object.entries(services)) {
      expect(Boolean(svc.image) || Boolean(svc.build), name).toBe(true);
      if (svc.image) expect(svc.image, name).toMatch(/:[\w.-]+$/); // pinned tags
      for (const dep of svc.depends_on ?? []) expect(Object.keys(services)).toContain(dep);
      for (const v of svc.volumes ?? []) {
        const src = v.split(':')[0]!;
        if (src.startsWith('.')) expect(existsSync(resolve(GRAFANA_DIR, src)), `${name}: ${src}`).toBe(true);
      }
    }
    const grafanaVolumes = services['grafana']!.volumes!.join('\n');
    const provider = yamlOf('provisioning/dashboards/dashboards.yaml') as { providers: { options: { path: string } }[] };
    expect(grafanaVolumes).toContain(`./dashboards:${provider.providers[0]!.options.path}`);
  });

  it('the collector forwards OTLP traces to Tempo, and the proxy config exports to the collector', () => {
    const col = yamlOf('otel-collector.yaml') as { receivers: Record<string, unknown>; exporters: Record<string, { endpoint?: string }>; service: { pipelines: Record<string, { receivers: string[]; exporters: string[]; processors: string[] }> } };
    const traces = col.service.pipelines['traces']!;
    expect(traces.receivers).toEqual(['otlp']);
    for (const e of traces.exporters) expect(col.exporters[e]).toBeDefined();
    expect(col.exporters['otlp/tempo']!.endpoint).toBe('tempo:4317');
    const tempo = yamlOf('tempo.yaml') as { distributor: { receivers: { otlp: { protocols: { grpc: { endpoint: string } } } } } };
    expect(tempo.distributor.receivers.otlp.protocols.grpc.endpoint).toMatch(/:4317$/);

    const raw = readFileSync(join(GRAFANA_DIR, 'proxy.yaml'), 'utf8');
    const config = parseConfig(parseYaml(raw), 'grafana/proxy.yaml', {});
    expect(config.telemetry.traces.endpoint).toBe('http://otel-collector:4318/v1/traces');
    expect(config.telemetry.metrics.prometheus.port).toBeNull();
    expect(config.server.port).toBe(8080);
    expect(config.admin.port).toBe(8081);
  });

  it('prometheus.yml passes promtool check config and scrapes the proxy', () => {
    const { promtool: bin } = prometheusBinaries();
    const res = promtool(bin, ['check', 'config', join(GRAFANA_DIR, 'prometheus.yml')]);
    expect(res.ok, res.output).toBe(true);
    const prom = yamlOf('prometheus.yml') as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
    expect(prom.scrape_configs.find((s) => s.job_name === 'realtime-proxy')!.static_configs[0]!.targets).toEqual([`proxy:${parseConfig(parseYaml(readFileSync(join(GRAFANA_DIR, 'proxy.yaml'), 'utf8')), 'grafana/proxy.yaml', {}).admin.port}`]);
  });
});
