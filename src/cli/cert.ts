import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { createCa, describeCertificate, issueCertificate, type KeyAndCert, type SubjectSpec } from '../certs/index.js';
import { errorMessage } from '../util/errors.js';

interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

function positiveInt(raw: string, what: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 36500) throw new Error(`${what} must be a whole number of days from 1 to 36500, not ${JSON.stringify(raw)}`);
  return n;
}

/** Certificate (0644) and key (0600) as `<name>.pem` / `<name>.key` in `dir`; an existing file is an error without `force`. */
function writePair(dir: string, name: string, pair: KeyAndCert, force: boolean): { certFile: string; keyFile: string } {
  mkdirSync(dir, { recursive: true });
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}.key`);
  if (!force) for (const f of [certFile, keyFile]) if (existsSync(f)) throw new Error(`${f} exists (--force replaces it)`);
  writeFileSync(keyFile, pair.keyPem, { mode: 0o600 });
  // mode applies only to a new file: a replaced key gets it too.
  chmodSync(keyFile, 0o600);
  writeFileSync(certFile, pair.certPem, { mode: 0o644 });
  return { certFile, keyFile };
}

function readCa(dir: string): KeyAndCert {
  try {
    return { certPem: readFileSync(join(dir, 'ca.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'ca.key'), 'utf8') };
  } catch (err) {
    throw new Error(`cannot read the CA in ${dir} (ca.pem and ca.key, made by \`portcullis cert ca create\`): ${errorMessage(err)}`);
  }
}

function printFacts(io: Io, label: string, file: string, pem: string): void {
  const f = describeCertificate(pem);
  io.out(`${label}: ${file}\n  subject: ${f.subject}\n  sha256:  ${f.sha256}\n`);
}

/** Run a command body, turning a thrown error into one line on stderr and exit code 1. */
async function guarded(what: string, io: Io, body: () => Promise<void> | void): Promise<void> {
  try {
    await body();
  } catch (err) {
    io.err(`portcullis cert ${what}: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  }
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `portcullis cert ca create | server issue | client issue | show`. */
export function registerCertCommands(program: Command, io: Io = stdio): void {
  const cert = program
    .command('cert')
    .description('a private CA, server certificates for the TLS listeners, client certificates, and what a certificate file holds');

  cert
    .command('ca')
    .description('the private CA')
    .command('create')
    .description('create a CA: <out-dir>/ca.pem (certificate) and <out-dir>/ca.key (key, mode 0600)')
    .requiredOption('--out-dir <dir>', 'where to write ca.pem and ca.key')
    .option('--cn <name>', 'common name', 'Portcullis private CA')
    .option('--o <org>', 'organisation')
    .option('--days <n>', 'validity in days', '3650')
    .option('--force', 'replace existing files', false)
    .action((opts: { outDir: string; cn: string; o?: string; days: string; force: boolean }) =>
      guarded('ca create', io, async () => {
        const subject: SubjectSpec = { commonNames: [opts.cn], ...(opts.o !== undefined ? { organization: opts.o } : {}) };
        const pair = await createCa(subject, { days: positiveInt(opts.days, '--days') });
        const { certFile } = writePair(opts.outDir, 'ca', pair, opts.force);
        printFacts(io, 'CA certificate', certFile, pair.certPem);
      }),
    );

  cert
    .command('server')
    .description('server certificates (the TLS proxy listener, the forwarder, the admin listener)')
    .command('issue')
    .description('issue a server certificate signed by the CA: <out-dir>/<name>.pem and <name>.key (0600)')
    .requiredOption('--ca <dir>', 'the CA directory (ca.pem, ca.key)')
    .requiredOption('--out-dir <dir>', 'where to write the certificate and key')
    .option('--dns <name>', 'a DNS name clients connect to (repeatable)', collect)
    .option('--ip <address>', 'an IP address clients connect to (repeatable)', collect)
    .option('--cn <name>', 'common name (default: the first name)')
    .option('--name <file>', 'file name without extension', 'server')
    .option('--days <n>', 'validity in days', '825')
    .option('--force', 'replace existing files', false)
    .action((opts: { ca: string; outDir: string; dns?: string[]; ip?: string[]; cn?: string; name: string; days: string; force: boolean }) =>
      guarded('server issue', io, async () => {
        const names = [...(opts.dns ?? []), ...(opts.ip ?? [])];
        if (names.length === 0) throw new Error('give at least one --dns or --ip: clients check the name they connect to');
        const ca = readCa(opts.ca);
        const cn = opts.cn ?? names[0] ?? 'server';
        const pair = await issueCertificate(ca, {
          kind: 'server',
          subject: { commonNames: [cn] },
          names,
          validity: { days: positiveInt(opts.days, '--days') },
        });
        const { certFile } = writePair(opts.outDir, opts.name, pair, opts.force);
        printFacts(io, 'server certificate', certFile, pair.certPem);
      }),
    );

  cert
    .command('client')
    .description('client certificates (the TLS proxy listener with clientCaFile, the forwarder)')
    .command('issue')
    .description(
      'issue a client certificate signed by the CA: <out-dir>/<name>.pem and <name>.key (0600); prints the subject and SHA-256 thumbprint for clients.certificates',
    )
    .requiredOption('--ca <dir>', 'the CA directory (ca.pem, ca.key)')
    .requiredOption('--cn <name>', 'common name (repeatable, in order: --cn <workspaceId> --cn <agentGuid> makes CN=<ws>, CN=<agent>)', collect)
    .option('--ou <unit>', 'organisational unit')
    .option('--o <org>', 'organisation')
    .requiredOption('--out-dir <dir>', 'where to write the certificate and key')
    .option('--name <file>', 'file name without extension', 'client')
    .option('--days <n>', 'validity in days', '825')
    .option('--force', 'replace existing files', false)
    .action((opts: { ca: string; cn: string[]; ou?: string; o?: string; outDir: string; name: string; days: string; force: boolean }) =>
      guarded('client issue', io, async () => {
        const ca = readCa(opts.ca);
        // Listed CNs come most specific first, as the subject prints: the certificate stores them the other way.
        const subject: SubjectSpec = {
          commonNames: [...opts.cn].reverse(),
          ...(opts.ou !== undefined ? { organizationalUnit: opts.ou } : {}),
          ...(opts.o !== undefined ? { organization: opts.o } : {}),
        };
        const pair = await issueCertificate(ca, { kind: 'client', subject, validity: { days: positiveInt(opts.days, '--days') } });
        const { certFile } = writePair(opts.outDir, opts.name, pair, opts.force);
        printFacts(io, 'client certificate', certFile, pair.certPem);
      }),
    );

  cert
    .command('show')
    .description('print subject, issuer, validity, subject alternative names and SHA-256 thumbprint of a PEM certificate')
    .argument('<file>', 'certificate file (PEM)')
    .option('--json', 'as JSON', false)
    .action((file: string, opts: { json: boolean }) =>
      guarded('show', io, () => {
        let pem: string;
        try {
          pem = readFileSync(file, 'utf8');
        } catch (err) {
          throw new Error(`cannot read ${file}: ${errorMessage(err)}`);
        }
        let f;
        try {
          f = describeCertificate(pem);
        } catch (err) {
          throw new Error(`${file} holds no PEM certificate: ${errorMessage(err)}`);
        }
        if (opts.json) return io.out(JSON.stringify(f, null, 2) + '\n');
        io.out(
          [
            `subject:    ${f.subject}`,
            `issuer:     ${f.issuer}`,
            `not before: ${f.notBefore}`,
            `not after:  ${f.notAfter}`,
            `names:      ${f.subjectAltNames.length > 0 ? f.subjectAltNames.join(', ') : '(none)'}`,
            `CA:         ${f.isCa ? 'yes' : 'no'}`,
            `sha256:     ${f.sha256}`,
          ].join('\n') + '\n',
        );
      }),
    );
}
