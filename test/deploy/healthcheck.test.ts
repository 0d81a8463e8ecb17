/**
 * The image's HEALTHCHECK, run as Docker would run it (`node -e <script>` from docker/Dockerfile,
 * the exec form's arguments as written) against a real gateway: exit 0 while /healthz answers,
 * exit 1 once the gateway is gone. Only PORTCULLIS_HEALTH_PORT differs (the test's admin port).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayProcess } from '../helpers/gateway.js';

const dockerfile = readFileSync(new URL('../../docker/Dockerfile', import.meta.url), 'utf8').replace(/\s*\\\n\s*/g, ' ');

/** The HEALTHCHECK's CMD in exec form: a JSON array. */
function healthcheckArgv(): string[] {
  const m = /^HEALTHCHECK .*? CMD (\[.*\])$/m.exec(dockerfile);
  expect(m?.[1], 'HEALTHCHECK ... CMD [...] in docker/Dockerfile').toBeDefined();
  return JSON.parse(m?.[1] ?? '[]') as string[];
}

function runCheck(argv: string[], adminPort: number): Promise<number | null> {
  const [bin, ...args] = argv;
  expect(bin).toBe('node');
  return new Promise((resolve) => {
    const child = execFile(process.execPath, args, { env: { PATH: process.env.PATH ?? '', PORTCULLIS_HEALTH_PORT: String(adminPort) }, timeout: 20_000 }, () =>
      resolve(child.exitCode),
    );
  });
}

describe('docker/Dockerfile HEALTHCHECK', () => {
  let gw: GatewayProcess | undefined;
  afterAll(async () => {
    await gw?.stop();
  });

  it('passes while the gateway answers /healthz and fails once it is gone', async () => {
    const argv = healthcheckArgv();
    gw = await startGateway({ allow: { presets: [] } });
    const adminPort = gw.adminPort ?? 0;
    expect(adminPort).toBeGreaterThan(0);
    expect(await runCheck(argv, adminPort)).toBe(0);
    expect(await gw.stop()).toBe(0);
    gw = undefined;
    expect(await runCheck(argv, adminPort)).toBe(1);
  });
});
