import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const GRAFANA_DIR = fileURLToPath(new URL('../../../grafana', import.meta.url));

export interface PanelTarget {
  readonly dashboard: string;
  readonly panel: string;
  readonly refId: string;
  readonly datasourceUid: string;
  /** PromQL (`expr`) or TraceQL (`query`). */
  readonly query: string;
  readonly kind: 'promql' | 'traceql';
  readonly instant: boolean;
}

export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly datasource?: { type: string; uid: string };
  readonly targets?: readonly Record<string, unknown>[];
  readonly panels?: readonly Panel[];
}

export interface Dashboard {
  readonly uid: string;
  readonly id: null;
  readonly title: string;
  readonly schemaVersion: number;
  readonly tags: readonly string[];
  readonly panels: readonly Panel[];
  readonly templating: { list: readonly { name: string; type: string; query: unknown; allValue?: string; datasource?: { uid: string } }[] };
}

export function loadDashboards(): Map<string, Dashboard> {
  const out = new Map<string, Dashboard>();
  const dir = join(GRAFANA_DIR, 'dashboards');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) {
    out.set(f, JSON.parse(readFileSync(join(dir, f), 'utf8')) as Dashboard);
  }
  return out;
}

export function allPanels(panels: readonly Panel[]): Panel[] {
  const out: Panel[] = [];
  for (const p of panels) {
    out.push(p);
    if (p.panels) out.push(...allPanels(p.panels));
  }
  return out;
}

export function targetsOf(name: string, d: Dashboard): PanelTarget[] {
  const out: PanelTarget[] = [];
  for (const p of allPanels(d.panels)) {
    for (const t of p.targets ?? []) {
      const ds = (t['datasource'] as { uid?: string } | undefined)?.uid ?? p.datasource?.uid ?? '';
      const expr = t['expr'];
      const query = t['query'];
      if (typeof expr === 'string') {
        out.push({ dashboard: name, panel: p.title, refId: String(t['refId']), datasourceUid: ds, query: expr, kind: 'promql', instant: t['instant'] === true });
      } else if (typeof query === 'string') {
        out.push({ dashboard: name, panel: p.title, refId: String(t['refId']), datasourceUid: ds, query, kind: 'traceql', instant: false });
      }
    }
  }
  return out;
}

/** Grafana's variables, as a dashboard with every "All" selected would expand them. */
export function substitute(expr: string, vars: { rateInterval: string; range: string }): string {
  return expr
    .replaceAll('$__rate_interval', vars.rateInterval)
    .replaceAll('$__range', vars.range)
    .replaceAll('$__interval', '15s')
    .replaceAll('${tenant}', '.*')
    .replaceAll('$tenant', '.*')
    .replaceAll('${model}', '.*')
    .replaceAll('$model', '.*');
}

/** Absolute path of an executable on PATH (or in /usr/bin, /usr/sbin), or null. */
export function which(name: string): string | null {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/bin', '/usr/sbin', '/usr/local/bin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    if (existsSync(p)) return p;
  }
  return null;
}

/** The Debian `prometheus` package's binaries; throws (so tests fail, never skip) when absent. */
export function prometheusBinaries(): { prometheus: string; promtool: string } {
  const prometheus = which('prometheus');
  const promtool = which('promtool');
  if (!prometheus || !promtool) {
    throw new Error('prometheus and promtool are required for these tests: apt-get install -y prometheus');
  }
  return { prometheus, promtool };
}

export function promtool(promtoolPath: string, args: readonly string[], input?: string): { ok: boolean; output: string } {
  try {
    const output = execFileSync(promtoolPath, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
    return { ok: true, output };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}${e.message}` };
  }
}
