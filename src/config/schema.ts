import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { pointerToPath } from './locate.js';

/** The published schema; one file serves editors (yaml-language-server) and the loader. */
export const SCHEMA_URL = new URL('../../config/portcullis.schema.json', import.meta.url);

export interface RawIssue {
  path: Array<string | number>;
  /** Point at the key rather than the value (unknown keys). */
  at?: 'key';
  message: string;
}

let validator: ValidateFunction | undefined;

export function loadSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as Record<string, unknown>;
}

function getValidator(): ValidateFunction {
  if (!validator) {
    // strict: a schema mistake (unknown keyword, ignored default) fails here, not silently.
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
    validator = ajv.compile(loadSchema());
  }
  return validator;
}

/** Validates `data` in place (filling defaults) and returns readable issues. */
export function validateSchema(data: unknown): RawIssue[] {
  const validate = getValidator();
  if (validate(data)) return [];
  return (validate.errors ?? []).map((e) => toIssue(e, data));
}

// Patterns in the schema → what to tell a person.
const PATTERN_HINTS: Record<string, string> = {
  '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$': 'must be a workspace ID (GUID), like 00000000-0000-0000-0000-000000000000',
  '^[a-z0-9]+$': 'must be an Azure region name in lower case without spaces, like westeurope',
  '^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$': "must start with a letter or digit and contain only letters, digits, '.', '_', '-' (at most 63 characters)",
};

function describe(value: unknown): string {
  if (value === null) return 'empty';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${value}`;
  return typeof value;
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
};

function toIssue(e: ErrorObject, data: unknown): RawIssue {
  const path = pointerToPath(e.instancePath, data);
  // ajv types params and parentSchema as any: read them as unknown, and name what each keyword carries.
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const key = String(p.additionalProperty);
      const known = Object.keys((e.parentSchema?.properties as Record<string, unknown> | undefined) ?? {});
      const guess = closest(key, known);
      const hint = guess ? ` (did you mean "${guess}"?)` : known.length ? ` (known keys: ${known.join(', ')})` : '';
      return { path: [...path, key], at: 'key', message: `unknown key${hint}` };
    }
    case 'required':
      return { path: [...path, String(p.missingProperty)], message: 'required key is missing' };
    case 'type': {
      const want = TYPE_NAMES[String(p.type)] ?? String(p.type);
      if (e.data === null) return { path, message: `is empty; must be ${want} (remove the key to use the default)` };
      return { path, message: `must be ${want}, not ${describe(e.data)}` };
    }
    case 'enum':
      return {
        path,
        message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}; got ${JSON.stringify(e.data)}`,
      };
    case 'pattern':
      return { path, message: `${PATTERN_HINTS[String(p.pattern)] ?? `must match ${String(p.pattern)}`}; got ${JSON.stringify(e.data)}` };
    case 'minimum':
    case 'maximum': {
      const s = e.parentSchema as { minimum?: number; maximum?: number };
      const range =
        s.minimum !== undefined && s.maximum !== undefined
          ? `from ${s.minimum} to ${s.maximum}`
          : s.minimum !== undefined
            ? `at least ${s.minimum}`
            : `at most ${String(s.maximum)}`;
      return { path, message: `must be ${range}; got ${String(e.data)}` };
    }
    case 'minItems':
      return { path, message: p.limit === 1 ? 'must not be an empty list' : `must have at least ${String(p.limit)} items` };
    case 'minLength':
      return { path, message: p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long` };
    case 'uniqueItems': {
      // Point at the later of the two equal items: that is the duplicate.
      const dup = Math.max(Number(p.i), Number(p.j));
      const first = Math.min(Number(p.i), Number(p.j));
      return { path: [...path, dup], message: `duplicate of item ${first} (${JSON.stringify((e.data as unknown[])[dup])})` };
    }
    default:
      return { path, message: e.message ?? `fails ${e.keyword}` };
  }
}

/** The known key closest to a typo, if it is close enough to be a useful hint. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDist) {
      bestDist = d;
      best = c;
    }
  }
  return best !== undefined && bestDist <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

/** Levenshtein distance, one row of the table at a time: row[j] = distance(a[0..i), b[0..j)). */
function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  let distance = b.length; // from '' to b, when a is empty
  for (let i = 1; i <= a.length; i++) {
    let diag = i - 1; // row[j - 1] of the previous row
    let left = i; // row[j - 1] of this row
    row = row.map((up, j) => {
      if (j === 0) return i;
      left = Math.min(up + 1, left + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
      return left;
    });
    distance = left;
  }
  return distance;
}
