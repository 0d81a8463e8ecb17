/**
 * The config file as something to edit: the CLI (when the gateway is not running) and the admin
 * API change it through here. It keeps the parsed YAML Document, so an edit keeps the operator's
 * comments and key order; it validates the exact text it would write through the one loader
 * (parseConfig: schema, built-in checks, injected host-fact checks); it writes atomically; and
 * it hands the saved config to an injected callback that triggers the reload.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isNode, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { ConfigError, formatPath, type ConfigIssue } from './errors.js';
import { mergeLines, yamlLineKey } from './text-merge.js';
import { parseConfig, readConfigText, type SemanticCheck } from './load.js';
import type { PortcullisConfig } from './types.js';

export type ConfigPath = ReadonlyArray<string | number>;

export interface ConfigStoreOptions {
  /** Host-fact checks, as for the loader (e.g. nativeRelayCheck with src/relay/probe.ts). */
  checks?: SemanticCheck[];
  /** PORTCULLIS_* variables to validate with; default none: the file is judged on its own, like check-config. */
  env?: Record<string, string | undefined>;
  /**
   * Called after a save reached the disk, with the config as the loader reads it: signal the
   * running gateway here (SIGHUP, or its reload in-process). An error it throws comes out of
   * save(); the file stays written.
   */
  onSaved?: (config: PortcullisConfig) => void | Promise<void>;
}

export type SaveResult =
  | { ok: true; config: PortcullisConfig }
  /** Nothing was written. `conflict`: the file changed on disk since it was read. */
  | { ok: false; reason: 'invalid' | 'conflict'; issues: ConfigIssue[] };

/** The same options the loader parses with, so the store edits the document the loader reads. */
const PARSE_OPTIONS = { uniqueKeys: true, prettyErrors: true } as const;
/** How edited lines are printed: flow lists as operators write them, `[a, b]`. */
const PRINT_OPTIONS = { flowCollectionPadding: false } as const;

export class ConfigStore {
  #doc: Document;
  /** The bytes on disk as last read or written: a save over anything else is a conflict. */
  #onDisk: string;
  /** #onDisk as yaml prints it, before any edit: the base of the merge in text(). */
  #printed: string;
  /** Saves run one at a time: each compares the disk with what the previous one wrote. */
  #saving: Promise<unknown> = Promise.resolve();

  private constructor(
    /** The file as named by the caller (used in messages). */
    readonly path: string,
    /** Where the bytes live (symlinks resolved): the temp file goes next to it and is renamed over it. */
    private readonly target: string,
    text: string,
    private readonly opts: ConfigStoreOptions,
  ) {
    this.#onDisk = text;
    this.#doc = parse(path, text);
    this.#printed = this.#doc.toString(PRINT_OPTIONS);
  }

  /** Reads `path`. Throws ConfigError when it cannot be read or is not YAML (a document to edit needs a tree). */
  static async open(path: string, opts: ConfigStoreOptions = {}): Promise<ConfigStore> {
    const text = readConfigText(path);
    const target = await realpath(path);
    return new ConfigStore(path, target, text, opts);
  }

  /** The value at `path` as plain data (undefined when absent). */
  get(path: ConfigPath): unknown {
    const node: unknown = this.#doc.getIn(path);
    return isNode(node) ? node.toJS(this.#doc) : node;
  }

  /** Sets `path` (missing parents are created as mappings). Validation happens on save/validate. */
  set(path: ConfigPath, value: unknown): void {
    if (path.length === 0) throw new TypeError('set: path must not be empty');
    const existing: unknown = this.#doc.getIn(path, true);
    if (isScalar(existing) && (value === null || typeof value !== 'object')) {
      // Change the value in place: a new node would drop the comment on its line (`idleMs: 5  # why`).
      if (typeof existing.value !== typeof value) delete existing.type;
      existing.value = value;
      return;
    }
    this.#doc.setIn(path, this.#doc.createNode(value));
  }

  /** Removes `path`; false when it was not there. */
  delete(path: ConfigPath): boolean {
    if (path.length === 0 || !this.#doc.hasIn(path)) return false;
    return this.#doc.deleteIn(path);
  }

  /**
   * Appends `value` to the list at `path` (created when absent), keeping its style (flow `[a, b]`
   * or block). False when an equal item is already there.
   */
  addToList(path: ConfigPath, value: unknown): boolean {
    const node: unknown = this.#doc.getIn(path, true);
    if (node === undefined || node === null) {
      this.#doc.setIn(path, this.#doc.createNode([value]));
      return true;
    }
    if (!isSeq(node)) throw new TypeError(`${formatPath(path)} is not a list`);
    if (this.#indexOf(path, value) >= 0) return false;
    node.add(this.#doc.createNode(value));
    return true;
  }

  /** Removes the first item equal to `value` from the list at `path`; false when there is none. */
  removeFromList(path: ConfigPath, value: unknown): boolean {
    const i = this.#indexOf(path, value);
    if (i < 0) return false;
    return this.#doc.deleteIn([...path, i]);
  }

  /**
   * The text a save would write: the operator's file with the edits; comments, key order and the
   * formatting of lines no edit touched are kept (see text-merge.ts).
   */
  text(): string {
    return this.#render().text;
  }

  /** Every issue the loader finds in text(), located in that text; [] when it would load. */
  validate(): ConfigIssue[] {
    const r = this.#check(this.text());
    return r.ok ? [] : r.issues;
  }

  /**
   * Validates and, when valid, replaces the file atomically, then calls onSaved. An invalid config
   * or a file changed by someone else since it was read is refused and nothing is written; the
   * edits stay in the store (fix them, or open the file again to start over).
   */
  save(): Promise<SaveResult> {
    const run = this.#saving.then(() => this.#save());
    this.#saving = run.catch(() => undefined);
    return run;
  }

  async #save(): Promise<SaveResult> {
    const { text, printed } = this.#render();
    const checked = this.#check(text);
    if (!checked.ok) return { ok: false, reason: 'invalid', issues: checked.issues };
    const current = await readFile(this.target, 'utf8');
    if (current !== this.#onDisk) {
      return {
        ok: false,
        reason: 'conflict',
        issues: [{ path: '', message: 'the file changed on disk since it was read; open it again and repeat the change' }],
      };
    }
    await writeFileAtomic(this.target, text);
    this.#onDisk = text;
    this.#printed = printed; // the document as edited is what the file now holds
    await this.opts.onSaved?.(checked.config);
    return { ok: true, config: checked.config };
  }

  /** text(), and yaml's printout of the edited document (the merge base once that text is on disk). */
  #render(): { text: string; printed: string } {
    const printed = this.#doc.toString(PRINT_OPTIONS);
    if (printed === this.#printed) return { text: this.#onDisk, printed };
    const merged = mergeLines(this.#printed.split('\n'), this.#onDisk.split('\n'), printed.split('\n'), yamlLineKey)?.join('\n');
    if (merged === undefined) return { text: printed, printed };
    // Use the merge only when it is the edited document exactly: same data, same comments.
    const check = parseDocument(merged, PARSE_OPTIONS);
    const same = check.errors.length === 0 && check.toString(PRINT_OPTIONS) === printed;
    return { text: same ? merged : printed, printed };
  }

  #check(text: string): { ok: true; config: PortcullisConfig } | { ok: false; issues: ConfigIssue[] } {
    try {
      const config = parseConfig(text, { source: this.path, checks: this.opts.checks ?? [], env: this.opts.env ?? {} });
      return { ok: true, config };
    } catch (err) {
      if (err instanceof ConfigError) return { ok: false, issues: err.issues };
      throw err;
    }
  }

  #indexOf(path: ConfigPath, value: unknown): number {
    const list = this.get(path);
    if (!Array.isArray(list)) return -1;
    const want = JSON.stringify(value);
    return list.findIndex((item) => JSON.stringify(item) === want);
  }
}

function parse(source: string, text: string): Document {
  const doc = parseDocument(text, PARSE_OPTIONS);
  if (doc.errors.length === 0) return doc;
  // The loader locates and words YAML errors; let it say what is wrong.
  parseConfig(text, { source, env: {} });
  throw new ConfigError(source, [{ path: '', message: 'YAML: the file cannot be parsed' }]);
}

/**
 * Replaces `file` so that a reader sees the old bytes or the new, never a mix, and a crash leaves
 * one of the two: write a temp file in the same directory (same file system, so rename is atomic),
 * fsync it, rename it over, fsync the directory (so the rename itself survives a power cut).
 * The file keeps its mode, and its owner when we may set it.
 */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const dir = dirname(file);
  const before = await stat(file);
  const mode = before.mode & 0o7777;
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    try {
      await fh.writeFile(text, 'utf8');
      await fh.chmod(mode); // open()'s mode went through the umask
      if (process.getuid?.() === 0) await fh.chown(before.uid, before.gid);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
