export { Spool } from './spool.js';
export type { AppendItem, FsyncMode, PendingInfo, RecoveryReport, SpoolEntry, SpoolEntryRef, SpoolOptions, SpoolStats } from './types.js';
