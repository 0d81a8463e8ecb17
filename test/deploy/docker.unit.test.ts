/**
 * docker/: no Docker engine runs here, so the image and the compose file are checked as files:
 * the Dockerfile with dockerfile-utils (the Docker language server's validator: instruction
 * syntax, flags, ports, signals, stage names) plus the properties the image promises (Node 24
 * bookworm-slim, native relay built, non-root by number, HEALTHCHECK on /healthz, spool volume,
 * ports, STOPSIGNAL); the compose file against the Compose Specification's JSON Schema (vendored,
 * see schemas/README.md) and against the tested HAProxy reference config it mounts.
 * Not checked: that the image builds and runs (that needs an engine).
 */
import { existsSync, readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { validate as validateDockerfile } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, root), 'utf8');
const dockerfile = read('docker/Dockerfile');

/** Instructions with continuation lines joined, comments dropped: [keyword, arguments]. */
function instructions(text: string): Array<[string, string]> {
  const joined = text.replace(/\s*\\\n\s*/g, ' ');
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const i = l.indexOf(' ');
      return [l.slice(0, i).toUpperCase(), l.slice(i + 1).trim()];
    });
}

/** The instructions of each stage (FROM starts one). */
function stages(text: string): Array<Array<[string, string]>> {
  const out: Array<Array<[string, string]>> = [];
  for (const ins of instructions(text)) {
    if (ins[0] === 'FROM') out.push([]);
    out.at(-1)?.push(ins);
  }
  return out;
}

describe('docker/Dockerfile', () => {
  const [build = [], runtime = []] = stages(dockerfile);
  /** The validator's messages are plain strings (markup only in other LSP tools). */
  const messages = (text: string): string[] =>
    validateDockerfile(text).map((d) => `line ${d.range.start.line + 1}: ${typeof d.message === 'string' ? d.message : d.message.value}`);
  const all = (stage: Array<[string, string]>, kw: string): string[] => stage.filter(([k]) => k === kw).map(([, a]) => a);

  it('has no problem the Dockerfile validator finds', () => {
    expect(messages(dockerfile)).toEqual([]);
  });

  it('the validator does find problems (a broken copy fails)', () => {
    const broken = dockerfile.replace('EXPOSE 8080/tcp', 'EXPOSE 8080/tpc').replace('--interval=10s', '--interval=10x').replace('USER 1000', 'USR 1000');
    const line = (text: string): number => dockerfile.split('\n').findIndex((l) => l.includes(text)) + 1;
    expect(messages(broken)).toEqual([
      `line ${line('USER 1000')}: Unknown instruction: USR`,
      `line ${line('EXPOSE 8080')}: Invalid proto: tpc`,
      `line ${line('HEALTHCHECK --interval')}: time: unknown unit x in duration 10x`,
    ]);
  });

  it('builds on Node 24 bookworm-slim in both stages, and compiles the native relay in the build stage only', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:24-bookworm-slim$/m);
    expect(all(build, 'FROM')).toEqual(['${NODE_IMAGE} AS build']);
    expect(all(runtime, 'FROM')).toEqual(['${NODE_IMAGE}']);
    expect(all(build, 'ENV')).toContain('PORTCULLIS_REQUIRE_NATIVE=1');
    expect(all(build, 'RUN').join('\n')).toMatch(/apt-get install -y --no-install-recommends python3 make g\+\+ .*rm -rf \/var\/lib\/apt\/lists/);
    expect(all(runtime, 'RUN').join('\n')).not.toMatch(/apt-get|npm (ci|install)/);
    // Every addon, not only the relay: the CEF parser, JSON validator and batch gzip too.
    expect(all(runtime, 'COPY')).toContain('--from=build /app/build/Release/*.node ./build/Release/');
  });

  it('copies only files that exist in the repository, and the build context admits each of them', () => {
    const ignore = read('docker/Dockerfile.dockerignore')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1));
    for (const args of all(build, 'COPY')) {
      const parts = args.split(/\s+/);
      for (const src of parts.slice(0, -1)) {
        expect(existsSync(new URL(src, root)), `COPY ${src}`).toBe(true);
        expect(ignore, `${src} is excluded by docker/Dockerfile.dockerignore`).toContain(src.replace(/\/$/, ''));
      }
    }
    // The entrypoint is what `npm run build` makes of src/cli/main.ts.
    expect(all(runtime, 'ENTRYPOINT')).toEqual(['["node", "/opt/portcullis/dist/cli/main.js"]']);
    expect(existsSync(new URL('src/cli/main.ts', root))).toBe(true);
  });

  it('runs as a numeric non-root user, with the spool on a volume and nothing else to write', () => {
    const users = all(runtime, 'USER');
    expect(users).toEqual(['1000:1000']);
    // USER comes after the last RUN: nothing in the image is written by the service user's build steps.
    const idx = runtime.findIndex(([k]) => k === 'USER');
    expect(runtime.slice(idx).some(([k]) => k === 'RUN')).toBe(false);
    expect(all(runtime, 'VOLUME')).toEqual(['/var/lib/portcullis']);
    expect(all(runtime, 'RUN').join('\n')).toMatch(/chown -R 1000:1000 \/var\/lib\/portcullis/);
  });

  it('exposes the proxy, forwarder, admin and syslog ports, stops on SIGTERM, and checks /healthz with Node itself', () => {
    const exposed = all(runtime, 'EXPOSE').flatMap((a) => a.split(/\s+/));
    expect(exposed.sort()).toEqual(['514/tcp', '514/udp', '6514/tcp', '8080/tcp', '8443/tcp', '9464/tcp']);
    expect(all(runtime, 'STOPSIGNAL')).toEqual(['SIGTERM']);
    const [health = ''] = all(runtime, 'HEALTHCHECK');
    expect(health).toMatch(/^--interval=\d+s --timeout=\d+s --start-period=\d+s --retries=\d+ CMD \["node", "-e", /);
    expect(health).toContain("path:'/healthz'");
    expect(health).not.toMatch(/curl|wget/);
  });
});

describe('docker/compose.ha.yaml', () => {
  const compose = parse(read('docker/compose.ha.yaml'), { merge: true }) as {
    services: Record<string, Record<string, unknown>>;
    networks: Record<string, { ipam: { config: Array<{ subnet: string }> } }>;
  };

  it('is valid against the Compose Specification schema', () => {
    const ajv = new Ajv({ allErrors: true, strict: false });
    // The file names its meta-schema as https://json-schema.org/draft-07/schema, which Ajv knows
    // by its http:// id only; the draft is the same, so the reference is dropped, not the file changed.
    const { $schema: _meta, ...schema } = JSON.parse(read('test/deploy/schemas/compose-spec.json')) as Record<string, unknown>;
    const valid = ajv.validate(schema, compose);
    expect(ajv.errorsText(ajv.errors ?? [], { separator: '\n' }), 'schema errors').toBe('No errors');
    expect(valid).toBe(true);
    // And the schema is not vacuous: a misspelt key is refused.
    expect(ajv.validate(schema, { services: { gw1: { imagee: 'x' } } })).toBe(false);
  });

  it("HAProxy mounts the tested config/haproxy.cfg unchanged, and every `server` line's address is a gateway service", () => {
    const haproxy = compose.services.haproxy ?? {};
    expect(haproxy.volumes).toContain('../config/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro');
    const cfg = read('config/haproxy.cfg');
    const servers = [...cfg.matchAll(/^\s*server (\S+) ([\d.]+):(\d+)$/gm)].map((m) => ({ name: m[1] ?? '', ip: m[2] ?? '', port: Number(m[3]) }));
    expect(servers.length).toBeGreaterThanOrEqual(4);
    const addressOf = (svc: string): unknown =>
      (compose.services[svc]?.networks as Record<string, { ipv4_address?: string }> | undefined)?.portcullis?.ipv4_address;
    for (const s of servers) expect(addressOf(s.name), `server ${s.name}`).toBe(s.ip);
    expect(compose.networks.portcullis?.ipam.config[0]?.subnet).toBe('10.0.0.0/24');
    // The frontends' ports are published; the stats socket's directory exists (a tmpfs).
    expect(haproxy.ports).toEqual(['8080:8080', '8443:8443']);
    expect(cfg).toMatch(/stats socket \/run\/haproxy\//);
    expect((haproxy.tmpfs as string[]).some((t) => t.startsWith('/run/haproxy'))).toBe(true);
  });

  it('each gateway: the image from docker/Dockerfile, read-only root with a /tmp tmpfs, no capabilities, its own spool volume, the admin port open to HAProxy, and a stop grace period above the drain', () => {
    const gateways = Object.entries(compose.services).filter(([name]) => name.startsWith('gw'));
    expect(gateways.map(([n]) => n)).toEqual(['gw1', 'gw2']);
    const spools = new Set<string>();
    for (const [, svc] of gateways) {
      expect(svc.build).toEqual({ context: '..', dockerfile: 'docker/Dockerfile' });
      expect(svc.read_only).toBe(true);
      expect(svc.tmpfs).toEqual(['/tmp']);
      expect(svc.cap_drop).toEqual(['ALL']);
      expect(svc.environment).toMatchObject({ PORTCULLIS_ADMIN_LISTEN: '0.0.0.0:9464' });
      const volumes = svc.volumes as string[];
      expect(volumes).toContain('./portcullis.ha.yaml:/etc/portcullis/portcullis.yaml:ro');
      const spool = volumes.find((v) => v.endsWith(':/var/lib/portcullis'));
      expect(spool).toBeDefined();
      spools.add(spool ?? '');
      expect(svc.stop_signal).toBe('SIGTERM');
      expect(svc.stop_grace_period).toBe('45s');
    }
    expect(spools.size).toBe(gateways.length);
    const node = parse(read('docker/portcullis.ha.yaml')) as { proxy: { drainDelayMs: number; drainMs: number } };
    expect(node.proxy.drainDelayMs + node.proxy.drainMs).toBeLessThan(45_000);
    // HAProxy's check interval (inter 1s, fall 1) is inside the drain delay, as docs/ha.md asks.
    expect(node.proxy.drainDelayMs).toBeGreaterThan(1000);
  });
});
