/**
 * The library entry of realtime-governance-proxy: start the proxy in-process, validate a config,
 * write custom guardrails (also available alone as `realtime-governance-proxy/policies`).
 */
export { startProxy, configBaseDir, type ProxyHandle, type StartOptions } from './main.js';
export { loadConfigFile, parseConfig } from './config/load.js';
export { compileConfig, type CompiledConfig, type CompileConfigOptions, type UpstreamKind } from './config/compile.js';
export { ConfigError, type ConfigProblem } from './config/errors.js';
export type { Config, ConfigInput, TenantConfig } from './config/schema.js';
export * from './policies/api.js';
