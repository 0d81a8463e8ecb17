/**
 * A per-process test CA and leaf certificates signed by it, made by the same code as
 * `portcullis cert` (src/certs). Both the CA and issued certs are memoised.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, issueCertificate, type KeyAndCert } from '../../src/certs/index.js';

export interface IssuedCert {
  keyPem: string;
  certPem: string;
}

export interface ClientCertSubject {
  /** In order, e.g. [workspaceId, agentGuid] for `CN=<ws>, CN=<agent>`. */
  commonNames: string[];
  organizationalUnit?: string;
  organization?: string;
}

export interface TestCA {
  caPem: string;
  /** PEM file of the CA certificate, for curl --cacert and the like. */
  caFile: string;
  /** Server certificate: SAN DNS names (IP SANs for IP literals), serverAuth EKU. */
  issue(names: string[]): Promise<IssuedCert>;
  /** Client certificate (clientAuth EKU) with the given subject, for mTLS tests. */
  issueClient(subject: ClientCertSubject): Promise<IssuedCert>;
  /** The CA's certificate and key, for tests that issue with other options. */
  ca: KeyAndCert;
}

const DAY_MS = 24 * 3600 * 1000;
/** A day back and 30 ahead: the tests' clocks never fall outside. */
const VALIDITY = { days: 30, backdateMs: DAY_MS };

let caPromise: Promise<TestCA> | undefined;

export function testCA(): Promise<TestCA> {
  caPromise ??= createCA();
  return caPromise;
}

async function createCA(): Promise<TestCA> {
  const ca = await createCa({ commonNames: ['Portcullis Test CA'], organization: 'Portcullis tests' }, VALIDITY);
  const caPem = ca.certPem;

  const dir = mkdtempSync(join(tmpdir(), 'portcullis-ca-'));
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, caPem);
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));

  const issued = new Map<string, Promise<IssuedCert>>();
  const remember = (cacheKey: string, make: () => Promise<KeyAndCert>): Promise<IssuedCert> => {
    let p = issued.get(cacheKey);
    if (p === undefined) {
      p = make();
      issued.set(cacheKey, p);
    }
    return p;
  };

  return {
    caPem,
    caFile,
    ca,
    issue(names: string[]): Promise<IssuedCert> {
      const first = names[0];
      if (first === undefined) throw new Error('issue(): at least one name');
      return remember('server:' + [...names].sort().join(','), () =>
        issueCertificate(ca, { kind: 'server', subject: { commonNames: [first] }, names, validity: VALIDITY }),
      );
    },
    issueClient(subject: ClientCertSubject): Promise<IssuedCert> {
      return remember('client:' + JSON.stringify(subject), () => issueCertificate(ca, { kind: 'client', subject, validity: VALIDITY }));
    },
  };
}
