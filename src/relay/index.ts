export { nativeRelayStatus, relayConfigCheck, relayInUse, relayTunnel, type RelayEnd, type RelayEndCause, type RelayedTunnel, type RelayOptions } from './native.js';
