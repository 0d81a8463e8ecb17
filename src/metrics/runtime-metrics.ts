import client, { type Registry } from 'prom-client';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** Window for "connected clients" (Log Analytics gateway: Connected Client). */
export const CONNECTED_CLIENTS_WINDOW_MS = 5 * 60_000;

/** Supervisor-level metrics: readiness, workers, reloads, distinct clients across workers. */
export class RuntimeMetrics {
  readonly ready: client.Gauge;
  readonly workers: client.Gauge;
  readonly workerRestarts: client.Counter;
  readonly configReloads: client.Counter;
  readonly connectedClients: client.Gauge;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    new client.Gauge({
      name: 'portcullis_build_info',
      help: 'Version of Portcullis and of Node.js running it (always 1).',
      labelNames: ['version', 'node'],
      registers,
    }).set({ version: pkg.version, node: process.version }, 1);
    new client.Gauge({
      name: 'portcullis_start_time_seconds',
      help: 'When the gateway (the supervisor in cluster mode) started, in Unix seconds: a change means a restart.',
      registers,
    }).set(Math.floor(Date.now() / 1000 - process.uptime()));
    this.ready = new client.Gauge({ name: 'portcullis_ready', help: '1 when /readyz answers 200 (listeners bound, not draining).', registers });
    this.workers = new client.Gauge({
      name: 'portcullis_workers',
      help: 'Data-plane worker processes by state (listening|starting).',
      labelNames: ['state'],
      registers,
    });
    this.workerRestarts = new client.Counter({ name: 'portcullis_worker_restarts_total', help: 'Data-plane workers that died and were replaced.', registers });
    this.configReloads = new client.Counter({
      name: 'portcullis_config_reloads_total',
      help: 'Configuration reloads by result (ok|refused).',
      labelNames: ['result'],
      registers,
    });
    this.connectedClients = new client.Gauge({
      name: 'portcullis_connected_clients',
      help: 'Distinct client addresses seen in the last 5 minutes, across all workers (Log Analytics gateway: Connected Client).',
      registers,
    });
  }
}

/**
 * prom-client defaults that are gauges named *_total, which Prometheus naming rules (and
 * `promtool check metrics`) reject; the per-type gauge portcullis_nodejs_active_resources stays.
 */
const MISNAMED_DEFAULTS = ['active_handles_total', 'active_requests_total', 'active_resources_total'];

/** Node and process metrics (CPU, memory, event-loop lag, GC) under the portcullis_ prefix. */
export function collectProcessMetrics(registry: Registry): void {
  const prefix = 'portcullis_nodejs_';
  client.collectDefaultMetrics({ register: registry, prefix: 'portcullis_', eventLoopMonitoringPrecision: 20 });
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(prefix + name);
}
