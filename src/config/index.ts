// The config module's public surface; other modules import from here only.
export * from './types.js';
export { ConfigError, type ConfigIssue } from './errors.js';
export { parseListenAddress, type ListenAddress } from './listen.js';
export { parseConfig, loadConfigFile, defaultConfig, resolveConfig, configIssues, DEFAULT_CONFIG_PATH, type SemanticCheck, type LoadOptions } from './load.js';
export { identityFilesCheck, nativeRelayCheck, type NativeRelayFact } from './host-checks.js';
export { ConfigStore, type ConfigStoreOptions, type ConfigPath, type SaveResult } from './store.js';
