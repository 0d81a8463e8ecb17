export {
  nativeRelayStats,
  nativeRelayStatus,
  nativeRelayFile,
  MAX_RELAY_SLOTS,
  relayConfigCheck,
  relayInUse,
  relayTunnel,
  stopNativeRelay,
  RELAY_END_CAUSES,
  type RelayEnd,
  type RelayEndCause,
  type RelayFallback,
  type RelayStats,
  type RelayedTunnel,
  type RelayOptions,
} from './native.js';
export { relayJs } from './js.js';
