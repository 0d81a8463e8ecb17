/**
 * policy/: may this client reach this host:port? Deny by default.
 * See policy.ts for how the allowlist is compiled and decided, host.ts for parsing.
 */
export { normaliseHost, parseConnectAuthority, targetFromAbsoluteUrl, type Target } from '../address/host.js';
export {
  compilePolicy,
  describePolicy,
  allowedDestinations,
  type AllowedDestinations,
  CLIENT_ACL_RULE_NAME,
  ANONYMOUS,
  identityLabel,
  type ClientIdentity,
  type DecideArgs,
  type CompiledRule,
  type TlsChecks,
  type Decision,
  type DenyReason,
  type Policy,
} from './policy.js';
export { PRESET_NAMES, presetProbes } from './presets.js';
export { compileCertificateAllowlist, displaySubject, normaliseThumbprint, subjectKey, type CertificateAllowlist } from './certificates.js';
