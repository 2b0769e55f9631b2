#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { ConfigError, loadConfig, type BridgeConfig } from './config/load.ts';
import { generateRegistration, loadRegistration, writeRegistration } from './config/registration.ts';
import { start, StartupError, type BridgeHandles } from './app.ts';
import { configureLogging, logger } from './log.ts';
import { permissionWarnings, sensitiveFiles } from './config/permissions.ts';
import { copySqliteToPostgres, CopyRefusedError } from './store/copyDatabase.ts';
import { describePostgresUrl } from './store/postgres.ts';
import { VERSION } from './version.ts';

const log = logger('Main');

const USAGE = `matrix-scim-bridge: provision Matrix accounts from an identity provider over SCIM 2.0

Usage:
  matrix-scim-bridge --config config.yaml
      start the bridge
  matrix-scim-bridge generate-registration --config config.yaml --url URL [--output registration.yaml]
      write a new appservice registration (random tokens) for this config; URL is how the
      homeserver reaches the bridge's appservice listener, e.g. http://127.0.0.1:9000
  matrix-scim-bridge migrate-database --config config.yaml --from FILE
      copy the SQLite database FILE into the PostgreSQL database of this config
      (database.engine: postgres), which must hold no rows; stop the bridge first
  matrix-scim-bridge --version
      print the version
  matrix-scim-bridge --help
      print this help
`;

function fail(message: string): never {
  process.stderr.write(`matrix-scim-bridge: ${message}\n`);
  process.exit(1);
}

/** The options and command; a mistyped option gets its message and the usage, not a stack. */
function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        url: { type: 'string' },
        output: { type: 'string', short: 'o' },
        from: { type: 'string' },
        force: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')) fail(`${(error as Error).message}\n\n${USAGE}`);
    throw error;
  }
}

/** What to do after generate-registration, in the order that works (see the README). */
function nextSteps(output: string, bot: string, configFile: string): string {
  return `wrote ${output}
next:
  1. let the homeserver read it: it is readable by its owner only, so if Synapse runs as
     another OS user, give that user's group read access
     (e.g. chgrp synapse ${output} && chmod 640 ${output})
  2. add it to app_service_config_files in homeserver.yaml and restart the homeserver
  3. start the bridge once (matrix-scim-bridge --config ${configFile}): it registers its bot
     ${bot}, then stops, saying the admin API is not usable
  4. promote ${bot} to server admin (README, "Deploy", step 4), or set adminApi.accessToken
     to a server admin's token
  5. start the bridge again
`;
}

/** migrate-database: copies the SQLite file `from` into the configured PostgreSQL database, or says why not. */
async function migrateDatabase(config: BridgeConfig, from: string | undefined, configFile: string): Promise<void> {
  if (!from) fail('migrate-database needs --from FILE: the SQLite database to copy (database.path of the old config)');
  const { engine, url, ssl, poolSize } = config.database;
  if (engine !== 'postgres' || url === undefined) {
    fail(`migrate-database copies into PostgreSQL: set database.engine: postgres and database.url in ${configFile} (the target)`);
  }
  const target = describePostgresUrl(url);
  process.stdout.write(`copying ${from} into ${target}\n`);
  try {
    const counts = await copySqliteToPostgres({
      source: from,
      target: { url, ssl, poolSize },
      onTable: (table, rows) => process.stdout.write(`  ${table.padEnd(14)} ${rows} rows\n`),
    });
    const total = counts.reduce((sum, t) => sum + t.rows, 0);
    process.stdout.write(`done: ${total} rows, every table's count matches the source
next: start the bridge with ${configFile}; keep ${from} as a backup until it runs well
`);
  } catch (error) {
    if (error instanceof CopyRefusedError) fail(`migrate-database: ${error.message}`);
    fail(`migrate-database failed, the target holds no copied rows: ${(error as Error).message}`);
  }
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseCommandLine(argv);
  if (values.version) {
    process.stdout.write(`matrix-scim-bridge ${VERSION}\n`);
    return;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!values.config) fail(`--config is required\n\n${USAGE}`);
  const config = loadConfig(values.config);

  if (positionals[0] === 'generate-registration') {
    if (!values.url) fail('generate-registration needs --url: how the homeserver reaches the bridge');
    const output = values.output ?? config.appservice.registration;
    if (existsSync(output) && !values.force) fail(`${output} exists; pass --force to replace it (its tokens change)`);
    const room = config.adminRoom.room;
    const registration = generateRegistration({
      url: values.url,
      domain: config.homeserver.domain,
      ...(room?.startsWith('#') ? { adminRoomAlias: room } : {}),
    });
    writeRegistration(output, registration);
    process.stdout.write(nextSteps(output, `@${registration.sender_localpart}:${config.homeserver.domain}`, values.config));
    return;
  }
  if (positionals[0] === 'migrate-database') {
    await migrateDatabase(config, values.from, values.config);
    return;
  }
  if (positionals.length > 0) fail(`unknown command ${positionals[0]}\n\n${USAGE}`);

  configureLogging(config.logging);
  for (const warning of permissionWarnings(sensitiveFiles(values.config, config))) log.warn(warning);
  // SIGHUP (what logrotate sends) reads the SCIM token files again; it never stops the bridge.
  let running: BridgeHandles | undefined;
  process.on('SIGHUP', () => {
    if (running) running.reloadTokens();
    else log.info('SIGHUP during start-up: ignored (the token files were just read)');
  });
  const handles = await start(config, loadRegistration(config.appservice.registration));
  running = handles;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    handles.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error('error while stopping', error);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError || error instanceof StartupError) fail(error.message);
  fail(`unexpected error: ${(error as Error).stack ?? String(error)}`);
});
