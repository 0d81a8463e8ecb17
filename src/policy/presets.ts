/**
 * Presets: the endpoints Azure Monitor / Log Analytics agents need, per cloud (azure-public,
 * azure-usgov, azure-china), and those of the other agents on the same servers: the Azure Connected
 * Machine agent (Azure Arc) and Microsoft Defender for Endpoint (see ARC_HOSTS and DEFENDER_HOSTS).
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
import type { CloudPreset, PresetName, ServicePreset } from '../config/types.js';

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

export const CLOUD_PRESETS: readonly CloudPreset[] = ['azure-public', 'azure-usgov', 'azure-china'];
export const SERVICE_PRESETS: readonly ServicePreset[] = ['azure-arc', 'azure-arc-usgov', 'azure-arc-china', 'defender-endpoint', 'defender-endpoint-usgov'];
/** Every name `allow.presets` takes (the schema's enum lists the same). */
export const PRESET_NAMES: readonly PresetName[] = [...CLOUD_PRESETS, ...SERVICE_PRESETS];

export interface PresetRule {
  /** `<preset>/<purpose>`: the metrics label. */
  readonly name: string;
  readonly hosts: readonly string[];
  readonly ports: readonly number[];
  /**
   * Names under this rule's wildcards that the agents are known to use, for `portcullis doctor`
   * to check (a wildcard names no host it could dial). Not part of the allowlist.
   */
  readonly probes?: readonly string[];
}

function isCloudPreset(p: PresetName): p is CloudPreset {
  return (CLOUD_PRESETS as readonly string[]).includes(p);
}

export function presetRules(preset: PresetName): PresetRule[] {
  return isCloudPreset(preset) ? monitorRules(preset) : serviceRules(preset);
}

function monitorRules(preset: CloudPreset): PresetRule[] {
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

interface ServiceRuleSpec {
  readonly purpose: string;
  readonly hosts: readonly string[];
  readonly ports?: readonly number[];
  readonly probes?: readonly string[];
}

/**
 * Azure Connected Machine agent (Azure Arc-enabled servers), TCP 443.
 *
 * Source: learn.microsoft.com "Connected Machine agent network requirements"
 * (azure/azure-arc/servers/network-requirements, § URLs, tabs Azure Cloud / Azure Government /
 * Microsoft Azure operated by 21Vianet; read in the MicrosoftDocs include dated 2024-06-25).
 * Every "Always" row is here, plus the installation-time rows (the agent is installed through the
 * gateway too). Left out: optional rows (agent telemetry, unused since agent 1.24; Windows Admin
 * Center `*.waconazure.com`; SQL Server `*.<region>.arcdataservices.com`; ESU certificates
 * `www.microsoft.com/pkiops/certs`): add a rule for those if you use them.
 *
 * Why wildcards and no `{region}` template for the regional hosts:
 * - The page lists `*.his.arc.azure.com` only. The agent uses `gbl.his.arc.azure.com` and a
 *   regional name whose first label is a short shard code (`eus`, `weu`, ...), not the region
 *   name (seen in install scripts and connectivity checks; Microsoft does not document the
 *   mapping), so a `{region}` template would refuse the agent. The wildcard is what the source allows.
 * - The page lists `*.guestconfiguration.azure.com`; the agent uses
 *   `agentserviceapi.guestconfiguration.azure.com` and `<region>-gas` names, for some regions a
 *   short form (`ea-gas`, `sea-gas`: learn.microsoft.com "Azure Machine Configuration"
 *   network requirements table), so again the wildcard.
 * - `azgn*.servicebus.windows.net` (notification service) is a mid-label wildcard the allowlist
 *   cannot express: `*.servicebus.windows.net` opens every Service Bus namespace, the same kind of
 *   opening as `*.blob.core.windows.net` (extension downloads).
 * US Government lists no notification service; its Entra rows are login.microsoftonline.us and
 * pasff.usgovcloudapi.net.
 */
const ARC_HOSTS: Readonly<Record<'azure-arc' | 'azure-arc-usgov' | 'azure-arc-china', readonly ServiceRuleSpec[]>> = {
  'azure-arc': [
    { purpose: 'install', hosts: ['aka.ms', 'download.microsoft.com', 'packages.microsoft.com'] },
    { purpose: 'login', hosts: ['login.microsoftonline.com', 'login.windows.net', 'login.microsoft.com', '*.login.microsoft.com', 'pas.windows.net'] },
    { purpose: 'arm', hosts: ['management.azure.com'] },
    { purpose: 'his', hosts: ['*.his.arc.azure.com'], probes: ['gbl.his.arc.azure.com'] },
    { purpose: 'guestconfig', hosts: ['*.guestconfiguration.azure.com'], probes: ['agentserviceapi.guestconfiguration.azure.com'] },
    { purpose: 'notification', hosts: ['guestnotificationservice.azure.com', '*.guestnotificationservice.azure.com', '*.servicebus.windows.net'] },
    { purpose: 'blob', hosts: ['*.blob.core.windows.net'] },
  ],
  'azure-arc-usgov': [
    { purpose: 'install', hosts: ['aka.ms', 'download.microsoft.com', 'packages.microsoft.com'] },
    { purpose: 'login', hosts: ['login.microsoftonline.us', 'pasff.usgovcloudapi.net'] },
    { purpose: 'arm', hosts: ['management.usgovcloudapi.net'] },
    { purpose: 'his', hosts: ['*.his.arc.azure.us'], probes: ['gbl.his.arc.azure.us'] },
    { purpose: 'guestconfig', hosts: ['*.guestconfiguration.azure.us'] },
    { purpose: 'blob', hosts: ['*.blob.core.usgovcloudapi.net'] },
  ],
  'azure-arc-china': [
    { purpose: 'install', hosts: ['aka.ms', 'download.microsoft.com', 'packages.microsoft.com'] },
    { purpose: 'login', hosts: ['login.chinacloudapi.cn', 'login.partner.chinacloudapi.cn', 'pas.chinacloudapi.cn'] },
    { purpose: 'arm', hosts: ['management.chinacloudapi.cn'] },
    { purpose: 'his', hosts: ['*.his.arc.azure.cn'], probes: ['gbl.his.arc.azure.cn'] },
    { purpose: 'guestconfig', hosts: ['*.guestconfiguration.azure.cn'] },
    { purpose: 'notification', hosts: ['guestnotificationservice.azure.cn', '*.guestnotificationservice.azure.cn', '*.servicebus.chinacloudapi.cn'] },
    { purpose: 'blob', hosts: ['*.blob.core.chinacloudapi.cn'] },
  ],
};

/**
 * Microsoft Defender for Endpoint, streamlined connectivity.
 *
 * Sources (learn.microsoft.com):
 * - "Onboarding devices using streamlined connectivity for Microsoft Defender for Endpoint"
 *   (defender-endpoint/configure-device-connectivity): `*.endpoint.security.microsoft.com` replaces
 *   the core services (cloud protection/MAPS, sample submission storage, command and control,
 *   EDR cyber data).
 * - "Microsoft Defender for Endpoint streamlined connectivity URLs - commercial" and
 *   "... - US government environments" (defender-endpoint/streamlined-device-connectivity-urls-*):
 *   `*.endpoint.security.microsoft.com` (WW), `*.endpoint.security.microsoft.us` (GCC High, DoD;
 *   GCC Moderate uses the commercial name).
 * - CRL rows, TCP 80, from "Microsoft Defender for Endpoint standard connectivity URLs -
 *   commercial" / "- US government": `crl.microsoft.com` (`/pki/crl/*`), `ctldl.windowsupdate.com`,
 *   `www.microsoft.com` (`/pkiops/*`, `/pki/certs`). The allowlist matches hosts, not paths, so
 *   all of www.microsoft.com is reachable over plain HTTP with this preset. Not confirmed whether
 *   the streamlined pages repeat these rows (the excerpts seen were cut short): they are the CRL
 *   names the same service's standard list requires.
 * Left out: SmartScreen / network protection (`*.smartscreen*.microsoft.com`, `*.ss.wd.microsoft.us`),
 * `events.data.microsoft.com` (Windows telemetry) and `*.wns.windows.com` (Live Response): they
 * belong to Windows features around Defender, not to its sensor; add rules if you use them.
 * No preset for the 21Vianet cloud: no Defender for Endpoint connectivity list for it was found.
 */
const DEFENDER_CRL: ServiceRuleSpec = { purpose: 'crl', hosts: ['crl.microsoft.com', 'ctldl.windowsupdate.com', 'www.microsoft.com'], ports: [80] };
const DEFENDER_HOSTS: Readonly<Record<'defender-endpoint' | 'defender-endpoint-usgov', readonly ServiceRuleSpec[]>> = {
  'defender-endpoint': [{ purpose: 'streamlined', hosts: ['*.endpoint.security.microsoft.com'] }, DEFENDER_CRL],
  'defender-endpoint-usgov': [{ purpose: 'streamlined', hosts: ['*.endpoint.security.microsoft.us'] }, DEFENDER_CRL],
};

function serviceRules(preset: ServicePreset): PresetRule[] {
  const specs = preset === 'defender-endpoint' || preset === 'defender-endpoint-usgov' ? DEFENDER_HOSTS[preset] : ARC_HOSTS[preset];
  return specs.map((s) => ({
    name: `${preset}/${s.purpose}`,
    hosts: s.hosts,
    ports: s.ports ?? [443],
    ...(s.probes ? { probes: s.probes } : {}),
  }));
}

/** Names `portcullis doctor` checks under the wildcards of the configured presets, with their rule. */
export function presetProbes(presets: readonly PresetName[]): Array<{ rule: string; host: string }> {
  return [...new Set(presets)].flatMap((p) => presetRules(p).flatMap((r) => (r.probes ?? []).map((host) => ({ rule: r.name, host }))));
}
