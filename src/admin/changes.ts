/**
 * Changes made through the admin API: one at a time (a queue), each opened fresh from the file,
 * edited, validated and written by ConfigStore (nothing written when invalid), then applied by the
 * same reload SIGHUP runs (established tunnels untouched), and answered with what changed.
 */
import {
  ConfigError,
  applyEdit,
  diffConfigs,
  EditError,
  type ConfigChange,
  type ConfigIssue,
  type ConfigStore,
  type Edit,
  type PortcullisConfig,
} from '../config/index.js';
import { ApiErrors, type ApiErrorEntry } from '../errors/catalogue.js';
import { Events } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { PortcullisError } from '../util/errors.js';

/** An API refusal: answered with the entry's status and code, logged with its event. */
export class ApiFailure extends PortcullisError {
  constructor(
    readonly entry: ApiErrorEntry,
    message: string = entry.message,
    readonly issues?: ConfigIssue[],
  ) {
    super(entry.code, message);
    this.name = 'ApiFailure';
  }
}

export function apiFailureOf(err: EditError): ApiFailure {
  return new ApiFailure(err.kind === 'not_found' ? ApiErrors.API_NOT_FOUND : ApiErrors.API_BAD_REQUEST, err.message);
}

/** Who asked: the client address and, when the caller says it (the CLI sends user@host), an actor name. */
export interface Who {
  client: string;
  actor?: string;
}

export interface ReloadOutcome {
  ok: boolean;
  source?: string;
  issues?: ConfigIssue[];
  message?: string;
  /** Keys that changed but take effect on restart. */
  restartRequired?: string[];
}

export interface ChangeHooks {
  /** The configuration in force (restart-only keys as started). */
  config(): PortcullisConfig;
  /** The file the gateway runs on; null on the built-in default. */
  configFile(): string | null;
  /** A store on that file, validating with the loader's checks. */
  openStore(file: string): Promise<ConfigStore>;
  /** Re-read the file and apply it: the SIGHUP path. */
  reload(): Promise<ReloadOutcome>;
}

export interface ChangeAnswer {
  message: string;
  /** The file was rewritten. */
  written: boolean;
  /** The running gateway now uses the result. */
  applied: boolean;
  /** Keys of the configuration in force whose values changed (secrets redacted). */
  changed: ConfigChange[];
  restartRequired: string[];
}

export class ConfigChanges {
  /** Changes run one after another: each reads the file the previous one wrote. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly hooks: ChangeHooks,
    private readonly logger: Logger,
  ) {}

  apply(action: string, who: Who, edit: Edit): Promise<ChangeAnswer> {
    const run = this.#queue.then(() => this.#apply(action, who, edit));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #apply(action: string, who: Who, edit: Edit): Promise<ChangeAnswer> {
    const file = this.hooks.configFile();
    if (file === null) throw new ApiFailure(ApiErrors.API_NO_FILE);
    let store: ConfigStore;
    try {
      store = await this.hooks.openStore(file);
    } catch (err) {
      // The file on disk no longer parses (edited by hand): say why, change nothing.
      if (err instanceof ConfigError) throw new ApiFailure(ApiErrors.API_INVALID, `the config file ${file} cannot be edited: ${err.message}`, err.issues);
      throw err;
    }
    const before = this.hooks.config();
    let outcome;
    try {
      outcome = await applyEdit(store, before, edit);
    } catch (err) {
      if (err instanceof EditError) throw apiFailureOf(err);
      throw err;
    }
    if (!outcome.ok) {
      if (outcome.reason === 'conflict') throw new ApiFailure(ApiErrors.API_CONFLICT);
      throw new ApiFailure(ApiErrors.API_INVALID, ApiErrors.API_INVALID.message, outcome.issues);
    }
    if (!outcome.written) return { message: outcome.message, written: false, applied: false, changed: [], restartRequired: [] };

    const reloaded = await this.hooks.reload();
    if (!reloaded.ok) {
      // Cannot happen unless the file changed between our write and the reload: the reload read other bytes.
      throw new ApiFailure(ApiErrors.API_RELOAD, `${ApiErrors.API_RELOAD.message}: ${reloaded.message ?? ''}`.trim(), reloaded.issues);
    }
    const changed = diffConfigs(before, this.hooks.config());
    const restartRequired = reloaded.restartRequired ?? [];
    this.logger.info(
      { event: Events.API_CONFIG_CHANGED, via: 'api', action, ...who, config: file, changed: changed.map((c) => c.path), restartRequired },
      `configuration changed through the admin API: ${outcome.message}`,
    );
    return { message: outcome.message, written: true, applied: true, changed, restartRequired };
  }
}
