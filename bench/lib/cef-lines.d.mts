/** Line n of the syslog bench's CEF stream (no LF), about 400 bytes. */
export function cefLine(n: number): string;
/** `count` lines, each ending with LF, as one string. */
export function cefLines(count: number): string;
