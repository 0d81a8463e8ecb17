/**
 * The published CEF key -> CommonSecurityLog column mapping (Microsoft Sentinel, "CEF and
 * CommonSecurityLog field mapping"), with the column types of the table. Keys not listed here go
 * to AdditionalExtensions as `key=value` pairs joined by `;`, as the Azure Monitor Agent writes them.
 */

export type ColumnType = 'string' | 'int' | 'long' | 'real' | 'datetime';

const S = 'string';
const I = 'int';
const L = 'long';
const R = 'real';
const D = 'datetime';

/** CEF extension key -> [column, type]. */
export const CEF_COLUMNS: ReadonlyMap<string, readonly [string, ColumnType]> = new Map<string, readonly [string, ColumnType]>([
  ['act', ['DeviceAction', S]],
  ['app', ['ApplicationProtocol', S]],
  ['cat', ['DeviceEventCategory', S]],
  ['cnt', ['EventCount', I]],
  ['destinationDnsDomain', ['DestinationDnsDomain', S]],
  ['destinationServiceName', ['DestinationServiceName', S]],
  ['destinationTranslatedAddress', ['DestinationTranslatedAddress', S]],
  ['destinationTranslatedPort', ['DestinationTranslatedPort', I]],
  ['deviceDirection', ['CommunicationDirection', S]],
  ['deviceDnsDomain', ['DeviceDnsDomain', S]],
  ['deviceExternalId', ['DeviceExternalID', S]],
  ['deviceFacility', ['DeviceFacility', S]],
  ['deviceInboundInterface', ['DeviceInboundInterface', S]],
  ['deviceNtDomain', ['DeviceNtDomain', S]],
  ['deviceOutboundInterface', ['DeviceOutboundInterface', S]],
  ['devicePayloadId', ['DevicePayloadId', S]],
  ['deviceProcessName', ['ProcessName', S]],
  ['deviceTranslatedAddress', ['DeviceTranslatedAddress', S]],
  ['dhost', ['DestinationHostName', S]],
  ['dmac', ['DestinationMACAddress', S]],
  ['dntdom', ['DestinationNTDomain', S]],
  ['dpid', ['DestinationProcessId', I]],
  ['dpriv', ['DestinationUserPrivileges', S]],
  ['dproc', ['DestinationProcessName', S]],
  ['dpt', ['DestinationPort', I]],
  ['dst', ['DestinationIP', S]],
  ['dtz', ['DeviceTimeZone', S]],
  ['duid', ['DestinationUserID', S]],
  ['duser', ['DestinationUserName', S]],
  ['dvc', ['DeviceAddress', S]],
  ['dvchost', ['DeviceName', S]],
  ['dvcmac', ['DeviceMacAddress', S]],
  ['dvcpid', ['ProcessID', I]],
  ['end', ['EndTime', D]],
  ['externalId', ['ExternalID', I]],
  ['fileCreateTime', ['FileCreateTime', S]],
  ['fileHash', ['FileHash', S]],
  ['fileId', ['FileID', S]],
  ['fileModificationTime', ['FileModificationTime', S]],
  ['filePath', ['FilePath', S]],
  ['filePermission', ['FilePermission', S]],
  ['fileType', ['FileType', S]],
  ['fname', ['FileName', S]],
  ['fsize', ['FileSize', I]],
  ['in', ['ReceivedBytes', L]],
  ['msg', ['Message', S]],
  ['oldFileCreateTime', ['OldFileCreateTime', S]],
  ['oldFileHash', ['OldFileHash', S]],
  ['oldFileId', ['OldFileID', S]],
  ['oldFileModificationTime', ['OldFileModificationTime', S]],
  ['oldFileName', ['OldFileName', S]],
  ['oldFilePath', ['OldFilePath', S]],
  ['oldFilePermission', ['OldFilePermission', S]],
  ['oldFileSize', ['OldFileSize', I]],
  ['oldFileType', ['OldFileType', S]],
  ['out', ['SentBytes', L]],
  ['outcome', ['EventOutcome', S]],
  ['proto', ['Protocol', S]],
  ['reason', ['Reason', S]],
  ['request', ['RequestURL', S]],
  ['requestClientApplication', ['RequestClientApplication', S]],
  ['requestContext', ['RequestContext', S]],
  ['requestCookies', ['RequestCookies', S]],
  ['requestMethod', ['RequestMethod', S]],
  ['rt', ['ReceiptTime', S]],
  ['shost', ['SourceHostName', S]],
  ['smac', ['SourceMACAddress', S]],
  ['sntdom', ['SourceNTDomain', S]],
  ['sourceDnsDomain', ['SourceDnsDomain', S]],
  ['sourceServiceName', ['SourceServiceName', S]],
  ['sourceTranslatedAddress', ['SourceTranslatedAddress', S]],
  ['sourceTranslatedPort', ['SourceTranslatedPort', I]],
  ['spid', ['SourceProcessId', I]],
  ['spriv', ['SourceUserPrivileges', S]],
  ['sproc', ['SourceProcessName', S]],
  ['spt', ['SourcePort', I]],
  ['src', ['SourceIP', S]],
  ['start', ['StartTime', D]],
  ['suid', ['SourceUserID', S]],
  ['suser', ['SourceUserName', S]],
  ['type', ['EventType', I]],
  ...customColumns(),
]);

function customColumns(): Array<[string, readonly [string, ColumnType]]> {
  const out: Array<[string, readonly [string, ColumnType]]> = [];
  const pair = (key: string, column: string, type: ColumnType): void => {
    out.push([key, [column, type]]);
    out.push([`${key}Label`, [`${column}Label`, S]]);
  };
  for (let n = 1; n <= 6; n++) pair(`cs${n}`, `DeviceCustomString${n}`, S);
  for (let n = 1; n <= 3; n++) pair(`cn${n}`, `DeviceCustomNumber${n}`, L);
  for (let n = 1; n <= 4; n++) pair(`cfp${n}`, `DeviceCustomFloatingPoint${n}`, R);
  for (let n = 1; n <= 4; n++) pair(`c6a${n}`, `DeviceCustomIPv6Address${n}`, S);
  for (let n = 1; n <= 2; n++) pair(`deviceCustomDate${n}`, `DeviceCustomDate${n}`, S);
  for (let n = 1; n <= 2; n++) pair(`flexString${n}`, `FlexString${n}`, S);
  for (let n = 1; n <= 2; n++) pair(`flexNumber${n}`, `FlexNumber${n}`, I);
  pair('flexDate1', 'FlexDate1', S);
  return out;
}

const INT = /^-?[0-9]{1,10}$/;
const LONG = /^-?[0-9]{1,18}$/;
const CEF_DATE = /^([A-Z][a-z]{2}) (\d{1,2}) (\d{4}) (\d\d):(\d\d):(\d\d)(\.\d{1,3})?(?: ([A-Z]{3,4}|Z|[+-]\d\d:?\d\d))?$/;
const MONTHS: Record<string, number> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };

/** A CEF time (milliseconds since the epoch, or "MMM dd yyyy HH:mm:ss[.SSS] [zone]") as ISO, or null. */
export function cefTime(v: string): string | null {
  if (/^[0-9]{10,14}$/.test(v)) return new Date(Number(v)).toISOString();
  const m = CEF_DATE.exec(v);
  if (m) {
    const [, mon = '', d = '1', y = '1970', hh = '0', mi = '0', ss = '0', frac, zone] = m;
    const month = MONTHS[mon];
    if (month === undefined) return null;
    const ms = frac ? Math.round(Number(frac) * 1000) : 0;
    // UTC/GMT/Z or a numeric offset are honoured; other zone names are read as UTC.
    let t = Date.UTC(Number(y), month, Number(d), Number(hh), Number(mi), Number(ss), ms);
    const off = zone && /^[+-]/.test(zone) ? zone.replace(':', '') : null;
    if (off) t -= (off.startsWith('-') ? -1 : 1) * (Number(off.slice(1, 3)) * 60 + Number(off.slice(3, 5))) * 60_000;
    return Number.isNaN(t) ? null : new Date(t).toISOString();
  }
  const t = Date.parse(v);
  return /^\d{4}-\d\d-\d\dT/.test(v) && !Number.isNaN(t) ? new Date(t).toISOString() : null;
}

/** The typed value for a column, or undefined when it does not fit (the pair then stays in AdditionalExtensions). */
export function typed(type: ColumnType, v: string): string | number | undefined {
  switch (type) {
    case 'string':
      return v;
    case 'int':
      return INT.test(v) && Math.abs(Number(v)) <= 2_147_483_647 ? Number(v) : undefined;
    case 'long':
      return LONG.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : undefined;
    case 'real': {
      const n = Number(v);
      return v.trim() !== '' && Number.isFinite(n) ? n : undefined;
    }
    case 'datetime':
      return cefTime(v) ?? undefined;
  }
}
