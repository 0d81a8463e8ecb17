// A separate Node process using the official Azure SDK the way a user's script does: trust from
// NODE_EXTRA_CA_CERTS, proxy from HTTPS_PROXY / NO_PROXY (the SDK's proxyPolicy reads them; it
// ignores any TLS options when it proxies, so the environment is the only honest way in).
// Input: the path of a JSON file in argv[2]. Output: one JSON line on stdout.
//   gateway:  upload to the gateway's ingest listener (NO_PROXY covers it) with an API key.
//   emulator: ClientSecretCredential + upload to the emulator's DCE endpoint, both through HTTPS_PROXY.
import { ClientSecretCredential } from '@azure/identity';
import { LogsIngestionClient } from '@azure/monitor-ingestion';
import { readFileSync } from 'node:fs';

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = {};
try {
  const apiKey = { getToken: async () => ({ token: job.gateway.apiKey, expiresOnTimestamp: Date.now() + 3_600_000 }) };
  await new LogsIngestionClient(job.gateway.endpoint, apiKey, { retryOptions: { maxRetries: 0 } }).upload(
    job.gateway.dcrId,
    job.gateway.stream,
    job.gateway.records,
  );
  out.gateway = 'ok';
  const credential = new ClientSecretCredential(job.emulator.tenantId, job.emulator.clientId, job.emulator.secret, {
    authorityHost: job.emulator.authorityHost,
    disableInstanceDiscovery: true,
  });
  await new LogsIngestionClient(job.emulator.endpoint, credential, { retryOptions: { maxRetries: 0 } }).upload(
    job.emulator.dcrId,
    job.emulator.stream,
    job.emulator.records,
  );
  out.emulator = 'ok';
} catch (err) {
  out.error = String(err?.stack ?? err);
  out.errors = err?.errors?.map((e) => String(e?.cause ?? e));
}
process.stdout.write(JSON.stringify(out) + '\n');
