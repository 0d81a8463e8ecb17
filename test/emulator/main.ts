/**
 * Runnable emulator for a local demo: `npm run emulator` (compiles test/emulator with
 * tsconfig.emulator.json into dist-emulator/, then runs this). Registers one app, one DCR and one
 * workspace (from env or defaults), writes the test CA and the settings to stdout as JSON, and
 * serves until SIGINT/SIGTERM. The admin API is on the same port under /_emulator/ (records,
 * requests, faults, outage, expire-tokens, reset, dcrs, workspaces, apps).
 */
import { AzureMonitorEmulator } from './emulator.js';
import { nativeDeflateStatus } from '../../src/forwarder/pool/gzip.js';
import { nativeJsonStatus } from '../../src/forwarder/pool/json-native.js';

const env = process.env;
const tenantId = env['EMU_TENANT_ID'] ?? '00000000-0000-4000-8000-000000000001';
const clientId = env['EMU_CLIENT_ID'] ?? '00000000-0000-4000-8000-0000000000c1';
const clientSecret = env['EMU_CLIENT_SECRET'] ?? 'emulator-secret';
const dcrId = env['EMU_DCR_ID'] ?? 'dcr-00000000000000000000000000000001';
const streams = (env['EMU_STREAMS'] ?? 'Custom-App_CL').split(',');
const workspaceId = env['EMU_WORKSPACE_ID'] ?? '00000000-0000-4000-8000-0000000000a1';
const port = env['EMU_PORT'] !== undefined ? Number(env['EMU_PORT']) : 0;

// Benchmarks: EMU_KEEP_RECORDS=0 counts records without keeping them; EMU_COUNT_ONLY=1 also
// skips parsing Logs Ingestion bodies (a structural count instead).
const countOnly = env['EMU_COUNT_ONLY'] === '1';
const emu = await AzureMonitorEmulator.start({ port, keepRecords: !countOnly && env['EMU_KEEP_RECORDS'] !== '0', countOnly });
emu.addApp({ tenantId, clientId, secrets: [clientSecret] });
emu.addDcr({ immutableId: dcrId, streams });
const ws = emu.addWorkspace({ workspaceId, ...(env['EMU_SHARED_KEY'] !== undefined ? { sharedKeys: [env['EMU_SHARED_KEY']] } : {}) });
process.stdout.write(
  `${JSON.stringify(
    {
      port: emu.port,
      caFile: emu.caFile,
      authorityHost: emu.authorityHost,
      logsIngestionEndpoint: emu.logsIngestionEndpoint(),
      dataCollectorEndpoint: emu.dataCollectorEndpoint(workspaceId),
      tenantId,
      clientId,
      dcrId,
      streams,
      workspaceId,
      sharedKey: ws.sharedKey,
      // Count mode's C helpers (benches): the file each loads from, or why the JavaScript runs.
      native: { json: nativeJsonStatus().path || nativeJsonStatus().reason, deflate: nativeDeflateStatus().path || nativeDeflateStatus().reason },
      note: 'names must resolve to 127.0.0.1 (dns.overrides in the gateway, or /etc/hosts); admin: GET /_emulator/records',
    },
    null,
    2,
  )}\n`,
);
const stop = (): void => {
  void emu.close().then(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
