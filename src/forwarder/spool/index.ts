export { Spool } from './spool.js';
export type { AppendItem, FsyncMode, PendingInfo, RecoveryReport, SpoolEntry, SpoolOptions, SpoolStats } from './types.js';
