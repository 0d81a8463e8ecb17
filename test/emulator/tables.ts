/**
 * Column declarations of the two Microsoft Sentinel tables the syslog collector writes, as a DCR's
 * streamDeclarations would carry them (Custom-Syslog -> Microsoft-Syslog, Custom-CommonSecurityLog
 * -> Microsoft-CommonSecurityLog), written from the published table references (Azure Monitor
 * Logs table reference: Syslog, CommonSecurityLog), not from the gateway's code. The emulator
 * checks records of a stream declared with columns against them.
 */
export type ColumnType = 'string' | 'int' | 'long' | 'real' | 'datetime' | 'boolean' | 'dynamic';

export const SYSLOG_COLUMNS: Readonly<Record<string, ColumnType>> = {
  TimeGenerated: 'datetime',
  EventTime: 'datetime',
  Computer: 'string',
  HostName: 'string',
  HostIP: 'string',
  Facility: 'string',
  SeverityLevel: 'string',
  ProcessName: 'string',
  ProcessID: 'int',
  SyslogMessage: 'string',
  CollectorHostName: 'string',
  SourceSystem: 'string',
};

const CSL: Record<string, ColumnType> = {
  TimeGenerated: 'datetime',
  Computer: 'string',
  CollectorHostName: 'string',
  DeviceVendor: 'string',
  DeviceProduct: 'string',
  DeviceVersion: 'string',
  DeviceEventClassID: 'string',
  Activity: 'string',
  LogSeverity: 'string',
  AdditionalExtensions: 'string',
  ApplicationProtocol: 'string',
  CommunicationDirection: 'string',
  DestinationDnsDomain: 'string',
  DestinationHostName: 'string',
  DestinationIP: 'string',
  DestinationMACAddress: 'string',
  DestinationNTDomain: 'string',
  DestinationPort: 'int',
  DestinationProcessId: 'int',
  DestinationProcessName: 'string',
  DestinationServiceName: 'string',
  DestinationTranslatedAddress: 'string',
  DestinationTranslatedPort: 'int',
  DestinationUserID: 'string',
  DestinationUserName: 'string',
  DestinationUserPrivileges: 'string',
  DeviceAction: 'string',
  DeviceAddress: 'string',
  DeviceDnsDomain: 'string',
  DeviceEventCategory: 'string',
  DeviceExternalID: 'string',
  DeviceFacility: 'string',
  DeviceInboundInterface: 'string',
  DeviceMacAddress: 'string',
  DeviceName: 'string',
  DeviceNtDomain: 'string',
  DeviceOutboundInterface: 'string',
  DevicePayloadId: 'string',
  DeviceTimeZone: 'string',
  DeviceTranslatedAddress: 'string',
  EndTime: 'datetime',
  EventCount: 'int',
  EventOutcome: 'string',
  EventType: 'int',
  ExternalID: 'int',
  FileCreateTime: 'string',
  FileHash: 'string',
  FileID: 'string',
  FileModificationTime: 'string',
  FileName: 'string',
  FilePath: 'string',
  FilePermission: 'string',
  FileSize: 'int',
  FileType: 'string',
  Message: 'string',
  OldFileCreateTime: 'string',
  OldFileHash: 'string',
  OldFileID: 'string',
  OldFileModificationTime: 'string',
  OldFileName: 'string',
  OldFilePath: 'string',
  OldFilePermission: 'string',
  OldFileSize: 'int',
  OldFileType: 'string',
  ProcessID: 'int',
  ProcessName: 'string',
  Protocol: 'string',
  Reason: 'string',
  ReceiptTime: 'string',
  ReceivedBytes: 'long',
  RequestClientApplication: 'string',
  RequestContext: 'string',
  RequestCookies: 'string',
  RequestMethod: 'string',
  RequestURL: 'string',
  SentBytes: 'long',
  SourceDnsDomain: 'string',
  SourceHostName: 'string',
  SourceIP: 'string',
  SourceMACAddress: 'string',
  SourceNTDomain: 'string',
  SourcePort: 'int',
  SourceProcessId: 'int',
  SourceProcessName: 'string',
  SourceServiceName: 'string',
  SourceTranslatedAddress: 'string',
  SourceTranslatedPort: 'int',
  SourceUserID: 'string',
  SourceUserName: 'string',
  SourceUserPrivileges: 'string',
  StartTime: 'datetime',
  FlexDate1: 'string',
  FlexDate1Label: 'string',
};
for (let n = 1; n <= 6; n++) Object.assign(CSL, { [`DeviceCustomString${n}`]: 'string', [`DeviceCustomString${n}Label`]: 'string' });
for (let n = 1; n <= 3; n++) Object.assign(CSL, { [`DeviceCustomNumber${n}`]: 'long', [`DeviceCustomNumber${n}Label`]: 'string' });
for (let n = 1; n <= 4; n++) Object.assign(CSL, { [`DeviceCustomFloatingPoint${n}`]: 'real', [`DeviceCustomFloatingPoint${n}Label`]: 'string' });
for (let n = 1; n <= 4; n++) Object.assign(CSL, { [`DeviceCustomIPv6Address${n}`]: 'string', [`DeviceCustomIPv6Address${n}Label`]: 'string' });
for (let n = 1; n <= 2; n++) Object.assign(CSL, { [`DeviceCustomDate${n}`]: 'string', [`DeviceCustomDate${n}Label`]: 'string' });
for (let n = 1; n <= 2; n++)
  Object.assign(CSL, { [`FlexString${n}`]: 'string', [`FlexString${n}Label`]: 'string', [`FlexNumber${n}`]: 'int', [`FlexNumber${n}Label`]: 'string' });
export const COMMON_SECURITY_LOG_COLUMNS: Readonly<Record<string, ColumnType>> = CSL;

/** Why `value` does not fit `type` (null when it does). null and absent values always fit. */
export function columnProblem(type: ColumnType, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  switch (type) {
    case 'string':
      return typeof value === 'string' ? null : `expected a string, got ${typeof value}`;
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) && Math.abs(value) <= 2_147_483_647 ? null : `expected an int, got ${JSON.stringify(value)}`;
    case 'long':
      return typeof value === 'number' && Number.isSafeInteger(value) ? null : `expected a long, got ${JSON.stringify(value)}`;
    case 'real':
      return typeof value === 'number' ? null : `expected a real, got ${JSON.stringify(value)}`;
    case 'boolean':
      return typeof value === 'boolean' ? null : `expected a boolean, got ${JSON.stringify(value)}`;
    case 'datetime':
      return typeof value === 'string' && /^\d{4}-\d\d-\d\dT/.test(value) && !Number.isNaN(Date.parse(value))
        ? null
        : `expected an ISO 8601 datetime, got ${JSON.stringify(value)}`;
    case 'dynamic':
      return null;
  }
}
