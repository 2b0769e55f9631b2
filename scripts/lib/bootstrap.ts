// A homeserver ready for the bridge, shared by the end-to-end tests and the demo:
// a real Synapse with the bridge's appservice registration loaded, a bootstrap server
// admin, and the bridge's bot registered and promoted to server admin (the bridge uses
// the as_token on the Synapse admin API). bridgeConfig() then gives a raw configuration
// object (as config.yaml would hold it) for parseConfig().
//
// With the option `mas`, accounts live in the Matrix Authentication Service instead: a
// throw-away PostgreSQL (or the caller's) holds MAS's database, MAS runs from the
// installation named by the option (see mas.ts), and Synapse delegates authentication to
// it. Shared-secret registration is gone there, so the bootstrap admin is made through
// MAS's admin API and gets a personal access token with the Synapse admin scope.

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { generateRegistration, writeRegistration, type Registration } from '../../src/config/registration.ts';
import { startMas, type MasServer } from './mas.ts';
import { startPostgres, type PostgresServer } from './postgres.ts';
import { freePort, Synapse, type SynapsePostgres } from './synapse.ts';

type Log = (msg: string) => void;

export interface BootstrapOptions {
  /** Working directory (created): registration, Synapse's files, the bridge's database. */
  dir: string;
  /** Default 'localhost'. */
  serverName?: string;
  /** Synapse's client port; default: a free one. */
  synapsePort?: number;
  /** The bridge's appservice listener port (the registration's url); default: a free one. */
  appservicePort?: number;
  /**
   * Synapse's own database on PostgreSQL (e.g. startPostgres()'s connection('synapse') after
   * createDatabase('synapse')); default SQLite from the cached template. The bridge's
   * database in bridgeConfig() stays SQLite unless overridden.
   */
  synapsePostgres?: SynapsePostgres;
  /** Synapse delegates authentication to a MAS run from this installation (see MasBootstrapOptions). */
  mas?: MasBootstrapOptions;
  log?: Log;
}

export interface MasBootstrapOptions {
  /** The MAS installation (masHome()). */
  home: string;
  /** Where MAS's database is created; default: a throw-away cluster, stopped by stop(). */
  postgres?: PostgresServer;
  /** MAS's database name in that cluster; default 'mas'. */
  database?: string;
}

/** The MAS side of a homeserver bootstrapped with the option `mas`. */
export interface MasHomeserver {
  server: MasServer;
  /** The cluster holding MAS's database (the caller's, or one that stop() ends). */
  postgres: PostgresServer;
  /** The bootstrap admin's id in MAS (a ULID). */
  adminUserId: string;
  /** The MAS personal session behind admin.accessToken. */
  adminSessionId: string;
  /**
   * What Synapse answered when the bootstrap admin promoted the bot (PUT
   * /_synapse/admin/v2/users/<bot> {admin: true}). Under MAS, Synapse decides who is an
   * admin from the token's scope, not from this flag: see botAdminApiStatus.
   */
  botPromotionStatus: number;
  /** What Synapse's admin API answers the bot's as_token (GET /_synapse/admin/v2/users/<bot>). */
  botAdminApiStatus: number;
  /**
   * A token for the bot that Synapse's admin API does accept: the bot is also made a MAS
   * user (skip_homeserver_check, as MAS documents for appservice users) and given a
   * personal access token with the scopes urn:matrix:client:api:* and urn:synapse:admin:*.
   */
  botAdminToken: string;
  /** The bot's id in MAS (a ULID). */
  botMasUserId: string;
}

export interface BootstrapAdmin {
  userId: string;
  localpart: string;
  password: string;
  accessToken: string;
}

export interface BootstrappedHomeserver {
  dir: string;
  synapse: Synapse;
  registration: Registration;
  registrationPath: string;
  appservicePort: number;
  /**
   * A server admin made with the shared secret: the operator invited to the admin room.
   * Under MAS: a MAS user (admin in MAS) whose accessToken is a MAS personal access token
   * with the scopes urn:matrix:client:api:* and urn:synapse:admin:*; its password logs in
   * through MAS (compat login at the MAS URL, or OAuth), not through Synapse.
   */
  admin: BootstrapAdmin;
  botUserId: string;
  /** The bearer token the bridge configs from bridgeConfig() accept (named 'test-idp'). */
  scimToken: string;
  /**
   * A raw bridge configuration (what config.yaml holds) for parseConfig(raw, dir).
   * `overrides` is merged in deeply (plain objects are merged, anything else replaces).
   */
  bridgeConfig(overrides?: Record<string, unknown>): Record<string, unknown>;
  /** Present with the option `mas`. */
  mas?: MasHomeserver;
  /** Stops Synapse, and with the option `mas` also MAS and the cluster started for it. */
  stop(): Promise<void>;
}

type Json = Record<string, unknown>;

/** The admin room of bridges configured by bridgeConfig(). */
export const adminRoomAlias = (serverName: string): string => `#scim-admin:${serverName}`;

function isPlainObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `base` with `over` merged in: nested plain objects are merged, anything else replaces. */
export function deepMerge(base: Json, over: Json): Json {
  const out: Json = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

async function call(method: string, url: string, token: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(url, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: Json = {};
  try {
    const value: unknown = text ? JSON.parse(text) : {};
    if (isPlainObject(value)) parsed = value;
  } catch {
    parsed = { raw: text };
  }
  return { status: res.status, body: parsed };
}

/**
 * Starts Synapse with a fresh appservice registration and prepares the accounts the
 * bridge needs. The caller stops it with stop() (which, without the option `mas`, is
 * `synapse.stop()`).
 */
export async function bootstrapHomeserver(options: BootstrapOptions): Promise<BootstrappedHomeserver> {
  const log = options.log ?? (() => {});
  const dir = resolve(options.dir);
  await mkdir(dir, { recursive: true });
  const serverName = options.serverName ?? 'localhost';
  const appservicePort = options.appservicePort ?? (await freePort());
  const synapsePort = options.synapsePort ?? (await freePort());

  const registration = generateRegistration({
    url: `http://127.0.0.1:${appservicePort}`,
    domain: serverName,
    adminRoomAlias: adminRoomAlias(serverName),
  });
  const registrationPath = join(dir, 'registration.yaml');
  writeRegistration(registrationPath, registration);

  const masSide = options.mas ? await startMasFor(options.mas, join(dir, 'mas'), serverName, synapsePort, log) : undefined;
  const stopMasSide = async (): Promise<void> => {
    await masSide?.server.stop();
    await masSide?.ownedPostgres?.stop();
  };

  let synapse: Synapse;
  try {
    synapse = await Synapse.create({
      dir: join(dir, 'synapse'),
      serverName,
      port: synapsePort,
      appserviceRegistrationFiles: [registrationPath],
      ...(options.synapsePostgres ? { postgres: options.synapsePostgres } : {}),
      ...(masSide
        ? {
            extraConfig: {
              matrix_authentication_service: { enabled: true, endpoint: `${masSide.server.url}/`, secret: masSide.server.sharedSecret },
            },
          }
        : {}),
      log,
    });
    await synapse.start();
  } catch (error) {
    await stopMasSide();
    throw error;
  }
  try {
    let admin: BootstrapAdmin;
    let masAdmin: { adminUserId: string; adminSessionId: string } | undefined;
    if (masSide) {
      ({ admin, ...masAdmin } = await masBootstrapAdmin(masSide.server, synapse, serverName, log));
    } else {
      const adminPassword = randomBytes(12).toString('base64url');
      const adminLogin = await synapse.registerUser('admin', adminPassword, true);
      admin = {
        userId: adminLogin.userId,
        localpart: 'admin',
        password: adminPassword,
        accessToken: adminLogin.accessToken,
      };
    }

    // Synapse never creates the sender_localpart user itself, and shared-secret
    // registration cannot (the bot's ID counts as exclusive): register it through the
    // appservice API, then promote it with the bootstrap admin.
    const botUserId = `@${registration.sender_localpart}:${serverName}`;
    const reg = await call('POST', `${synapse.url}/_matrix/client/v3/register`, registration.as_token, {
      type: 'm.login.application_service',
      username: registration.sender_localpart,
      inhibit_login: true,
    });
    if (reg.status !== 200 && reg.body['errcode'] !== 'M_USER_IN_USE') {
      throw new Error(`registering the bot ${botUserId} failed: HTTP ${reg.status} ${JSON.stringify(reg.body)}`);
    }
    const botUrl = `${synapse.url}/_synapse/admin/v2/users/${encodeURIComponent(botUserId)}`;
    const promote = await call('PUT', botUrl, admin.accessToken, { admin: true });
    let mas: MasHomeserver | undefined;
    if (masSide && masAdmin) {
      // Under MAS a token is a server admin by its scope (urn:synapse:admin:*), and an
      // appservice's token has none: record what Synapse answers instead of failing.
      const botAdminApi = await call('GET', botUrl, registration.as_token);
      const botAdmin = await masAdminToken(masSide.server, synapse, botUserId, registration.sender_localpart, true);
      mas = {
        server: masSide.server,
        postgres: masSide.postgres,
        ...masAdmin,
        botPromotionStatus: promote.status,
        botAdminApiStatus: botAdminApi.status,
        botAdminToken: botAdmin.accessToken,
        botMasUserId: botAdmin.masUserId,
      };
      log(`bot ${botUserId} registered; promotion answered ${promote.status}, its as_token on the admin API ${botAdminApi.status}, its MAS token 200; bootstrap admin ${admin.userId} (MAS)`);
    } else {
      if (promote.status !== 200 && promote.status !== 201) {
        throw new Error(`promoting the bot ${botUserId} to server admin failed: HTTP ${promote.status} ${JSON.stringify(promote.body)}`);
      }
      log(`bot ${botUserId} registered and promoted to server admin; bootstrap admin ${admin.userId}`);
    }

    const scimToken = randomBytes(24).toString('base64url');
    const bridgeConfig = (overrides: Json = {}): Json =>
      deepMerge(
        {
          homeserver: { url: synapse.url, domain: serverName },
          appservice: { registration: registrationPath, bindAddress: '127.0.0.1', port: appservicePort },
          scim: { bindAddress: '127.0.0.1', port: 0, tokens: [{ name: 'test-idp', token: scimToken }] },
          adminRoom: { room: adminRoomAlias(serverName), operators: [admin.userId] },
          avatars: { allowHttp: true, allowedNetworks: ['127.0.0.1/32'] },
          database: { engine: 'sqlite', path: join(dir, 'bridge.db') },
          logging: { level: 'warn' },
          // Tests ask for drift checks themselves (handles.reconcile) so that none runs behind their back.
          drift: { checkIntervalMinutes: 0 },
        },
        overrides,
      );

    const stop = async (): Promise<void> => {
      await synapse.stop();
      await stopMasSide();
    };
    return {
      dir, synapse, registration, registrationPath, appservicePort, admin, botUserId, scimToken, bridgeConfig,
      ...(mas ? { mas } : {}),
      stop,
    };
  } catch (error) {
    await synapse.stop();
    await stopMasSide();
    throw error;
  }
}

/** PostgreSQL (the caller's or a new cluster) and MAS pointing at the Synapse to come on `synapsePort`. */
async function startMasFor(
  options: MasBootstrapOptions,
  dir: string,
  serverName: string,
  synapsePort: number,
  log: Log,
): Promise<{ server: MasServer; postgres: PostgresServer; ownedPostgres: PostgresServer | undefined }> {
  const ownedPostgres = options.postgres ? undefined : await startPostgres({ log });
  const postgres = options.postgres ?? ownedPostgres;
  if (!postgres) throw new Error('unreachable: no PostgreSQL for MAS');
  try {
    const postgresUrl = await postgres.createDatabase(options.database ?? 'mas');
    const server = await startMas({
      dir,
      home: options.home,
      postgresUrl,
      homeserver: { serverName, url: `http://127.0.0.1:${synapsePort}` },
      log,
    });
    return { server, postgres, ownedPostgres };
  } catch (error) {
    await ownedPostgres?.stop();
    throw error;
  }
}

/** MAS's admin API answer, or an error naming the step. */
async function masStep(mas: MasServer, step: string, method: string, path: string, body: unknown, want: number): Promise<Json> {
  const res = await mas.adminApi(method, path, body);
  if (res.status !== want) throw new Error(`MAS admin API: ${step} failed: ${method} ${path} HTTP ${res.status} ${JSON.stringify(res.body)}`);
  const data = res.body['data'];
  return isPlainObject(data) ? data : {};
}

/**
 * A MAS personal access token for `localpart` with Synapse's admin scope, for a user made
 * in MAS here (`skipHomeserverCheck` for a user Synapse already has, such as an
 * appservice's). Returns once Synapse knows the user and accepts the token on its admin API.
 */
async function masAdminToken(
  mas: MasServer,
  synapse: Synapse,
  userId: string,
  localpart: string,
  skipHomeserverCheck: boolean,
  password?: string,
): Promise<{ accessToken: string; masUserId: string; sessionId: string }> {
  const user = await masStep(mas, `creating ${userId}`, 'POST', '/users', {
    username: localpart,
    ...(skipHomeserverCheck ? { skip_homeserver_check: true } : {}),
  }, 201);
  const masUserId = String(user['id']);
  if (password !== undefined) {
    await masStep(mas, `setting the password of ${userId}`, 'POST', `/users/${masUserId}/set-password`, { password }, 204);
  }
  // Lets the user ask for admin scopes through MAS's own login too; the admin API's
  // personal sessions do not need it.
  await masStep(mas, `making ${userId} a MAS admin`, 'POST', `/users/${masUserId}/set-admin`, { admin: true }, 200);
  const session = await masStep(mas, `issuing a personal access token to ${userId}`, 'POST', '/personal-sessions', {
    actor_user_id: masUserId,
    human_name: `matrix-scim-bridge harness: ${localpart}`,
    scope: 'urn:matrix:client:api:* urn:synapse:admin:*',
  }, 201);
  const attributes = isPlainObject(session['attributes']) ? session['attributes'] : {};
  const accessToken = attributes['access_token'];
  if (typeof accessToken !== 'string') throw new Error(`MAS issued a personal session without an access token: ${JSON.stringify(session)}`);

  // MAS provisions the user on Synapse from a background job: wait until Synapse has it.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const res = await call('GET', `${synapse.url}/_synapse/admin/v2/users/${encodeURIComponent(userId)}`, accessToken);
    if (res.status === 200) break;
    if (Date.now() > deadline) throw new Error(`Synapse does not accept the MAS token of ${userId} on its admin API: HTTP ${res.status} ${JSON.stringify(res.body)}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  return { accessToken, masUserId, sessionId: String(session['id']) };
}

/** The bootstrap admin under MAS: a MAS user with a password and a Synapse-admin token. */
async function masBootstrapAdmin(
  mas: MasServer,
  synapse: Synapse,
  serverName: string,
  log: Log,
): Promise<{ admin: BootstrapAdmin; adminUserId: string; adminSessionId: string }> {
  const started = Date.now();
  const localpart = 'admin';
  const userId = `@${localpart}:${serverName}`;
  const password = randomBytes(18).toString('base64url');
  const token = await masAdminToken(mas, synapse, userId, localpart, false, password);
  log(`bootstrap admin ${userId} made through MAS in ${Date.now() - started} ms`);
  return { admin: { userId, localpart, password, accessToken: token.accessToken }, adminUserId: token.masUserId, adminSessionId: token.sessionId };
}
