export {
  nativeRelayStatus,
  relayConfigCheck,
  relayInUse,
  relayTunnel,
  stopNativeRelay,
  RELAY_END_CAUSES,
  type RelayEnd,
  type RelayEndCause,
  type RelayedTunnel,
  type RelayOptions,
} from './native.js';
export { relayJs } from './js.js';
