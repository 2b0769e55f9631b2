import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import type { BridgeConfig } from './load.ts';

/** A file that holds secrets or personal data, and what it is (for the warning). */
export interface SensitiveFile {
  path: string;
  what: string;
  /** Group read is expected (the registration: a homeserver running as another user reads it). */
  groupMayRead?: boolean;
}

/** Read and write bits of group and others. */
const GROUP_AND_OTHERS = 0o066;

function exposure(mode: number): string {
  const parts: string[] = [];
  for (const [who, shift] of [['group', 3], ['others', 0]] as const) {
    const rights = [(mode >> shift) & 0o4 ? 'read' : '', (mode >> shift) & 0o2 ? 'write' : ''].filter((r) => r !== '');
    if (rights.length > 0) parts.push(`${who} may ${rights.join(' and ')} it`);
  }
  return parts.join(', ');
}

/** Quotes a path for a shell command when it needs it. */
function shellWord(file: string): string {
  return /^[\w./@%+=:,-]+$/.test(file) ? file : `'${file.replaceAll("'", `'\\''`)}'`;
}

/**
 * One warning for each file that group or others may read or write, naming the file and
 * the fix. Files that do not exist (yet) are skipped: the bridge creates its own 0600.
 * Only modes are looked at, never contents.
 */
export function permissionWarnings(files: readonly SensitiveFile[]): string[] {
  const warnings: string[] = [];
  for (const file of files) {
    let mode: number;
    try {
      mode = statSync(file.path).mode & 0o777;
    } catch {
      continue;
    }
    const tolerated = file.groupMayRead ? 0o040 : 0;
    if ((mode & GROUP_AND_OTHERS & ~tolerated) === 0) continue;
    warnings.push(
      `${file.what} ${file.path} is not private: ${exposure(mode)} (mode 0${mode.toString(8)}); ` +
        `fix: chmod ${file.groupMayRead ? '640' : '600'} ${shellWord(file.path)}`,
    );
  }
  return warnings;
}

/** Every secret given as `{ file }` in the raw configuration, with its key path, resolved as the loader does. */
function secretFiles(node: unknown, baseDir: string, keyPath: string[] = []): SensitiveFile[] {
  if (node === null || typeof node !== 'object') return [];
  const entries = Object.entries(node);
  const only = entries.length === 1 ? entries[0] : undefined;
  if (only && only[0] === 'file' && typeof only[1] === 'string') {
    return [{ path: path.resolve(baseDir, only[1]), what: `the secret file of ${keyPath.join('.')}` }];
  }
  return entries.flatMap(([key, value]) => secretFiles(value, baseDir, [...keyPath, key]));
}

/**
 * The files the bridge reads secrets from or keeps personal data in: the configuration
 * file, the secret files it names, the registration and the database with its companions.
 */
export function sensitiveFiles(
  configFile: string,
  config: { appservice: Pick<BridgeConfig['appservice'], 'registration'>; database: Pick<BridgeConfig['database'], 'path'> },
): SensitiveFile[] {
  const file = path.resolve(configFile);
  const database = config.database.path;
  return [
    { path: file, what: 'the configuration file' },
    ...secretFiles(yaml.load(readFileSync(file, 'utf8')), path.dirname(file)),
    { path: config.appservice.registration, what: 'the registration (homeserver tokens)', groupMayRead: true },
    ...['', '-wal', '-shm'].map((suffix) => ({ path: database + suffix, what: 'the database (names, emails, external ids)' })),
  ];
}
