import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { tempDir } from '../support/temp-dir.js';

/** deploy/kubernetes: the manifests hang together, and the config and policies they ship validate. */

const root = new URL('../..', import.meta.url).pathname;
const dir = `${root}deploy/kubernetes`;

interface Doc {
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly [key: string]: unknown;
}

function docs(): Doc[] {
  const out: Doc[] = [];
  for (const f of ['config.yaml', 'secret.yaml', 'deployment.yaml']) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) {
      expect(d.errors, f).toEqual([]);
      out.push(d.toJS() as Doc);
    }
  }
  return out;
}

function find(all: Doc[], kind: string, name?: string): Record<string, any> {
  const d = all.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  expect(d, `${kind} ${name ?? ''}`).toBeDefined();
  return d as Record<string, any>;
}

describe('the Kubernetes example', () => {
  const all = docs();
  const deployment = find(all, 'Deployment');
  const pod = deployment['spec'].template.spec;
  const container = pod.containers[0];
  const configMap = find(all, 'ConfigMap', 'realtime-proxy-config');
  const policiesMap = find(all, 'ConfigMap', 'realtime-proxy-policies');
  const proxyYaml: string = configMap['data']['proxy.yaml'];
  const drainSec = Number(/shutdownDrainSec: (\d+)/.exec(proxyYaml)?.[1]);

  it('probes /healthz and /readyz, pauses in preStop, and gives the drain time before SIGKILL', () => {
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    const pause = Number(container.lifecycle.preStop.exec.command[1]);
    expect(pause).toBeGreaterThan(0);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(pause + drainSec);
    const pdb = find(all, 'PodDisruptionBudget');
    expect(pdb['spec'].selector).toEqual(deployment['spec'].selector);
    expect(pdb['spec'].minAvailable).toBeLessThan(deployment['spec'].replicas);
  });

  it('wires the Secret, the ConfigMaps and a /data volume writable by the image user', () => {
    const secret = find(all, 'Secret');
    expect(container.envFrom[0].secretRef.name).toBe(secret['metadata'].name);
    expect(Object.keys(secret['stringData'])).toEqual(['OPENAI_API_KEY', 'REALTIME_PROXY_ADMIN_KEY']);
    expect(container.env).toContainEqual({ name: 'NODE_ENV', value: 'production' });
    const volumes = new Map<string, Record<string, any>>(pod.volumes.map((v: Record<string, any>) => [v['name'], v]));
    const mounts = new Map<string, string>(container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]));
    expect(volumes.get('config')?.['configMap'].name).toBe(configMap['metadata'].name);
    expect(volumes.get('policies')?.['configMap'].name).toBe(policiesMap['metadata'].name);
    expect(container.volumeMounts.some((m: { subPath?: string }) => m.subPath)).toBe(false);
    expect(mounts.get('data')).toBe('/data');
    expect(container.args).toEqual(['--config', `${mounts.get('config')}/proxy.yaml`]);
    expect(proxyYaml).toContain(`dir: ${mounts.get('policies')}`);
    expect(pod.securityContext.fsGroup).toBe(1000);
  });

  it('ships a config and policies (with a .mjs guardrail outside the app) that check-config accepts', () => {
    // Lay the ConfigMap out as the kubelet does: files in ..<timestamp>/, ..data, and links.
    const mount = tempDir('rp-k8s-policies-');
    const ts = '..2026_01_01_00_00_00.000000001';
    const items: { key: string; path: string }[] = pod.volumes.find((v: { name: string }) => v.name === 'policies').configMap.items;
    for (const item of items) {
      const file = join(mount, ts, item.path);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, policiesMap['data'][item.key]);
    }
    symlinkSync(ts, join(mount, '..data'));
    for (const top of new Set(items.map((i) => i.path.split('/')[0]!))) symlinkSync(join('..data', top), join(mount, top));
    const data = tempDir('rp-k8s-data-');
    const configDir = tempDir('rp-k8s-config-');
    const config = join(configDir, 'proxy.yaml');
    writeFileSync(config, proxyYaml.replace('/etc/realtime-proxy/policies', mount).replace('/data/', `${data}/`));
    const r = spawnSync(process.execPath, [`${root}bin/realtime-proxy.mjs`, 'check-config', '--config', config], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NODE_ENV: 'production', OPENAI_API_KEY: 'sk-test', REALTIME_PROXY_ADMIN_KEY: 'admin-key-0123456789abcdef' },
    });
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('ok (1 tenants, upstream openai');
  });
});
