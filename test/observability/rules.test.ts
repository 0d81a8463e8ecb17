/**
 * The shipped Prometheus and Grafana files: promtool accepts the rules, their unit tests pass and
 * cover every alert both ways, the example scrape config is valid, the dashboard is importable.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { requireBinary, run } from '../helpers/system.js';
import { ALERTS_FILE, ALERTS_TEST_FILE, DASHBOARD_FILE, PROMETHEUS_EXAMPLE } from './helpers.js';

const promtool = requireBinary('promtool');

interface Rule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rules = (parse(readFileSync(ALERTS_FILE, 'utf8')) as { groups: Array<{ name: string; rules: Rule[] }> }).groups.flatMap((g) => g.rules);

describe.skipIf(!promtool)('promtool', () => {
  it('check rules accepts portcullis-alerts.yml', async () => {
    const r = await run(promtool!, ['check', 'rules', ALERTS_FILE]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.code).toBe(0);
  });

  it('test rules passes portcullis-alerts.test.yml', async () => {
    const r = await run(promtool!, ['test', 'rules', ALERTS_TEST_FILE]);
    expect(r.stdout + r.stderr).not.toContain('FAILED');
    expect(r.code).toBe(0);
  });

  it('check config accepts prometheus.example.yml and the rules it loads', async () => {
    const r = await run(promtool!, ['check', 'config', PROMETHEUS_EXAMPLE]);
    expect(r.stdout).toContain('SUCCESS: 1 rule files found');
    expect(r.stdout).toContain(`SUCCESS: ${rules.length} rules found`);
    expect(r.code).toBe(0);
  });
});

describe('alert rules', () => {
  it('each alert has a severity, a for:, a summary and a description', () => {
    expect(rules.length).toBeGreaterThanOrEqual(8);
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^Portcullis[A-Z]\w+$/);
      expect(['warning', 'critical'], r.alert).toContain(r.labels?.severity);
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.annotations?.description, r.alert).toBeTruthy();
    }
    expect(new Set(rules.map((r) => r.alert)).size).toBe(rules.length);
  });

  it('the unit tests make every alert fire somewhere and stay silent somewhere', () => {
    const tests = (
      parse(readFileSync(ALERTS_TEST_FILE, 'utf8')) as {
        tests: Array<{ alert_rule_test: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
      }
    ).tests.flatMap((t) => t.alert_rule_test);
    for (const r of rules) {
      const cases = tests.filter((t) => t.alertname === r.alert);
      expect(
        cases.some((c) => (c.exp_alerts ?? []).length > 0),
        `${r.alert} never fires in the tests`,
      ).toBe(true);
      expect(
        cases.some((c) => (c.exp_alerts ?? []).length === 0),
        `${r.alert} is never tested silent`,
      ).toBe(true);
    }
  });

  it('the scrape job of the example config is the one the rules select', () => {
    const cfg = parse(readFileSync(PROMETHEUS_EXAMPLE, 'utf8')) as {
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    const job = cfg.scrape_configs.find((s) => s.job_name === 'portcullis');
    expect(job?.static_configs[0]?.targets).toContain('gateway:9464');
    const down = rules.find((r) => r.alert === 'PortcullisDown');
    expect(down?.expr).toContain('job="portcullis"');
  });
});

describe('Grafana dashboard', () => {
  const dash = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as {
    __inputs: Array<{ name: string; pluginId: string; type: string }>;
    schemaVersion: number;
    uid: string;
    panels: Array<{
      id: number;
      type: string;
      title: string;
      datasource?: { uid: string };
      gridPos: { x: number; y: number; w: number; h: number };
      targets?: Array<{ expr: string; refId: string; datasource?: { uid: string } }>;
    }>;
    templating: { list: Array<{ name: string }> };
  };

  it('is importable: a Prometheus datasource input, schema 39, unique panel ids, panels inside the grid', () => {
    expect(dash.__inputs).toEqual([expect.objectContaining({ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' })]);
    expect(dash.schemaVersion).toBe(39);
    expect(dash.uid).toBe('portcullis');
    const ids = dash.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dash.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type === 'row') continue;
      expect(p.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
      expect(p.targets?.length, p.title).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.datasource?.uid, p.title).toBe('${DS_PROMETHEUS}');
        // Every query follows the job/instance selectors, so one dashboard serves many gateways.
        expect(t.expr, p.title).toMatch(/job=~"\$job",instance=~"\$instance"/);
      }
    }
    expect(dash.templating.list.map((v) => v.name)).toEqual(['job', 'instance']);
  });

  it('has the panels an operator looks for', () => {
    const titles = dash.panels.map((p) => p.title);
    for (const t of [
      'Active client connections',
      'Connected clients (distinct IPs, 5 min)',
      'Tunnels/s by verdict',
      'Rejections/s by reason',
      'Errors/s by reason',
      'Bytes/s by rule (up above, down below)',
      'Open tunnels by rule',
      'Upstream connect latency',
      'Tunnel duration',
      'Timeouts/s by kind',
      'Workers',
      'Event-loop lag',
      'CPU',
      'Memory',
      'Forwarder records/s (received, accepted, sent)',
      'Forwarder uploads refused/s by reason',
      'Forwarder upstream responses/s by status',
      'Forwarder dead-lettered records',
      'Forwarder spool bytes vs limit',
      'Forwarder oldest unsent record age',
      'Syslog messages/s by listener and format',
      'Syslog parse failures/s',
      'Syslog messages lost/s by reason (UDP drops)',
      'Syslog TCP/TLS connections',
      'Syslog records/s by stream',
    ]) {
      expect(titles).toContain(t);
    }
  });
});
