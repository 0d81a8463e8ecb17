export { ProxyServer, type ProxyServerOptions, type BoundAddress, type LimitShare, type EffectiveLimits } from './server.js';
export type { AccessRecord, ProxyObserver, Reason, Verdict, CloseCause, RelayEvent } from './access.js';
export { noopObserver } from './access.js';
export type { RelayFallback, RelayStats } from '../relay/index.js';
