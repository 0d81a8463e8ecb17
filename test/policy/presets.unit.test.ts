import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { compilePolicy, parseConnectAuthority, PRESET_NAMES, presetProbes, type Decision } from '../../src/policy/index.js';
import { configIssues } from '../../src/config/index.js';
import { CLIENT, makeConfig, WS1, WS2 } from './helpers.js';

function name(d: Decision): string {
  return d.verdict === 'allow' ? d.rule.name : `${d.verdict}:${d.reason}`;
}

describe('cloud presets', () => {
  const cfg = makeConfig({
    presets: ['azure-public', 'azure-usgov', 'azure-china'],
    workspaces: [{ id: WS1, region: 'westeurope' }],
  });
  const p = compilePolicy(cfg);
  const at = (a: string) => name(p.decide({ target: parseConnectAuthority(a), client: CLIENT }));

  it('the preset table passes the config check', () => {
    expect(configIssues(cfg)).toEqual([]);
  });

  it('names every rule <preset>/<purpose>', () => {
    const names = p.rules.map((r) => r.name);
    for (const cloud of ['azure-public', 'azure-usgov', 'azure-china']) {
      for (const purpose of ['ods', 'oms', 'blob', 'automation', 'handler', 'ingest', 'login']) {
        expect(names).toContain(`${cloud}/${purpose}`);
      }
    }
    expect(p.rules.every((r) => r.ports.size === 1 && r.ports.has(443) && !r.allowPrivate)).toBe(true);
  });

  it.each([
    // Azure public
    [`${WS1}.ods.opinsights.azure.com:443`, 'azure-public/ods'],
    [`${WS1}.oms.opinsights.azure.com:443`, 'azure-public/oms'],
    ['mystorage.blob.core.windows.net:443', 'azure-public/blob'],
    [`${WS1}.agentsvc.azure-automation.net:443`, 'azure-public/automation'],
    ['weu-jobruntimedata-prod-su1.azure-automation.net:443', 'azure-public/automation'],
    ['global.handler.control.monitor.azure.com:443', 'azure-public/handler'],
    ['westeurope.handler.control.monitor.azure.com:443', 'azure-public/handler'],
    ['my-dce-x1y2.westeurope-1.ingest.monitor.azure.com:443', 'deny:host_not_allowed'],
    ['my-dce-x1y2.westeurope.ingest.monitor.azure.com:443', 'azure-public/ingest'],
    ['login.microsoftonline.com:443', 'azure-public/login'],
    [`${WS2}.ods.opinsights.azure.com:443`, 'deny:host_not_allowed'],
    ['eastus.handler.control.monitor.azure.com:443', 'deny:host_not_allowed'],
    ['blob.core.windows.net:443', 'deny:host_not_allowed'],
    ['mystorage.queue.core.windows.net:443', 'deny:host_not_allowed'],
    ['login.microsoftonline.com:80', 'deny:port_not_allowed'],
    ['login.microsoftonline.com.evil.com:443', 'deny:host_not_allowed'],
    // US Gov
    [`${WS1}.ods.opinsights.azure.us:443`, 'azure-usgov/ods'],
    ['acct.blob.core.usgovcloudapi.net:443', 'azure-usgov/blob'],
    [`${WS1}.agentsvc.azure-automation.us:443`, 'azure-usgov/automation'],
    ['global.handler.control.monitor.azure.us:443', 'azure-usgov/handler'],
    ['login.microsoftonline.us:443', 'azure-usgov/login'],
    // China
    [`${WS1}.oms.opinsights.azure.cn:443`, 'azure-china/oms'],
    ['acct.blob.core.chinacloudapi.cn:443', 'azure-china/blob'],
    ['westeurope.handler.control.monitor.azure.cn:443', 'azure-china/handler'],
    ['dce.westeurope.ingest.monitor.azure.cn:443', 'azure-china/ingest'],
    ['login.chinacloudapi.cn:443', 'azure-china/login'],
    ['login.chinacloudapi.cn.evil.cn:443', 'deny:host_not_allowed'],
  ])('%s → %s', (authority, want) => {
    expect(at(authority)).toBe(want);
  });

  it('only configured presets are allowed', () => {
    const pub = compilePolicy(makeConfig({ presets: ['azure-public'] }));
    expect(name(pub.decide({ target: parseConnectAuthority('login.microsoftonline.us:443'), client: CLIENT }))).toBe('deny:host_not_allowed');
    expect(name(pub.decide({ target: parseConnectAuthority('any-ws.ods.opinsights.azure.com:443'), client: CLIENT }))).toBe('azure-public/ods');
  });

  it("the operator's own rule is chosen over a preset rule for the same host", () => {
    const q = compilePolicy(
      makeConfig({
        presets: ['azure-public'],
        workspaces: [{ id: WS1 }],
        rules: [{ name: 'pl', hosts: [`${WS1}.ods.opinsights.azure.com`], allowPrivate: true }],
      }),
    );
    const d = q.decide({ target: parseConnectAuthority(`${WS1}.ods.opinsights.azure.com:443`), client: CLIENT });
    expect(name(d)).toBe('pl');
  });
});

describe('service presets: Azure Arc (Connected Machine agent) and Defender for Endpoint', () => {
  const all = makeConfig({
    presets: ['azure-arc', 'azure-arc-usgov', 'azure-arc-china', 'defender-endpoint', 'defender-endpoint-usgov'],
    workspaces: [{ id: WS1, region: 'westeurope' }],
  });
  const p = compilePolicy(all);
  const at = (policy: typeof p, a: string) => name(policy.decide({ target: parseConnectAuthority(a), client: CLIENT }));

  it('the preset table passes the config check (no wildcard over a public suffix, no mid-label wildcard)', () => {
    expect(configIssues(all)).toEqual([]);
  });

  it.each([
    // Azure Arc, public cloud
    ['gbl.his.arc.azure.com:443', 'azure-arc/his'],
    ['weu.his.arc.azure.com:443', 'azure-arc/his'],
    ['agentserviceapi.guestconfiguration.azure.com:443', 'azure-arc/guestconfig'],
    ['westeurope-gas.guestconfiguration.azure.com:443', 'azure-arc/guestconfig'],
    ['guestnotificationservice.azure.com:443', 'azure-arc/notification'],
    ['weu.guestnotificationservice.azure.com:443', 'azure-arc/notification'],
    ['azgn-westeurope-public-1p-weuam3-001.servicebus.windows.net:443', 'azure-arc/notification'],
    ['management.azure.com:443', 'azure-arc/arm'],
    ['pas.windows.net:443', 'azure-arc/login'],
    ['login.windows.net:443', 'azure-arc/login'],
    ['westeurope.login.microsoft.com:443', 'azure-arc/login'],
    ['packages.microsoft.com:443', 'azure-arc/install'],
    ['oaasguestconfigweus1.blob.core.windows.net:443', 'azure-arc/blob'],
    // near misses
    ['his.arc.azure.com:443', 'deny:host_not_allowed'],
    ['gbl.his.arc.azure.com.evil.com:443', 'deny:host_not_allowed'],
    ['gbl.his.arc.azure.com:80', 'deny:port_not_allowed'],
    ['guestconfiguration.azure.com:443', 'deny:host_not_allowed'],
    ['management.azure.com.evil.net:443', 'deny:host_not_allowed'],
    ['x.arc.azure.com:443', 'deny:host_not_allowed'],
    ['westeurope.management.azure.com:443', 'deny:host_not_allowed'],
    // Azure Arc, US Government and 21Vianet
    ['gbl.his.arc.azure.us:443', 'azure-arc-usgov/his'],
    ['usgv.his.arc.azure.us:443', 'azure-arc-usgov/his'],
    ['agentserviceapi.guestconfiguration.azure.us:443', 'azure-arc-usgov/guestconfig'],
    ['pasff.usgovcloudapi.net:443', 'azure-arc-usgov/login'],
    ['management.usgovcloudapi.net:443', 'azure-arc-usgov/arm'],
    ['guestnotificationservice.azure.us:443', 'deny:host_not_allowed'],
    ['gbl.his.arc.azure.cn:443', 'azure-arc-china/his'],
    ['management.chinacloudapi.cn:443', 'azure-arc-china/arm'],
    ['login.partner.chinacloudapi.cn:443', 'azure-arc-china/login'],
    ['x.servicebus.chinacloudapi.cn:443', 'azure-arc-china/notification'],
    ['management.chinacloudapi.cn.evil.cn:443', 'deny:host_not_allowed'],
    // Defender for Endpoint
    ['edr-weu3.endpoint.security.microsoft.com:443', 'defender-endpoint/streamlined'],
    ['mdav.endpoint.security.microsoft.com:443', 'defender-endpoint/streamlined'],
    ['edr-usgv.endpoint.security.microsoft.us:443', 'defender-endpoint-usgov/streamlined'],
    ['crl.microsoft.com:80', 'defender-endpoint/crl'],
    ['ctldl.windowsupdate.com:80', 'defender-endpoint/crl'],
    ['www.microsoft.com:80', 'defender-endpoint/crl'],
    // near misses
    ['endpoint.security.microsoft.com:443', 'deny:host_not_allowed'],
    ['edr-weu3.endpoint.security.microsoft.com:80', 'deny:port_not_allowed'],
    ['security.microsoft.com:443', 'deny:host_not_allowed'],
    ['x.endpoint.security.microsoft.com.evil.com:443', 'deny:host_not_allowed'],
    ['crl.microsoft.com:443', 'deny:port_not_allowed'],
    ['crl2.microsoft.com:80', 'deny:host_not_allowed'],
  ])('%s → %s', (authority, want) => {
    expect(at(p, authority)).toBe(want);
  });

  it('a preset opens its own cloud only: azure-arc does not open the US Government or 21Vianet names, nor Defender', () => {
    const arc = compilePolicy(makeConfig({ presets: ['azure-arc'] }));
    expect(at(arc, 'gbl.his.arc.azure.com:443')).toBe('azure-arc/his');
    expect(at(arc, 'gbl.his.arc.azure.us:443')).toBe('deny:host_not_allowed');
    expect(at(arc, 'gbl.his.arc.azure.cn:443')).toBe('deny:host_not_allowed');
    expect(at(arc, 'x.endpoint.security.microsoft.com:443')).toBe('deny:host_not_allowed');
    expect(at(arc, 'crl.microsoft.com:80')).toBe('deny:host_not_allowed');
    // The Azure Monitor names are the monitoring presets' job.
    expect(at(arc, 'global.handler.control.monitor.azure.com:443')).toBe('deny:host_not_allowed');
    const mde = compilePolicy(makeConfig({ presets: ['defender-endpoint'] }));
    expect(at(mde, 'x.endpoint.security.microsoft.us:443')).toBe('deny:host_not_allowed');
    expect(at(mde, 'management.azure.com:443')).toBe('deny:host_not_allowed');
  });

  it('every rule is named <preset>/<purpose> and is public-address only; only Defender CRL is on port 80', () => {
    for (const r of p.rules) {
      expect(r.name).toMatch(/^(azure-arc(-usgov|-china)?|defender-endpoint(-usgov)?)\/[a-z]+$/);
      expect(r.allowPrivate).toBe(false);
      expect([...r.ports]).toEqual(r.name.endsWith('/crl') ? [80] : [443]);
    }
  });

  it('the schema enum, the type and PRESET_NAMES list the same presets, and each compiles', () => {
    const schema = JSON.parse(readFileSync(new URL('../../config/portcullis.schema.json', import.meta.url), 'utf8')) as {
      properties: { allow: { properties: { presets: { items: { enum: string[] } } } } };
    };
    expect([...schema.properties.allow.properties.presets.items.enum].sort()).toEqual([...PRESET_NAMES].sort());
    for (const name of PRESET_NAMES) expect(() => compilePolicy(makeConfig({ presets: [name] }))).not.toThrow();
  });

  it('doctor knows names under the Arc wildcards that the agent uses', () => {
    expect(presetProbes(['azure-arc', 'azure-arc', 'defender-endpoint'])).toEqual([
      { rule: 'azure-arc/his', host: 'gbl.his.arc.azure.com' },
      { rule: 'azure-arc/guestconfig', host: 'agentserviceapi.guestconfiguration.azure.com' },
    ]);
  });
});
