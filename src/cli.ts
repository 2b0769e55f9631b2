#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { ConfigError, loadConfig } from './config/load.ts';
import { generateRegistration, loadRegistration, writeRegistration } from './config/registration.ts';
import { start, StartupError } from './app.ts';
import { configureLogging, logger } from './log.ts';
import { permissionWarnings, sensitiveFiles } from './config/permissions.ts';

const log = logger('Main');

const USAGE = `matrix-scim-bridge: provision Matrix accounts from an identity provider over SCIM 2.0

Usage:
  matrix-scim-bridge --config config.yaml
      start the bridge
  matrix-scim-bridge generate-registration --config config.yaml --url URL [--output registration.yaml]
      write a new appservice registration (random tokens) for this config; URL is how the
      homeserver reaches the bridge's appservice listener, e.g. http://127.0.0.1:9000
`;

function fail(message: string): never {
  process.stderr.write(`matrix-scim-bridge: ${message}\n`);
  process.exit(1);
}

async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      url: { type: 'string' },
      output: { type: 'string', short: 'o' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
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
    writeRegistration(
      output,
      generateRegistration({
        url: values.url,
        domain: config.homeserver.domain,
        ...(room?.startsWith('#') ? { adminRoomAlias: room } : {}),
      }),
    );
    process.stdout.write(
      `wrote ${output}\nnext: add it to the homeserver's app_service_config_files, restart the homeserver, ` +
        'promote the bot to server admin (see README), then start the bridge\n',
    );
    return;
  }
  if (positionals.length > 0) fail(`unknown command ${positionals[0]}\n\n${USAGE}`);

  configureLogging(config.logging.level);
  for (const warning of permissionWarnings(sensitiveFiles(values.config, config))) log.warn(warning);
  const handles = await start(config, loadRegistration(config.appservice.registration));
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
