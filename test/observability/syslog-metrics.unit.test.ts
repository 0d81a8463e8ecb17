/**
 * The syslog collector's metrics as the dashboard and the alert rules use them: every
 * portcullis_syslog_* name and label they query is one SyslogMetrics exports. (scrape.test.ts
 * checks the rest against a real gateway, which has no syslog section there.)
 */
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { SyslogMetrics } from '../../src/syslog/metrics.js';
import { missingFromScrape, parseExposition, usedMetrics } from './helpers.js';

describe('syslog metrics used by the dashboard and the alerts', () => {
  it('are all exported, with the labels the queries use', async () => {
    const registry = new client.Registry();
    const m = new SyslogMetrics(registry, {
      connections: () => [{ listener: 'tcp', open: 2 }],
      kernelDrops: () => [{ listener: 'udp', drops: 3 }],
      pausedConnections: () => 1,
    });
    // Labelled counters show their labels once they have a series.
    const listener = { listener: 'tcp' };
    m.messages.inc({ listener: 'tcp', format: 'cef' });
    m.dropped.inc({ listener: 'udp', reason: 'udp_full' });
    m.refused.inc({ listener: 'tcp', reason: 'idle_timeout' });
    m.records.inc({ route: 'cef', destination: 'sentinel', stream: 'Custom-CommonSecurityLog' });
    for (const c of [m.bytes, m.parseFailures, m.invalidUtf8, m.truncated, m.emptyFrames, m.connectionsTotal, m.filtered, m.unrouted, m.backpressure])
      c.inc(listener);
    const families = parseExposition(await registry.metrics());
    const uses = usedMetrics().filter((u) => u.metric.startsWith('portcullis_syslog_'));
    expect(new Set(uses.map((u) => u.metric)).size).toBeGreaterThanOrEqual(10);
    expect(missingFromScrape(uses, families)).toEqual([]);
  });
});
