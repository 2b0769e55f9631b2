import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import type { z } from 'zod';
import { configSchema, type Config, type SecretValue } from './schema.ts';

/** The configuration with every secret read (from inline or file) and every path made absolute. */
export interface BridgeConfig extends Omit<Config, 'scim' | 'adminApi' | 'database' | 'mas'> {
  /** MAS, its client secret read: set exactly when homeserver.auth is mas. */
  mas?: Omit<NonNullable<Config['mas']>, 'clientSecret'> & { clientSecret: string };
  /** The database, its secret read: `url` is set exactly when engine is postgres. */
  database: Omit<Config['database'], 'url'> & { url?: string };
  scim: Omit<Config['scim'], 'tokens'> & {
    tokens: { name: string; token: string }[];
    tokenFiles: TokenFile[];
    /** Each token name's scope (scim.tokens[].scope): all, or only what it created. */
    scopes: Record<string, 'all' | 'own'>;
  };
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

/** A SCIM token given as `{ file }`: the absolute path it is read from, to read it again (SIGHUP). */
export interface TokenFile {
  name: string;
  file: string;
}

function readSecretFile(file: string, keyPath: string): string {
  try {
    const text = readFileSync(file, 'utf8').trim();
    if (text === '') throw new ConfigError(`${keyPath}: the file ${file} is empty`);
    return text;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(`${keyPath}: cannot read the file ${file}: ${(error as Error).message}`);
  }
}

function readSecret(value: SecretValue, keyPath: string, baseDir: string): string {
  if (typeof value === 'string') return value;
  return readSecretFile(path.resolve(baseDir, value.file), keyPath);
}

const MIN_TOKEN_LENGTH = 16;

/** What reading the SCIM token files again gave. */
export interface TokenReload {
  /** The tokens to use from now on: re-read ones, and the old ones where reading failed. */
  tokens: { name: string; token: string }[];
  /** Names of the tokens whose file was read (changed or not). */
  reloaded: string[];
  /** Names of the tokens whose value changed. */
  changed: string[];
  /** Tokens whose file could not be used: the old value stays, and why. */
  kept: { name: string; reason: string }[];
}

/**
 * Reads the SCIM token files again (SIGHUP): rotation without a restart. A file that cannot
 * be read, is empty or holds a too-short token keeps the old token. Inline tokens stay.
 */
export function rereadTokenFiles(current: readonly { name: string; token: string }[], files: readonly TokenFile[]): TokenReload {
  const result: TokenReload = { tokens: [], reloaded: [], changed: [], kept: [] };
  for (const [i, entry] of current.entries()) {
    const source = files.find((f) => f.name === entry.name);
    if (!source) {
      result.tokens.push(entry);
      continue;
    }
    try {
      const token = readSecretFile(source.file, `scim.tokens.${i}.token`);
      if (token.length < MIN_TOKEN_LENGTH) {
        throw new ConfigError(`scim.tokens.${i}.token: the token in ${source.file} is shorter than ${MIN_TOKEN_LENGTH} characters`);
      }
      result.reloaded.push(entry.name);
      if (token === entry.token) {
        result.tokens.push(entry);
      } else {
        result.changed.push(entry.name);
        result.tokens.push({ name: entry.name, token });
      }
    } catch (error) {
      result.kept.push({ name: entry.name, reason: (error as Error).message });
      result.tokens.push(entry);
    }
  }
  return result;
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
  const tokenFiles = config.scim.tokens.flatMap((t) =>
    typeof t.token === 'string' ? [] : [{ name: t.name, file: path.resolve(baseDir, t.token.file) }],
  );
  const names = new Set<string>();
  for (const [i, t] of tokens.entries()) {
    if (names.has(t.name)) throw new ConfigError(`scim.tokens.${i}.name: the name "${t.name}" is used twice`);
    names.add(t.name);
    if (t.token.length < MIN_TOKEN_LENGTH) throw new ConfigError(`scim.tokens.${i}.token: must be at least ${MIN_TOKEN_LENGTH} characters long`);
  }
  for (const [i, pattern] of config.provisioning.protectedUsers.entries()) {
    try {
      new RegExp(pattern);
    } catch {
      throw new ConfigError(`provisioning.protectedUsers.${i}: "${pattern}" is not a valid regular expression`);
    }
  }
  const adminApi: BridgeConfig['adminApi'] = {};
  const { url, ...databaseRest } = config.database;
  const database: BridgeConfig['database'] = { ...databaseRest, path: path.resolve(baseDir, config.database.path) };
  if (config.database.engine === 'postgres') {
    if (url === undefined) throw new ConfigError('database.url: required when database.engine is postgres (a connection string, or { file })');
    database.url = readSecret(url, 'database.url', baseDir);
  } else if (url !== undefined) {
    throw new ConfigError('database.url: only used when database.engine is postgres');
  }
  let mas: BridgeConfig['mas'];
  if (config.homeserver.auth === 'mas') {
    if (!config.mas) throw new ConfigError('mas: required when homeserver.auth is mas (url, clientId, clientSecret)');
    mas = { ...config.mas, clientSecret: readSecret(config.mas.clientSecret, 'mas.clientSecret', baseDir) };
  } else if (config.mas) {
    throw new ConfigError('mas: only used when homeserver.auth is mas');
  }
  if (database.ssl.caFile !== undefined) database.ssl = { ...database.ssl, caFile: path.resolve(baseDir, database.ssl.caFile) };
  if (config.adminApi.accessToken !== undefined) {
    adminApi.accessToken = readSecret(config.adminApi.accessToken, 'adminApi.accessToken', baseDir);
  }
  const { mas: _masInput, ...rest } = config;
  return {
    ...rest,
    appservice: { ...config.appservice, registration: path.resolve(baseDir, config.appservice.registration) },
    database,
    ...(mas ? { mas } : {}),
    scim: { ...config.scim, tokens, tokenFiles, scopes: Object.fromEntries(config.scim.tokens.map((t) => [t.name, t.scope])) },
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
