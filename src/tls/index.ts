export { HandshakeStream, CONTENT_ALERT, CONTENT_APPLICATION_DATA, CONTENT_CHANGE_CIPHER_SPEC, CONTENT_HANDSHAKE, type TlsEvent } from './records.js';
export {
  parseClientHello,
  parseServerHello,
  parseCertificateList,
  HS_CLIENT_HELLO,
  HS_SERVER_HELLO,
  HS_CERTIFICATE,
  HS_CERTIFICATE_REQUEST,
  HS_SERVER_HELLO_DONE,
  type ClientHello,
  type ServerHello,
} from './hello.js';
export { TLS_VERSIONS, isGrease, versionLabel, versionNumber, type TlsVersionName, type VersionLabel } from './versions.js';
export {
  certificateIdentity,
  compileCertificateAllowlist,
  normaliseSubject,
  normaliseThumbprint,
  type CertificateAllowlist,
  type CertificateIdentity,
} from './subject.js';
