import { describe, expect, it } from 'vitest';
import { compilePolicy, parseConnectAuthority, type Decision } from '../../src/policy/index.js';
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
