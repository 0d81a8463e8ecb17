/**
 * syslog/: the syslog and CEF collector for Microsoft Sentinel. UDP, TCP and TLS listeners;
 * messages parsed (RFC 5424, RFC 3164, CEF) in the forwarder's pool threads, mapped to the Syslog
 * and CommonSecurityLog tables, and spooled through the forwarder's RecordIntake.
 */
import type { Registry } from 'prom-client';
import type { PortcullisConfig } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { RecordIntake } from '../forwarder/index.js';
import { SyslogService } from './service.js';

export { SyslogService, type SyslogServiceOptions, parseWorkerFile } from './service.js';
export { Framer, FramingError, splitBlock, type FramingMode, type FramedBlock } from './framing.js';
export { parseSyslog, type ParsedSyslog } from './parse/syslog.js';
export { parseCef, escapeHeader, escapeValue, type CefEvent } from './parse/cef.js';
export { runParse, syslogRecord, cslRecord, type ParseTask, type ParseResult, type RouteSpec } from './parse/task.js';
export { CEF_COLUMNS } from './parse/columns.js';
export { nativeCefStatus } from './parse/native.js';

export function createSyslogService(config: PortcullisConfig, logger: Logger, registry: Registry | null, intake: () => RecordIntake | null): SyslogService {
  return new SyslogService({ config, logger, registry, intake });
}
