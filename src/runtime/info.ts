import { readFileSync } from 'node:fs';
import { nativeRelayFile, nativeRelayStatus } from '../relay/index.js';
import { notifyAddonStatus } from './sd-notify.js';
import { nativeCefStatus } from '../syslog/index.js';
import { nativeDeflateStatus, nativeJsonStatus } from '../forwarder/index.js';

/**
 * `portcullis info`: what this installation runs, for an operator checking an install or an
 * upgrade: its version, the Node running it, and whether the native addons load here (and from
 * which file: the prebuilt one from the package, or one built on this machine). Loads them, so
 * the answer is what `portcullis start` will get.
 */
export function renderInfo(): { text: string; nativeRelay: boolean } {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const relay = nativeRelayStatus();
  const notify = notifyAddonStatus();
  const cef = nativeCefStatus();
  const json = nativeJsonStatus();
  const deflate = nativeDeflateStatus();
  const rows: Array<[string, string]> = [
    ['portcullis', pkg.version],
    ['node', `${process.version} (N-API ${process.versions.napi ?? '?'}, ${process.platform}-${process.arch})`],
    ['relay', relay.available ? `native (${nativeRelayFile()})` : `javascript (native relay not available: ${relay.reason})`],
    ['cef', cef.available ? `native (${cef.path})` : `javascript (CEF addon not available: ${cef.reason})`],
    ['json', json.available ? `native (${json.path})` : `javascript (JSON addon not available: ${json.reason})`],
    ['gzip', deflate.available ? `native (${deflate.path})` : `zlib (libdeflate addon not available: ${deflate.reason})`],
    ['sd_notify', notify.available ? `native (${notify.path})` : `systemd-notify program (notify addon not available: ${notify.reason})`],
  ];
  return { text: rows.map(([k, v]) => `${k.padEnd(11)}${v}\n`).join(''), nativeRelay: relay.available };
}
