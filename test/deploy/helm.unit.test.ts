/**
 * deploy/helm/portcullis: no helm binary can be installed here (Debian does not package it, and
 * nothing may be downloaded from GitHub), so the chart is rendered by Go's own text/template
 * (compiled to WebAssembly: @evertdespiegeleer/go-template), the engine Helm renders with. The
 * chart uses its built-ins only, no Sprig or Helm helpers, so Helm renders it the same; this test
 * supplies what Helm would (.Values = values.yaml deep-merged with overrides, .Release, .Chart;
 * _helpers.tpl parsed with each template) and renders with missing keys as errors (stricter than Helm).
 *
 * Every rendered object is validated against the Kubernetes OpenAPI schemas of kubernetes-models
 * 4.5 (recent enough to know 1.29's preStop `sleep` action) or the Prometheus Operator's
 * ServiceMonitor CRD schema: types, required fields, enums and patterns. Those schemas allow unknown fields (the API server refuses them with strict field
 * validation), so each field the chart promises is asserted at its path below. The rendered
 * portcullis.yaml is loaded by Portcullis's own config loader, with the Secret's files.
 * Not validated: that a cluster accepts and runs it (no API server here), helm's own lint rules.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as renderGo } from '@evertdespiegeleer/go-template';
import { ConfigMap, Secret, Service } from 'kubernetes-models/v1';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { ServiceMonitor, type IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../src/config/index.js';

const chartDir = new URL('../../deploy/helm/portcullis/', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, chartDir), 'utf8');

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Helm's merge of -f / --set values onto values.yaml: maps merge, everything else replaces. */
function merge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isObject(b) && isObject(v) ? merge(b, v) : v;
  }
  return out;
}

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

const VALIDATORS: Record<string, (o: K8sObject) => void> = {
  'v1/ConfigMap': (o) => new ConfigMap(o).validate(),
  'v1/Secret': (o) => new Secret(o).validate(),
  'v1/Service': (o) => new Service(o).validate(),
  'apps/v1/Deployment': (o) => new Deployment(o).validate(),
  'apps/v1/StatefulSet': (o) => new StatefulSet(o).validate(),
  'policy/v1/PodDisruptionBudget': (o) => new PodDisruptionBudget(o).validate(),
  'autoscaling/v2/HorizontalPodAutoscaler': (o) => new HorizontalPodAutoscaler(o).validate(),
  // The constructor's type wants spec; whether the object has one is what validate() checks.
  'monitoring.coreos.com/v1/ServiceMonitor': (o) => new ServiceMonitor(o as unknown as IServiceMonitor).validate(),
};

/** `helm template` for this chart: every object, validated against its schema. */
async function render(overrides: Json = {}, release = 'gw'): Promise<K8sObject[]> {
  const chart = parseYaml(read('Chart.yaml'), { version: '1.1' }) as { name: string; version: string; appVersion: string };
  const values = merge(parseYaml(read('values.yaml'), { version: '1.1' }) as Json, overrides);
  const data = {
    Values: values,
    Release: { Name: release, Namespace: 'monitoring', Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const helpers = read('templates/_helpers.tpl');
  const objects: K8sObject[] = [];
  for (const file of readdirSync(new URL('templates/', chartDir))
    .filter((f) => f.endsWith('.yaml'))
    .sort()) {
    const text = await renderGo(helpers + read(`templates/${file}`), data);
    for (const doc of text.split(/^---$/m)) {
      // Helm parses manifests as YAML 1.1 (sigs.k8s.io/yaml); so does this test.
      const obj = parseYaml(doc, { version: '1.1', uniqueKeys: true }) as K8sObject | null;
      if (obj === null) continue;
      const key = `${obj.apiVersion}/${obj.kind}`;
      const validate = VALIDATORS[key];
      expect(validate, `${file}: no schema for ${key}`).toBeDefined();
      try {
        validate?.(obj);
      } catch (err) {
        throw new Error(`${file}: ${key} ${obj.metadata.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      objects.push(obj);
    }
  }
  return objects;
}

function only<T = Json>(objects: K8sObject[], kind: string, name?: string): T {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  expect(
    found.map((o) => o.metadata.name),
    kind,
  ).toHaveLength(1);
  return found[0] as unknown as T;
}

interface PodSpecShape {
  terminationGracePeriodSeconds: number;
  securityContext: Json;
  containers: Array<{
    image: string;
    args: string[];
    env: Array<{ name: string; value: string }>;
    ports: Array<{ name: string; containerPort: number }>;
    readinessProbe: { httpGet: { path: string; port: string } };
    livenessProbe: { httpGet: { path: string; port: string } };
    lifecycle: { preStop: { exec: { command: string[] } } };
    securityContext: Json;
    volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
    resources: Json;
  }>;
  volumes: Array<Json & { name: string }>;
}
interface WorkloadShape {
  kind: string;
  spec: {
    replicas?: number;
    serviceName?: string;
    selector: { matchLabels: Json };
    template: { metadata: { labels: Json }; spec: PodSpecShape };
    volumeClaimTemplates?: Json[];
  };
}

/** The pod's portcullis.yaml, loaded as the pod would (its environment, its secret files). */
function loadRenderedConfig(objects: K8sObject[], pod: PodSpecShape): ReturnType<typeof parseConfig> {
  const cm = only<{ data: Record<string, string> }>(objects, 'ConfigMap');
  let text = cm.data['portcullis.yaml'] ?? '';
  const secret = objects.find((o) => o.kind === 'Secret') as unknown as { stringData: Record<string, string> } | undefined;
  if (secret) {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-helm-secrets-'));
    for (const [name, value] of Object.entries(secret.stringData)) writeFileSync(join(dir, name), value, { mode: 0o600 });
    text = text.replaceAll('/etc/portcullis/secrets/', `${dir}/`);
  }
  const env = Object.fromEntries((pod.containers[0]?.env ?? []).map((e) => [e.name, e.value]));
  return parseConfig(text, { source: 'rendered ConfigMap', env, secretEnv: {} });
}

describe('Helm chart deploy/helm/portcullis', () => {
  it('the default values render a valid Deployment, Services, ConfigMap, PodDisruptionBudget and HorizontalPodAutoscaler, and no Secret or ServiceMonitor', async () => {
    const objects = await render();
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ConfigMap/gw-portcullis',
      'Deployment/gw-portcullis',
      'HorizontalPodAutoscaler/gw-portcullis',
      'PodDisruptionBudget/gw-portcullis',
      'Service/gw-portcullis',
    ]);
    const deploy = only<WorkloadShape>(objects, 'Deployment');
    // The HPA owns the replica count.
    expect(deploy.spec.replicas).toBeUndefined();
    const hpa = only<{ spec: Json }>(objects, 'HorizontalPodAutoscaler');
    expect(hpa.spec).toMatchObject({
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'gw-portcullis' },
      minReplicas: 2,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
    });
    // CPU utilisation needs a CPU request.
    expect(deploy.spec.template.spec.containers[0]?.resources).toMatchObject({ requests: { cpu: '250m' } });
    expect(only<{ spec: Json }>(objects, 'PodDisruptionBudget').spec).toEqual({ minAvailable: 1, selector: { matchLabels: deploy.spec.selector.matchLabels } });
    // The spool of a Deployment's pod is an emptyDir.
    expect(deploy.spec.template.spec.volumes.find((v) => v.name === 'spool')).toEqual({ name: 'spool', emptyDir: {} });
  });

  it('probes: readiness on /readyz and liveness on /healthz, on the admin port the config listens on', async () => {
    const objects = await render();
    const pod = only<WorkloadShape>(objects, 'Deployment').spec.template.spec;
    const c = pod.containers[0];
    expect(c?.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    expect(c?.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    const admin = c?.ports.find((p) => p.name === 'admin')?.containerPort;
    expect(admin).toBe(9464);
    const config = loadRenderedConfig(objects, pod);
    expect(config.admin.listen).toBe(`0.0.0.0:${admin}`);
    expect(config.proxy.listen).toEqual([`0.0.0.0:${c?.ports.find((p) => p.name === 'proxy')?.containerPort}`]);
    // Every Service port's target is a named container port.
    const svc = only<{ spec: { ports: Array<{ name: string; targetPort: string }>; selector: Json } }>(objects, 'Service');
    for (const p of svc.spec.ports) expect(c?.ports.map((q) => q.name)).toContain(p.targetPort);
    expect(svc.spec.ports.map((p) => p.name)).toEqual(['proxy', 'admin']);
    expect(only<WorkloadShape>(objects, 'Deployment').spec.template.metadata.labels).toMatchObject(svc.spec.selector);
  });

  it('the admin listener is reachable by the probes even when the config keeps it on loopback', async () => {
    const objects = await render({ config: 'admin:\n  listen: "127.0.0.1:9464"\n' });
    const pod = only<WorkloadShape>(objects, 'Deployment').spec.template.spec;
    expect(loadRenderedConfig(objects, pod).admin.listen).toBe('0.0.0.0:9464');
  });

  it('drain: preStop keeps serving for drain.preStopSeconds, and the grace period exceeds preStop + drainDelayMs + drainMs', async () => {
    for (const overrides of [{}, { drain: { preStopSeconds: 10 }, terminationGracePeriodSeconds: 60 }]) {
      const objects = await render(overrides);
      const pod = only<WorkloadShape>(objects, 'Deployment').spec.template.spec;
      const cmd = pod.containers[0]?.lifecycle.preStop.exec.command ?? [];
      expect(cmd[0]).toBe('sleep');
      const preStop = Number(cmd[1]);
      expect(preStop).toBeGreaterThan(0);
      const config = loadRenderedConfig(objects, pod);
      expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(preStop + (config.proxy.drainDelayMs + config.proxy.drainMs) / 1000);
    }
  });

  it('securityContext: non-root by number, read-only root, no privilege escalation, every capability dropped; /tmp and the spool are the only writable mounts', async () => {
    const pod = only<WorkloadShape>(await render(), 'Deployment').spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      fsGroup: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const c = pod.containers[0];
    expect(c?.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c?.volumeMounts.filter((m) => m.readOnly !== true).map((m) => m.mountPath)).toEqual(['/var/lib/portcullis', '/tmp']);
    expect(c?.args).toEqual(['start', '--config', '/etc/portcullis/config/portcullis.yaml']);
    expect(c?.image).toBe('portcullis:0.1.0');
  });

  it('StatefulSet option with credentials: a claim per pod for the spool, a governing Service, the Secret mounted 0440 and its files loaded by the config, a ServiceMonitor', async () => {
    const config = [
      'proxy:',
      '  listen: ["0.0.0.0:8080"]',
      '  workers: 1',
      'allow:',
      '  presets: [azure-public, azure-arc, defender-endpoint]',
      'admin:',
      '  listen: "0.0.0.0:9464"',
      '  tokenFile: /etc/portcullis/secrets/admin-token',
      'upstreamProxy:',
      '  proxies:',
      '    - url: http://relay.corp.example:3128',
      '      username: portcullis',
      '      passwordFile: /etc/portcullis/secrets/relay-password',
      '',
    ].join('\n');
    const objects = await render(
      {
        workload: 'StatefulSet',
        autoscaling: { enabled: false },
        replicas: 3,
        spool: { size: '20Gi', storageClassName: 'fast-ssd' },
        service: { ingest: true },
        serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
        secrets: { 'admin-token': 'a "quoted" token\\with\nodd bytes', 'relay-password': 'p@ss: word' },
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        tolerations: [{ key: 'egress', value: 'true', effect: 'NoSchedule' }],
        config,
      },
      'edge',
    );
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'ConfigMap/edge-portcullis',
      'PodDisruptionBudget/edge-portcullis',
      'Secret/edge-portcullis',
      'Service/edge-portcullis',
      'Service/edge-portcullis-pods',
      'ServiceMonitor/edge-portcullis',
      'StatefulSet/edge-portcullis',
    ]);
    const sts = only<WorkloadShape>(objects, 'StatefulSet');
    expect(sts.spec.replicas).toBe(3);
    expect(sts.spec.serviceName).toBe('edge-portcullis-pods');
    expect(only<{ spec: Json }>(objects, 'Service', 'edge-portcullis-pods').spec).toMatchObject({ clusterIP: 'None' });
    expect(sts.spec.volumeClaimTemplates).toEqual([
      { metadata: { name: 'spool' }, spec: { accessModes: ['ReadWriteOnce'], storageClassName: 'fast-ssd', resources: { requests: { storage: '20Gi' } } } },
    ]);
    const pod = sts.spec.template.spec;
    expect(pod.volumes.map((v) => v.name)).not.toContain('spool');
    expect(pod.volumes.find((v) => v.name === 'secrets')).toEqual({ name: 'secrets', secret: { secretName: 'edge-portcullis', defaultMode: 0o440 } });
    expect(pod.containers[0]?.volumeMounts).toContainEqual({ name: 'secrets', mountPath: '/etc/portcullis/secrets', readOnly: true });
    expect((pod as unknown as Json).nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect((pod as unknown as Json).tolerations).toEqual([{ key: 'egress', value: 'true', effect: 'NoSchedule', operator: 'Equal' }]);
    // The Secret's values survive quoting byte for byte, and the config reads them from its files.
    const loaded = loadRenderedConfig(objects, pod);
    expect(loaded.admin.token).toBe('a "quoted" token\\with\nodd bytes');
    // (The loader does not resolve upstreamProxy passwords yet: read the file it names.)
    expect(readFileSync(loaded.upstreamProxy?.proxies[0]?.passwordFile ?? 'missing', 'utf8')).toBe('p@ss: word');
    expect(loaded.allow.presets).toEqual(['azure-public', 'azure-arc', 'defender-endpoint']);
    const svc = only<{ spec: { ports: Array<{ name: string }> } }>(objects, 'Service', 'edge-portcullis');
    expect(svc.spec.ports.map((p) => p.name)).toEqual(['proxy', 'admin', 'ingest']);
    const sm = only<{ metadata: { labels: Json }; spec: Json }>(objects, 'ServiceMonitor');
    expect(sm.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    expect(sm.spec).toMatchObject({ endpoints: [{ port: 'admin', path: '/metrics', interval: '30s' }] });
  });

  it('an existing Secret is mounted instead of rendering one', async () => {
    const objects = await render({ existingSecret: 'portcullis-creds', secrets: { 'admin-token': 'ignored' } });
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
    const pod = only<WorkloadShape>(objects, 'Deployment').spec.template.spec;
    expect(pod.volumes.find((v) => v.name === 'secrets')).toMatchObject({ secret: { secretName: 'portcullis-creds' } });
  });

  it('the schemas refuse a wrong object: a misspelt workload kind and a non-numeric port fail the render', async () => {
    await expect(render({ workload: 'Deploymnet' })).rejects.toThrow(/no schema for apps\/v1\/Deploymnet/);
    await expect(render({ ports: { admin: 'nine' } })).rejects.toThrow(/port must be integer/);
    await expect(render({ serviceMonitor: { enabled: true, interval: 'often' } })).rejects.toThrow(/interval must match pattern/);
  });
});
