// A homeserver ready for the bridge, shared by the end-to-end tests and the demo:
// a real Synapse with the bridge's appservice registration loaded, a bootstrap server
// admin, and the bridge's bot registered and promoted to server admin (the bridge uses
// the as_token on the Synapse admin API). bridgeConfig() then gives a raw configuration
// object (as config.yaml would hold it) for parseConfig().

import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { generateRegistration, writeRegistration, type Registration } from '../../src/config/registration.ts';
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
  log?: Log;
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
  /** A server admin made with the shared secret: the operator invited to the admin room. */
  admin: BootstrapAdmin;
  botUserId: string;
  /** The bearer token the bridge configs from bridgeConfig() accept (named 'test-idp'). */
  scimToken: string;
  /**
   * A raw bridge configuration (what config.yaml holds) for parseConfig(raw, dir).
   * `overrides` is merged in deeply (plain objects are merged, anything else replaces).
   */
  bridgeConfig(overrides?: Record<string, unknown>): Record<string, unknown>;
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
 * bridge needs. The caller stops `synapse` when done.
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

  const synapse = await Synapse.create({
    dir: join(dir, 'synapse'),
    serverName,
    port: synapsePort,
    appserviceRegistrationFiles: [registrationPath],
    ...(options.synapsePostgres ? { postgres: options.synapsePostgres } : {}),
    log,
  });
  await synapse.start();
  try {
    const adminPassword = randomBytes(12).toString('base64url');
    const adminLogin = await synapse.registerUser('admin', adminPassword, true);
    const admin: BootstrapAdmin = {
      userId: adminLogin.userId,
      localpart: 'admin',
      password: adminPassword,
      accessToken: adminLogin.accessToken,
    };

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
    const promote = await call(
      'PUT',
      `${synapse.url}/_synapse/admin/v2/users/${encodeURIComponent(botUserId)}`,
      admin.accessToken,
      { admin: true },
    );
    if (promote.status !== 200 && promote.status !== 201) {
      throw new Error(`promoting the bot ${botUserId} to server admin failed: HTTP ${promote.status} ${JSON.stringify(promote.body)}`);
    }
    log(`bot ${botUserId} registered and promoted to server admin; bootstrap admin ${admin.userId}`);

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

    return { dir, synapse, registration, registrationPath, appservicePort, admin, botUserId, scimToken, bridgeConfig };
  } catch (error) {
    await synapse.stop();
    throw error;
  }
}
