// Types for records.mjs (benches are plain ESM; tests import the same generator).
export type AgentRecord = {
  TimeGenerated: string;
  RecordId: string;
  Computer: string;
  EventID: number;
  Level: string;
  Channel: string;
  Provider: string;
  UserName: string;
  IpAddress: string;
  ProcessName: string;
  ProcessId: number;
  CorrelationId: string;
  Message: string;
};
export function makeRecord(n: number, runId?: string): AgentRecord;
export function makeRecords(count: number, from?: number, runId?: string): AgentRecord[];
