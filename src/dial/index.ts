/**
 * dial/: resolve a destination (dns.overrides, cached getaddrinfo), classify every address
 * (private-address guard) and connect to the vetted IP.
 */
export { classifyAddress } from './classify.js';
export type { AddressClass } from './classify.js';
export { Resolver, toResolved } from './resolver.js';
export type { ResolvedAddress, ResolverOptions } from './resolver.js';
export { dial, dialFirst } from './connect.js';
export type { DialOptions } from './connect.js';
export { DirectDialer } from './dialer.js';
export type { Dialer, DialTarget, DirectDialerOptions } from './dialer.js';
export { RelayDialer, RelayHealth } from './relay.js';
export type { RelayDialerOptions, RelayEvent } from './relay.js';
export { basicAuth, connectThroughRelay, relayHandshake, relayStaysUp, RelayFailure, MAX_RELAY_HEAD_BYTES } from './relay-connect.js';
export type { RelayEndpoint, RelayFailureReason } from './relay-connect.js';
export { BypassList } from './bypass.js';
