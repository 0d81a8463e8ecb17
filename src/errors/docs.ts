/** Renders docs/errors.md from the catalogue (scripts/docs-errors.mjs writes it; a test compares). */
import { Events } from '../log/events.js';
import { apiCatalogue, catalogue, forwarderCatalogue, noticeCatalogue, type CatalogueEntry, type NoticeEntry } from './catalogue.js';

const eventNames = new Map<number, string>(Object.entries(Events).map(([name, n]) => [n, name]));

/** "202 START_FAILED": the number and its name. */
function eventLabel(event: number): string {
  return `${event} ${eventNames.get(event) ?? ''}`.trim();
}

function eventCell(e: CatalogueEntry): string {
  return e.event === null ? "the request's own (103 tunnel, 109 HTTP)" : eventLabel(e.event);
}

function kindCell(e: CatalogueEntry): string {
  return e.kind === 'rejection' ? 'rejection (deny)' : e.kind === 'error' ? 'error' : 'outcome (error)';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function row(e: CatalogueEntry): string {
  const status = e.status === 0 ? '—' : String(e.status) + (e.retryAfterS !== undefined ? ` (Retry-After: ${e.retryAfterS})` : '');
  return `| \`${e.code}\` | ${status} | \`${e.reason}\` | ${eventCell(e)} | ${kindCell(e)} | ${cell(e.message)} |`;
}

function noticeRow(e: NoticeEntry): string {
  return `| \`${e.code}\` | ${e.status === 0 ? '—' : e.status} | ${e.event === null ? '—' : eventLabel(e.event)} | ${cell(e.where)} | ${cell(e.message)} |`;
}

export function renderErrorsDoc(): string {
  const lines = [
    '# Refusals and errors',
    '',
    '<!-- Generated from src/errors/catalogue.ts by `npm run docs:errors`: edit the catalogue, not this file. -->',
    '',
    'Every refusal the proxy answers and every error it records has a stable code (`PCL_ERR_*`), the',
    'HTTP status the client sees, a `reason` (the access record field and the metrics label) and a log',
    "`event` code. Event numbers mirror the Log Analytics gateway's where one exists (103, 104, 105,",
    '400, 401, 403). A refusal body is `{"error":{"code","reason","message"}}`; some messages get a',
    'detail appended (an errno, the method). Kinds: *rejection* counts on `portcullis_rejections_total`',
    '(verdict `deny`), *error* on `portcullis_errors_total` (verdict `error`), *outcome* only on',
    '`portcullis_requests_total{verdict="error"}`. Status 0: nothing is answered, the connection is',
    'closed.',
    '',
    '| code | status | reason | event | kind | message |',
    '|---|---|---|---|---|---|',
  ];
  for (const e of catalogue) lines.push(row(e));
  lines.push(
    '',
    '## Telemetry forwarder',
    '',
    'Uploads to the forwarder are answered in the shape of the Azure API they were sent to (see',
    "[forwarder.md](forwarder.md)): the status below is the Logs Ingestion API's, and each API puts its",
    'own error code in the body (`{"error":{"code","message"}}` or `{"Error","Message"}`). 429 and',
    '503 carry `Retry-After` (`forwarder.limits.retryAfterS`). Refusals count on',
    '`portcullis_forwarder_uploads_refused_total{api,reason}`.',
    '',
    '| code | status | reason | event | kind | message |',
    '|---|---|---|---|---|---|',
  );
  for (const e of forwarderCatalogue) lines.push(row(e));
  lines.push(
    '',
    '## Admin API',
    '',
    'Answers of the management API under `/api/v1` (see [admin-api.md](admin-api.md)): the body is',
    '`{"error":{"code","message"}}`, plus `issues` (each with `path`, `line`, `message`) when a change',
    "would make the configuration invalid. Not counted on the proxy's metrics.",
    '',
    '| code | status | reason | event | kind | message |',
    '|---|---|---|---|---|---|',
  );
  for (const e of apiCatalogue) lines.push(row(e));
  lines.push(
    '',
    '## Start, configuration and other codes',
    '',
    'Not a refusal of a request: the start or a reload refused (the message names the config key and,',
    'for a file, its line), a warning of `portcullis check-config`, a credential that failed, the admin',
    "listener's own answers. Status — : nothing is answered.",
    '',
    '| code | status | event | where | message |',
    '|---|---|---|---|---|',
  );
  for (const e of noticeCatalogue) lines.push(noticeRow(e));
  return lines.join('\n') + '\n';
}
