import { randomUUID } from 'node:crypto';
import type { BridgeConfig } from './config/load.ts';
import { PLACEHOLDER_MARK, type Registration } from './config/registration.ts';
import { logger } from './log.ts';
import { HomeserverError, type HomeserverClient } from './matrix/homeserverClient.ts';
import type { MasClient } from './matrix/masClient.ts';
import { describePostgresUrl, openPostgresStore } from './store/postgres.ts';
import { openSqliteStore } from './store/sqlite.ts';
import type { SqlStore } from './store/sqlStore.ts';
import { DatabaseInUseError } from './store/sqliteDriver.ts';

/**
 * The bridge's start-up checks, in the order start() runs them: each says plainly what is
 * wrong and which key or step fixes it (architecture.md, "Start-up checks").
 */

const log = logger('Bridge');

/** A start-up check failed: the message says what is wrong and what to do. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

/**
 * Retries a start-up step that failed transiently. Synapse's ping can fail once on a pooled
 * connection to a previous instance of the appservice listener (M_CONNECTION_FAILED).
 */
export async function withRetries<T>(step: () => Promise<T>, attempts = 5, delayMs = 1000): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (attempt >= attempts || !(error instanceof HomeserverError) || !error.transient) throw error;
      log.info(`retrying after a transient failure: ${error.message}`);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

export async function checked<T>(what: string, step: () => Promise<T>, advice: (error: Error) => string): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (error instanceof StartupError) throw error;
    throw new StartupError(`${what}: ${(error as Error).message}\n  → ${advice(error as Error)}`);
  }
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|::1)$/i;
const ANY_ADDRESS = new Set(['0.0.0.0', '::']);

/**
 * Start-up step 1, before any network call: mistakes the configuration and the registration
 * show by themselves. The registration's url is where the homeserver sends transactions and
 * pings: when it names this machine, it must name appservice.port and a bound address.
 */
export function checkLocally(config: BridgeConfig, reg: Registration): void {
  const mistakes: string[] = [];
  const regenerate =
    `regenerate the registration (generate-registration --url http://<host>:${config.appservice.port}) ` +
    'and restart the homeserver';
  for (const key of ['as_token', 'hs_token'] as const) {
    if (reg[key].includes(PLACEHOLDER_MARK)) mistakes.push(`the registration's ${key} is the sample's placeholder\n  → ${regenerate}`);
  }
  let url: URL | undefined;
  try {
    url = reg.url ? new URL(reg.url) : undefined;
  } catch {
    url = undefined;
  }
  if (!url) {
    mistakes.push(`the registration's url (${String(reg.url)}) is not a URL: the homeserver cannot reach the bridge\n  → ${regenerate}`);
  } else {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const bind = config.appservice.bindAddress;
    if (port !== config.appservice.port) {
      if (config.database.engine === 'postgres') {
        // Replicas on one host listen on ports of their own; the homeserver pushes to one of
        // them, or to a load balancer in front of them all (docs/database.md).
        log.warn(`the registration's url ${reg.url} is port ${port}, appservice.port is ${config.appservice.port}: fine for a replica when another replica or a load balancer serves that url`);
      } else if (LOOPBACK.test(host) || host === bind) {
        mistakes.push(
          `the registration's url ${reg.url} is port ${port} but appservice.port is ${config.appservice.port}\n` +
            `  → set appservice.port: ${port}, or ${regenerate}`,
        );
      } else {
        log.warn(`the registration's url ${reg.url} is port ${port}, appservice.port is ${config.appservice.port}: fine only if a proxy forwards one to the other`);
      }
    }
    if (LOOPBACK.test(host) && !LOOPBACK.test(bind) && !ANY_ADDRESS.has(bind)) {
      mistakes.push(
        `the registration's url ${reg.url} goes to this machine's loopback, but appservice.bindAddress is ${bind}\n` +
          `  → set appservice.bindAddress: 127.0.0.1 (or 0.0.0.0), or ${regenerate}`,
      );
    }
  }
  if (mistakes.length > 0) throw new StartupError(mistakes.join('\n'));
  if (config.adminRoom.operators.length === 0) {
    log.warn(
      'adminRoom.operators is empty: nobody is invited to the admin room, so nobody sees what the bridge does → ' +
        'add your Matrix ID to adminRoom.operators (or invite yourself with a server admin\'s help)',
    );
  }
}

const REGISTRATION_NOT_LOADED =
  "the homeserver does not know this registration's as_token: add the registration file to app_service_config_files and restart the homeserver";

/**
 * Start-up step 2: the homeserver answers, knows the registration's as_token, is the server
 * homeserver.domain names (whoami answers the bot's ID on the homeserver's real server
 * name), and has the bot registered.
 */
export async function checkHomeserver(client: HomeserverClient, config: BridgeConfig, reg: Registration): Promise<void> {
  await checked(
    `the homeserver at ${config.homeserver.url} is not reachable`,
    () => client.request('GET', '/_matrix/client/versions', { token: 'none' }),
    () => 'check homeserver.url and that the homeserver is running',
  );
  const sender = await checked(
    "the homeserver does not accept the registration's as_token",
    () => client.whoami(),
    (e) => (e instanceof HomeserverError && e.status === 401 ? REGISTRATION_NOT_LOADED : 'check homeserver.url'),
  );
  const serverName = sender.slice(sender.indexOf(':') + 1);
  if (serverName !== config.homeserver.domain) {
    throw new StartupError(
      `homeserver.domain is ${config.homeserver.domain} but the homeserver at ${config.homeserver.url} is ${serverName}\n` +
        `  → set homeserver.domain: ${serverName} (and make sure the registration's namespaces name ${serverName}: ` +
        'generate-registration writes them from homeserver.domain)',
    );
  }
  const botUserId = `@${reg.sender_localpart}:${config.homeserver.domain}`;
  await checked(
    `the bot ${botUserId} cannot be registered`,
    () => client.register(reg.sender_localpart),
    (e) =>
      e instanceof HomeserverError && e.status === 401 ? REGISTRATION_NOT_LOADED : "check the registration's namespace and sender_localpart",
  );
}

/**
 * Start-up step 3b: who holds the accounts. A Synapse that delegates them to MAS says so in
 * its auth metadata (MSC2965: /_matrix/client/v1/auth_metadata answers with MAS's issuer);
 * the config must say the same, since account writes go to one or the other. With MAS, its
 * admin client must get a token with the admin scope before anything is served.
 */
export async function checkAccountBackend(client: HomeserverClient, config: BridgeConfig, mas: MasClient | undefined): Promise<void> {
  const metadata = await client.request('GET', '/_matrix/client/v1/auth_metadata', { token: 'none', accept: [404] }).catch(() => undefined);
  const issuer = metadata?.status === 200 && typeof metadata.body['issuer'] === 'string' ? metadata.body['issuer'] : undefined;
  if (config.homeserver.auth === 'synapse' && issuer) {
    throw new StartupError(
      `the homeserver delegates its accounts to the Matrix Authentication Service at ${issuer}, but homeserver.auth is synapse\n` +
        '  → set homeserver.auth: mas and the mas section (url, clientId, clientSecret of an admin client): see docs/mas.md',
    );
  }
  if (config.homeserver.auth === 'mas' && !issuer) {
    throw new StartupError(
      `homeserver.auth is mas, but the homeserver at ${config.homeserver.url} does not delegate its accounts to MAS (no auth metadata)\n` +
        "  → set homeserver.auth: synapse, or turn on Synapse's matrix_authentication_service and restart it",
    );
  }
  if (mas && config.mas) {
    await checked(
      `the MAS admin client ${config.mas.clientId} cannot get an admin token from ${config.mas.url}`,
      () => mas.token(),
      () => "check mas.url, mas.clientId and mas.clientSecret, and that MAS's policy data lists the client in admin_clients",
    );
  }
}

/**
 * Start-up step 4: the homeserver pings the appservice listener. Synapse passes on what the
 * listener answered: a 403 means the homeserver sends another hs_token than the registration's,
 * which no retry mends. A refused connection can be a pooled connection to a previous
 * listener, and is retried.
 */
export async function pingFromHomeserver(client: HomeserverClient, config: BridgeConfig, reg: Registration): Promise<void> {
  const what = 'the homeserver cannot reach the bridge (appservice ping failed)';
  const advice = `make sure the homeserver loaded the registration (app_service_config_files, then restart it) and can reach ${String(reg.url)}`;
  await checked(
    what,
    () =>
      withRetries(async () => {
        const { status, body } = await client.request('POST', `/_matrix/client/v1/appservice/${encodeURIComponent(reg.id)}/ping`, {
          body: { transaction_id: `scim-bridge-${randomUUID()}` },
          accept: [502],
        });
        if (status !== 502) return;
        const errcode = typeof body['errcode'] === 'string' ? body['errcode'] : undefined;
        const detail = `${errcode ?? 'HTTP 502'} ${String(body['error'] ?? '')}`.trim();
        if (errcode === 'M_BAD_STATUS' && (body['status'] === 403 || body['status'] === 401)) {
          throw new StartupError(
            `${what}: ${detail}: the bridge refused the homeserver's hs_token, which is not the hs_token of ${config.appservice.registration}\n` +
              '  → the homeserver loaded another version of the registration: give it this file (app_service_config_files) and restart the homeserver',
          );
        }
        throw new HomeserverError(`POST /_matrix/client/v1/appservice/${reg.id}/ping failed: ${detail}`, 502, errcode, errcode === 'M_CONNECTION_FAILED');
      }),
    () => advice,
  );
}

/**
 * Start-up step 5: the admin API answers with the admin token (adminApi.accessToken, else
 * the as_token). A 403 names whose token it is and how to promote them.
 */
export async function checkAdminApi(client: HomeserverClient, config: BridgeConfig, botUserId: string): Promise<void> {
  const what = 'the Synapse admin API is not usable';
  try {
    await client.getUser(botUserId);
  } catch (error) {
    const message = `${what}: ${(error as Error).message}`;
    const status = error instanceof HomeserverError ? error.status : undefined;
    if (config.homeserver.auth === 'mas' && (status === 401 || status === 403)) {
      // Under MAS, Synapse takes admin rights from the token's scope, not from the admin flag.
      throw new StartupError(
        `${message}\n  → with MAS, set adminApi.accessToken to a token with the urn:synapse:admin:* scope, e.g. a MAS personal session ` +
          `for ${botUserId} (docs/mas.md, "Setting it up"); promoting the bot does not help: the as_token has no scope`,
      );
    }
    if (config.adminApi.accessToken && status === 401) {
      throw new StartupError(`${message}\n  → adminApi.accessToken is not a valid access token (expired or logged out): give it a current token of a server admin`);
    }
    if (config.adminApi.accessToken && status === 403) {
      const owner = await client
        .request('GET', '/_matrix/client/v3/account/whoami', { token: 'admin' })
        .then(({ body }) => String(body['user_id']), () => '<its user>');
      throw new StartupError(
        `${message}\n  → adminApi.accessToken belongs to ${owner}, who is not a server admin: promote them ` +
          `(PUT /_synapse/admin/v2/users/${owner} {"admin": true} with an admin's token), or give adminApi.accessToken a server admin's token`,
      );
    }
    if (status === 403) {
      throw new StartupError(
        `${message}\n  → promote the bot to server admin (PUT /_synapse/admin/v2/users/${botUserId} {"admin": true} with an admin's token) or set adminApi.accessToken`,
      );
    }
    throw new StartupError(`${message}\n  → check adminApi.accessToken and that the homeserver is Synapse`);
  }
}

/**
 * Opens the store of the configured engine. On SQLite a second bridge on the same database is
 * refused (the first holds its lock); on PostgreSQL any number of replicas share it.
 */
export function openStore(config: BridgeConfig): Promise<SqlStore> {
  const { url } = config.database;
  if (config.database.engine === 'postgres' && url !== undefined) {
    return checked(
      `the database ${describePostgresUrl(url)} cannot be opened`,
      () => openPostgresStore({ url, ssl: config.database.ssl, poolSize: config.database.poolSize }),
      () => 'check database.url (host, port, user, password, database name), database.ssl, and that the server accepts this host',
    );
  }
  return checked(
    `the database ${config.database.path} cannot be opened`,
    () => openSqliteStore(config.database.path),
    (e) =>
      e instanceof DatabaseInUseError
        ? 'stop the other bridge first, or give this one its own database.path (a lock left by a crashed bridge is released by the system)'
        : 'check database.path and that the bridge may write to its folder',
  );
}
