// Realistic telemetry records for forwarder benches and tests: the shape of the events agents and
// scripts upload (a Windows security event, a Linux auth line, an app log), about 500 bytes of JSON
// each, varied enough that gzip sees real entropy (ids, times, addresses), not a repeated string.
import { randomUUID } from 'node:crypto';

const HOSTS = Array.from({ length: 64 }, (_, i) => `srv-app-${String(i).padStart(4, '0')}.corp.contoso.com`);
const USERS = ['alice', 'bob', 'svc-backup', 'svc-sql', 'carol', 'dave', 'erin', 'frank', 'SYSTEM'];
const PROCS = ['C:\\Windows\\System32\\svchost.exe', 'C:\\Windows\\System32\\lsass.exe', '/usr/sbin/sshd', '/usr/bin/sudo', '/opt/app/bin/worker'];
const MESSAGES = [
  'An account was successfully logged on.',
  'A logon was attempted using explicit credentials.',
  'Accepted publickey for deploy from 10.20.30.40 port 52144 ssh2: ED25519 SHA256:Q2xhdWRlIHdhcyBoZXJlIGFuZCB0aGlzIGlzIGEga2V5',
  'pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)',
  'Request completed: GET /api/v2/orders?page=3 status=200 duration_ms=41 bytes=18234',
  'Scheduled task "NightlyBackup" completed with exit code 0 after 1843 seconds.',
];

function pick(arr, i) {
  return arr[i % arr.length];
}

/** Record number `n` of a run; `RecordId` is unique per run (tests check every one arrives). */
export function makeRecord(n, runId = 'bench') {
  const t = new Date(Date.UTC(2026, 10, 30, 12, 0, 0) + n * 37);
  return {
    TimeGenerated: t.toISOString(),
    RecordId: `${runId}-${n}`,
    Computer: pick(HOSTS, n * 7),
    EventID: 4624 + (n % 12),
    Level: n % 50 === 0 ? 'Warning' : 'Information',
    Channel: n % 3 === 0 ? 'Security' : 'Application',
    Provider: n % 3 === 0 ? 'Microsoft-Windows-Security-Auditing' : 'Contoso-Orders',
    UserName: pick(USERS, n * 3),
    IpAddress: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
    ProcessName: pick(PROCS, n * 5),
    ProcessId: 1000 + ((n * 7919) % 60000),
    CorrelationId: randomUUID(),
    Message: pick(MESSAGES, n),
  };
}

/** `count` records starting at `from`. */
export function makeRecords(count, from = 0, runId = 'bench') {
  const out = new Array(count);
  for (let i = 0; i < count; i++) out[i] = makeRecord(from + i, runId);
  return out;
}
