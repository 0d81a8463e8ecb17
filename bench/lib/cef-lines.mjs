// Realistic CEF syslog lines for the syslog bench: the shapes of test/syslog/corpus/cef-vendors.json
// (Palo Alto traffic and threat, Fortinet deny, Check Point over RFC 5424, Zscaler proxy, Trend Micro
// IDS), about 400 bytes each, with addresses, ports, users, times and ids varied per line so gzip
// sees real data rather than one repeated line. Deterministic: line n is always the same.

const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'svc-backup', 'svc-sql', 'mallory', 'trent'];
const HOSTS = ['www.example.com', 'login.contoso.com', 'cdn.fabrikam.net', 'api.northwind.io', 'files.tailspin.org', 'updates.wingtip.biz'];
const APPS = ['ssl', 'web-browsing', 'dns', 'ms-office365', 'ssh', 'smtp', 'ntp', 'ldap'];
const PATHS = ['/search?q\\=cef&lang\\=en', '/api/v2/orders?page\\=3', '/login', '/static/app.js', '/download/report.pdf', '/cgi-bin/test.cgi?cmd\\=id'];

// A small PRNG so lines vary but runs are reproducible.
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

const pick = (r, arr) => arr[Math.floor(r() * arr.length)];
const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));
const ip = (r, a, b) => `${a}.${b}.${int(r, 0, 255)}.${int(r, 1, 254)}`;
const pub = (r) => `${pick(r, ['198.51.100', '203.0.113', '192.0.2'])}.${int(r, 1, 254)}`;

function bsdTime(t) {
  const d = new Date(t);
  const day = String(d.getUTCDate()).padStart(2, ' ');
  const hms = d.toISOString().slice(11, 19);
  return `${MON[d.getUTCMonth()]} ${day} ${hms}`;
}
function cefTime(t) {
  const d = new Date(t);
  return `${MON[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, '0')} ${d.getUTCFullYear()} ${d.toISOString().slice(11, 19)} GMT`;
}

const SHAPES = [
  // Palo Alto Networks TRAFFIC (allow / deny)
  (r, n, t) => {
    const act = r() < 0.8 ? 'allow' : 'deny';
    return (
      `<14>${bsdTime(t)} pa-fw0${n % 4} CEF:0|Palo Alto Networks|PAN-OS|10.1.0|end|TRAFFIC|1|rt=${cefTime(t)} src=${ip(r, 10, 1)} dst=${pub(r)} ` +
      `cs1Label=Rule cs1=${act}-web-${int(r, 1, 40)} suser=corp\\\\${pick(r, USERS)} app=${pick(r, APPS)} cs4Label=Source Zone cs4=trust cs5Label=Destination Zone cs5=untrust ` +
      `cn1Label=SessionID cn1=${int(r, 100000, 999999)} spt=${int(r, 1024, 65535)} dpt=${pick(r, [443, 80, 53, 22, 25])} proto=tcp act=${act} in=${int(r, 60, 90000)} out=${int(r, 60, 900000)}`
    );
  },
  // Palo Alto Networks THREAT
  (r, n, t) =>
    `<12>${bsdTime(t)} pa-fw0${n % 4} CEF:0|Palo Alto Networks|PAN-OS|10.1.0|vulnerability|THREAT|${int(r, 1, 9)}|rt=${cefTime(t)} src=${pub(r)} dst=${ip(r, 10, 1)} ` +
    `spt=${int(r, 1024, 65535)} dpt=80 proto=tcp act=reset-both request="${pick(r, PATHS)}" cs2Label=URL Category cs2=any cat=code-execution(${int(r, 30000, 39999)}) ` +
    `flexString2Label=Direction flexString2=client-to-server PanOSThreatID=${int(r, 30000, 39999)}`,
  // Fortinet FortiGate deny
  (r, n, t) =>
    `<189>${bsdTime(t)} FGT60F CEF:0|Fortinet|Fortigate|v7.2.5|00013|traffic:forward deny|3|deviceExternalId=FGT60FTK2000${String(n % 1000).padStart(4, '0')} ` +
    `FTNTFGTlogid=0000000013 cat=traffic:forward FTNTFGTsubtype=forward FTNTFGTlevel=notice FTNTFGTvd=root FTNTFGTeventtime=${t * 1000000 + int(r, 0, 999999)} ` +
    `src=${ip(r, 192, 168)} shost=laptop-${int(r, 1, 400)} spt=${int(r, 1024, 65535)} dst=${pub(r)} dpt=${pick(r, [53, 123, 443])} proto=17 act=deny FTNTFGTpolicyid=${int(r, 1, 60)}`,
  // Check Point over RFC 5424
  (r, n, t) =>
    `<134>1 ${new Date(t).toISOString()} cp-mgmt CheckPoint ${int(r, 1000, 9999)} - - CEF:0|Check Point|VPN-1 & FireWall-1|Check Point|Log|https|Unknown|act=Accept ` +
    `rt=${t} sourceTranslatedAddress=${pub(r)} sourceTranslatedPort=${int(r, 1024, 65535)} spt=${int(r, 1024, 65535)} dpt=443 cs2Label=Rule Name cs2=Allow outbound web ` +
    `layer_name=Network src=${ip(r, 10, 2)} dst=${pub(r)} proto=6 ifname=eth${n % 3} origin=10.0.0.${n % 8}`,
  // Zscaler NSS web proxy
  (r, n, t) => {
    const host = pick(r, HOSTS);
    return (
      `<110>${bsdTime(t)} nss0${n % 2} CEF:0|Zscaler|NSSWeblog|5.0|Allowed|None|3|act=Allowed app=HTTPS dhost=${host} dst=${pub(r)} src=${ip(r, 10, 0)} ` +
      `in=${int(r, 200, 20000)} out=${int(r, 200, 90000)} request=https://${host}${pick(r, PATHS)} requestMethod=GET suser=${pick(r, USERS)}@example.com ` +
      `cat=Business and Economy requestClientApplication=Mozilla/5.0 (X11; Linux x86_64) outcome=200`
    );
  },
  // Trend Micro Deep Security IDS
  (r, n, t) =>
    `<132>${bsdTime(t)} dsa-host CEF:0|Trend Micro|Deep Security Agent|20.0.0|${int(r, 1000000, 1009999)}|Intrusion Prevention Rule ${int(r, 1, 90)}|${int(r, 3, 8)}|` +
    `cn1=${int(r, 1, 500)} cn1Label=Host ID dvchost=web-${String(n % 64).padStart(2, '0')} TrendMicroDsTenant=Primary src=${pub(r)} dst=${ip(r, 10, 3)} in=${int(r, 60, 1500)} ` +
    `proto=TCP spt=${int(r, 1024, 65535)} dpt=80 cs2=0x00 ACK PSH cs2Label=TCP Flags cnt=1 act=Reset cs6=8 cs6Label=DPI Flags`,
];

/** Line n (no LF), about 400 bytes. */
export function cefLine(n) {
  const r = rng(n * 2654435761 + 12345);
  const t = Date.UTC(2026, 10, 30, 12, 0, 0) + n * 13;
  // externalId and dvc are standard CEF keys most vendors add: they bring the lines to ~400 bytes.
  return `${SHAPES[n % SHAPES.length](r, n, t)} externalId=${int(r, 100000000, 999999999)} dvc=${ip(r, 10, 250)}`;
}

/** `count` lines, each ending with LF, as one string. */
export function cefLines(count) {
  const out = new Array(count);
  for (let i = 0; i < count; i++) out[i] = cefLine(i) + '\n';
  return out.join('');
}
