/**
 * `portcullis agent-config`: ready-to-paste settings that point each kind of agent at this gateway.
 * Pure text from the configuration (and an address the operator may give): nothing is contacted,
 * and no secret is printed (credentials appear as placeholders).
 */
import { hostname } from 'node:os';
import type { PortcullisConfig } from '../config/index.js';
import type { PresetName } from '../config/types.js';
import { hostPort } from '../util/host-port.js';

export const AGENT_KINDS = ['ama', 'arc', 'defender', 'sdk', 'forwarder', 'oms-linux', 'mma-windows', 'scom'] as const;
export type AgentKind = (typeof AGENT_KINDS)[number];

export interface AgentConfigOptions {
  /** The proxy URL agents use, e.g. http://gateway.contoso.com:8080; default: from proxy.listen. */
  address?: string;
  /** Print the variants with proxy credentials (placeholders). */
  auth: boolean;
  kinds: readonly AgentKind[];
}

const USER = '<username>';
const PASSWORD = '<password>';

/** http://host:port agents dial: a wildcard listen address becomes this machine's name. */
export function proxyAddress(config: PortcullisConfig, given?: string): string {
  if (given !== undefined) return new URL(given).origin;
  return `http://${reachable(config.proxy.listen[0] ?? '0.0.0.0:8080')}`;
}

function reachable(listen: string): string {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(listen.slice(i + 1));
  const wildcard = host === '' || host === '0.0.0.0' || host === '::';
  return hostPort(wildcard ? hostname() : host, port);
}

function json(value: unknown): string {
  return JSON.stringify(value);
}

function section(title: string, body: string[]): string {
  return [`## ${title}`, '', ...body, ''].join('\n');
}

function amaSection(address: string, auth: boolean): string {
  const settings = json({ proxy: { mode: 'application', address, auth: auth ? 'true' : 'false' } });
  const protectedSettings = json({ proxy: { username: USER, password: PASSWORD } });
  const ps = (type: string): string[] => [
    `$settingsString = '${settings}'`,
    ...(auth ? [`$protectedSettingsString = '${protectedSettings}'`] : []),
    `Set-AzVMExtension -ExtensionName ${type} -ExtensionType ${type} -Publisher Microsoft.Azure.Monitor -ResourceGroupName <resource-group> -VMName <vm> -Location <location> -SettingString $settingsString${auth ? ' -ProtectedSettingString $protectedSettingsString' : ''}`,
  ];
  const arc = (type: string): string =>
    `az connectedmachine extension create --name ${type} --publisher Microsoft.Azure.Monitor --type ${type} --machine-name <arc-machine> --resource-group <resource-group> --location <location> --settings '${settings}'${auth ? ` --protected-settings '${protectedSettings}'` : ''}`;
  return section('Azure Monitor Agent (extension settings)', [
    'Extension settings (public):',
    '',
    `    ${settings}`,
    ...(auth ? ['', 'Protected settings (Basic authentication to the gateway):', '', `    ${protectedSettings}`] : []),
    '',
    'Azure VM, Windows / Linux (PowerShell; use AzureMonitorLinuxAgent on Linux):',
    '',
    ...ps('AzureMonitorWindowsAgent').map((l) => `    ${l}`),
    '',
    'Azure Arc-enabled server (Azure CLI; AzureMonitorLinuxAgent on Linux):',
    '',
    `    ${arc('AzureMonitorWindowsAgent')}`,
  ]);
}

/** A line saying which preset opens the agent's endpoints, and whether this configuration has it. */
function presetLine(config: PortcullisConfig, wanted: readonly PresetName[]): string {
  const have = wanted.filter((p) => config.allow.presets.includes(p));
  return have.length > 0
    ? `This gateway allows its endpoints: allow.presets has ${have.join(', ')}.`
    : `NOTE: this gateway does not allow its endpoints yet: add the preset for your cloud (${wanted.join(' | ')}) to allow.presets.`;
}

function arcSection(config: PortcullisConfig, address: string): string {
  return section('Azure Connected Machine agent (Azure Arc)', [
    `    azcmagent config set proxy.url "${address}"`,
    '',
    'Onboarding through the gateway: pass the same address to the install script (Windows -proxy, Linux --proxy), and set proxy.url as above before azcmagent connect.',
    'Admit the machine by its address (clients.allow) rather than with proxy credentials.',
    presetLine(config, ['azure-arc', 'azure-arc-usgov', 'azure-arc-china']),
  ]);
}

function defenderSection(config: PortcullisConfig, address: string): string {
  const hostport = address.replace(/^http:\/\//, '');
  return section('Microsoft Defender for Endpoint (streamlined connectivity)', [
    'Windows (static proxy for the sensor, and WinHTTP for the services that use it), as administrator:',
    '',
    `    reg add "HKLM\\SOFTWARE\\Policies\\Microsoft\\Windows\\DataCollection" /v TelemetryProxyServer /t REG_SZ /d "${hostport}" /f`,
    `    netsh winhttp set proxy ${hostport}`,
    '',
    'Linux:',
    '',
    `    sudo mdatp config proxy set --value ${address}`,
    '',
    'Admit the devices by address (clients.allow): the sensor does not authenticate to a proxy.',
    'Windows fetches certificate revocation lists over plain HTTP (port 80): the preset allows those names on port 80.',
    presetLine(config, ['defender-endpoint', 'defender-endpoint-usgov']),
  ]);
}

function sdkSection(address: string, auth: boolean): string {
  const withAuth = auth ? address.replace('://', `://${USER}:${PASSWORD}@`) : address;
  return section('SDK clients, scripts, curl (environment)', [
    `    export HTTPS_PROXY=${withAuth}`,
    `    export HTTP_PROXY=${withAuth}`,
    '    export NO_PROXY=localhost,127.0.0.1,::1',
    '',
    'PowerShell:',
    '',
    `    $env:HTTPS_PROXY = '${withAuth}'`,
  ]);
}

function forwarderSection(config: PortcullisConfig): string {
  const fwd = config.forwarder;
  if (!fwd) return section('Telemetry forwarder (upload to the gateway)', ['    (not configured: the config has no forwarder section)']);
  const scheme = fwd.plaintext ? 'http' : 'https';
  const endpoint = `${scheme}://${reachable(fwd.listen)}`;
  return section('Telemetry forwarder (upload to the gateway)', [
    'Logs Ingestion API clients (LogsIngestionClient, scripts): endpoint and a gateway API key as the bearer token:',
    '',
    `    endpoint: ${endpoint}`,
    '    POST /dataCollectionRules/<dcr-id>/streams/<stream>?api-version=2023-01-01',
    '    Authorization: Bearer <api key issued for this sender>',
    '',
    'HTTP Data Collector API senders (legacy scripts, appliances): replace the workspace URL:',
    '',
    `    ${endpoint}/api/logs?api-version=2016-04-01   (instead of https://<workspace-id>.ods.opinsights.azure.com)`,
    ...(fwd.tls?.clientCaFile ? ['', 'Clients may also present a certificate issued by forwarder.tls.clientCaFile.'] : []),
  ]);
}

function omsLinuxSection(address: string, auth: boolean): string {
  const url = auth ? address.replace('://', `://${USER}:${PASSWORD}@`) : address;
  return section('Log Analytics agent for Linux (legacy OMS agent)', [
    'At onboarding:',
    '',
    `    sudo sh onboard_agent.sh -w <workspace-id> -s <workspace-key> -p ${url}`,
    '',
    'Or afterwards, in /etc/opt/microsoft/omsagent/proxy.conf (owner omsagent:omiusers, mode 0600), then restart the agent:',
    '',
    `    ${url}`,
  ]);
}

function mmaWindowsSection(address: string, auth: boolean): string {
  return section('Log Analytics agent for Windows (legacy MMA), PowerShell as administrator', [
    "    $settings = New-Object -ComObject 'AgentConfigManager.MgmtSvcCfg'",
    `    $settings.SetProxyInfo('${address}', '${auth ? USER : ''}', '${auth ? PASSWORD : ''}')`,
    '    Restart-Service HealthService',
  ]);
}

function scomSection(address: string): string {
  return section('System Center Operations Manager (management group to Azure Monitor)', [
    'Operations console: Administration > Azure Log Analytics > Connection > Configure Proxy Server,',
    `then set the proxy address to ${address} (credentials, if any, in the Run As account it asks for).`,
    'For agents reporting through the management server, set the same address under',
    'Administration > Settings > Proxy Settings.',
  ]);
}

/** The whole text for the kinds asked. */
export function renderAgentConfig(config: PortcullisConfig, opts: AgentConfigOptions): string {
  const address = proxyAddress(config, opts.address);
  const parts: string[] = [`# Agent settings for the Portcullis gateway at ${address}`, ''];
  for (const kind of opts.kinds) {
    if (kind === 'ama') parts.push(amaSection(address, opts.auth));
    else if (kind === 'arc') parts.push(arcSection(config, address));
    else if (kind === 'defender') parts.push(defenderSection(config, address));
    else if (kind === 'sdk') parts.push(sdkSection(address, opts.auth));
    else if (kind === 'forwarder') parts.push(forwarderSection(config));
    else if (kind === 'oms-linux') parts.push(omsLinuxSection(address, opts.auth));
    else if (kind === 'mma-windows') parts.push(mmaWindowsSection(address, opts.auth));
    else parts.push(scomSection(address));
  }
  return parts.join('\n');
}
