/** Renders docs/errors.md from the catalogue (scripts/docs-errors.mjs writes it; a test compares). */
import { Events } from '../log/events.js';
import { catalogue, type CatalogueEntry } from './catalogue.js';

const eventNames = new Map<number, string>(Object.entries(Events).map(([name, n]) => [n, name]));

function eventCell(e: CatalogueEntry): string {
  if (e.event === null) return "the request's own (103 tunnel, 109 HTTP)";
  return `${e.event} ${eventNames.get(e.event) ?? ''}`.trim();
}

function kindCell(e: CatalogueEntry): string {
  return e.kind === 'rejection' ? 'rejection (deny)' : e.kind === 'error' ? 'error' : 'outcome (error)';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|');
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
  for (const e of catalogue) {
    const status = e.status === 0 ? '—' : String(e.status) + (e.retryAfterS !== undefined ? ` (Retry-After: ${e.retryAfterS})` : '');
    lines.push(`| \`${e.code}\` | ${status} | \`${e.reason}\` | ${eventCell(e)} | ${kindCell(e)} | ${cell(e.message)} |`);
  }
  return lines.join('\n') + '\n';
}
