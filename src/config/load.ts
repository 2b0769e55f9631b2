import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import type { z } from 'zod';
import { configSchema, type Config, type SecretValue } from './schema.ts';

/** The configuration with every secret read (from inline or file) and every path made absolute. */
export interface BridgeConfig extends Omit<Config, 'scim' | 'adminApi'> {
  scim: Omit<Config['scim'], 'tokens'> & { tokens: { name: string; token: string }[] };
  adminApi: { accessToken?: string };
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      return `  ${where}: ${issue.message}`;
    })
    .join('\n');
}

function readSecret(value: SecretValue, keyPath: string, baseDir: string): string {
  if (typeof value === 'string') return value;
  const file = path.resolve(baseDir, value.file);
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (text === '') throw new ConfigError(`${keyPath}: the file ${file} is empty`);
    return text;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${keyPath}: cannot read the file ${file}: ${(error as Error).message}`);
  }
}

/** Validates an already-parsed object; `baseDir` anchors relative paths and secret files. */
export function parseConfig(raw: unknown, baseDir: string): BridgeConfig {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    throw new ConfigError(`the configuration is not valid:\n${describeIssues(result.error)}`);
  }
  const config = result.data;
  const tokens = config.scim.tokens.map((t, i) => ({
    name: t.name,
    token: readSecret(t.token, `scim.tokens.${i}.token`, baseDir),
  }));
  const names = new Set<string>();
  for (const [i, t] of tokens.entries()) {
    if (names.has(t.name)) throw new ConfigError(`scim.tokens.${i}.name: the name "${t.name}" is used twice`);
    names.add(t.name);
    if (t.token.length < 16) throw new ConfigError(`scim.tokens.${i}.token: must be at least 16 characters long`);
  }
  for (const [i, pattern] of config.provisioning.protectedUsers.entries()) {
    try {
      new RegExp(pattern);
    } catch {
      throw new ConfigError(`provisioning.protectedUsers.${i}: "${pattern}" is not a valid regular expression`);
    }
  }
  const adminApi: BridgeConfig['adminApi'] = {};
  if (config.adminApi.accessToken !== undefined) {
    adminApi.accessToken = readSecret(config.adminApi.accessToken, 'adminApi.accessToken', baseDir);
  }
  return {
    ...config,
    appservice: { ...config.appservice, registration: path.resolve(baseDir, config.appservice.registration) },
    database: { ...config.database, path: path.resolve(baseDir, config.database.path) },
    scim: { ...config.scim, tokens },
    adminApi,
  };
}

export function loadConfig(file: string): BridgeConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the configuration file ${file}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = yaml.load(text);
  } catch (error) {
    throw new ConfigError(`${file} is not valid YAML: ${(error as Error).message}`);
  }
  return parseConfig(raw, path.dirname(path.resolve(file)));
}
