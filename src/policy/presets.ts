/**
 * Cloud presets: the endpoints Azure Monitor / Log Analytics agents need, per cloud.
 *
 * Sources (summarised in the project's ARCHITECTURE.md, "Endpoints agents need"):
 * - Log Analytics (legacy MMA/OMS) agent firewall requirements and the Log Analytics gateway
 *   allowlist: <ws>.ods.opinsights.azure.com, <ws>.oms.opinsights.azure.com,
 *   *.blob.core.windows.net, <ws>.agentsvc.azure-automation.net, *.azure-automation.net
 *   (learn.microsoft.com: "Log Analytics agent overview" § Firewall requirements;
 *   "Connect computers without internet access by using the Log Analytics gateway").
 * - Azure Monitor Agent network configuration: global.handler.control.monitor.azure.com,
 *   <region>.handler.control.monitor.azure.com, <ws>.ods.opinsights.azure.com, data collection
 *   endpoints <dce>.<region>.ingest.monitor.azure.com
 *   (learn.microsoft.com: "Define Azure Monitor Agent network settings").
 * - Token endpoint (Microsoft Entra ID) per national cloud: login.microsoftonline.com,
 *   login.microsoftonline.us, login.chinacloudapi.cn
 *   (learn.microsoft.com: "Microsoft Entra authentication & national clouds").
 * - Sovereign suffixes: US Gov opinsights.azure.us, blob.core.usgovcloudapi.net,
 *   azure-automation.us, monitor.azure.us; China opinsights.azure.cn,
 *   blob.core.chinacloudapi.cn, azure-automation.cn, monitor.azure.cn.
 *
 * All preset rules are port 443, enforce, no private addresses (Private Link needs an explicit
 * rule with allowPrivate). `{workspaceId}` / `{region}` are expanded from allow.workspaces and
 * allow.regions; with none configured they widen to a wildcard label.
 */
import type { CloudPreset } from '../config/types.js';

export interface CloudSuffixes {
  readonly opinsights: string;
  readonly blob: string;
  readonly automation: string;
  readonly monitor: string;
  readonly login: string;
}

export const CLOUD_SUFFIXES: Readonly<Record<CloudPreset, CloudSuffixes>> = {
  'azure-public': {
    opinsights: 'opinsights.azure.com',
    blob: 'blob.core.windows.net',
    automation: 'azure-automation.net',
    monitor: 'monitor.azure.com',
    login: 'login.microsoftonline.com',
  },
  'azure-usgov': {
    opinsights: 'opinsights.azure.us',
    blob: 'blob.core.usgovcloudapi.net',
    automation: 'azure-automation.us',
    monitor: 'monitor.azure.us',
    login: 'login.microsoftonline.us',
  },
  'azure-china': {
    opinsights: 'opinsights.azure.cn',
    blob: 'blob.core.chinacloudapi.cn',
    automation: 'azure-automation.cn',
    monitor: 'monitor.azure.cn',
    login: 'login.chinacloudapi.cn',
  },
};

export const PRESET_NAMES: readonly CloudPreset[] = ['azure-public', 'azure-usgov', 'azure-china'];

export interface PresetRule {
  /** `<preset>/<purpose>`: the metrics label. */
  readonly name: string;
  readonly hosts: readonly string[];
  readonly ports: readonly number[];
}

export function presetRules(preset: CloudPreset): PresetRule[] {
  const s = CLOUD_SUFFIXES[preset];
  const rule = (purpose: string, hosts: string[]): PresetRule => ({
    name: `${preset}/${purpose}`,
    hosts,
    ports: [443],
  });
  return [
    rule('ods', [`{workspaceId}.ods.${s.opinsights}`]),
    rule('oms', [`{workspaceId}.oms.${s.opinsights}`]),
    // Opens every storage account in the cloud; legacy agents need it (no tighter name is known).
    rule('blob', [`*.${s.blob}`]),
    rule('automation', [`{workspaceId}.agentsvc.${s.automation}`, `*.${s.automation}`]),
    rule('handler', [`global.handler.control.${s.monitor}`, `{region}.handler.control.${s.monitor}`]),
    rule('ingest', [`*.{region}.ingest.${s.monitor}`]),
    rule('login', [s.login]),
  ];
}
