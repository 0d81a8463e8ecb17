/** certs/: a private CA, server and client certificates, and what a certificate file holds. */
export {
  createCa,
  describeCertificate,
  issueCertificate,
  type CertificateFacts,
  type IssueOptions,
  type KeyAndCert,
  type SubjectSpec,
  type Validity,
} from './certs.js';
