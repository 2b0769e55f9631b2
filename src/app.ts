import type { AddressInfo } from 'node:net';
import type { Bridge } from 'matrix-appservice-bridge';
import type { BridgeConfig } from './config/load.ts';
import { loadRegistration, type Registration } from './config/registration.ts';
import { configureLogging, logger } from './log.ts';
import { AdminRoomReporter } from './matrix/adminRoom.ts';
import { ensureAdminRoom } from './matrix/adminRoomSetup.ts';
import { AdminConsole, consoleRoom } from './matrix/console.ts';
import { startAppservice } from './matrix/appservice.ts';
import { HomeserverClient, HomeserverError } from './matrix/homeserverClient.ts';
import { SynapsePort } from './matrix/synapsePort.ts';
import { UserProvisioner } from './provisioning/users.ts';
import { protectedPatterns } from './provisioning/mapping.ts';
import { GroupProvisioner } from './provisioning/groups.ts';
import { JournalWorker } from './provisioning/journal.ts';
import { Reconciler, type ReconcileRequest, type ReconcileResult } from './provisioning/reconciler.ts';
import { userBackend } from './provisioning/backends.ts';
import { SynapseRooms } from './matrix/rooms.ts';
import { SCIM_BASE_PATH } from './scim/router.ts';
import { createScimApp } from './scim/server.ts';
import { createScimServer } from './scim/listener.ts';
import { SqliteStore } from './store/sqlite.ts';
import type { Store } from './store/types.ts';

const log = logger('Bridge');

export interface BridgeHandles {
  /** Base URL of the SCIM API as the IdP should use it (ends in /scim/v2). */
  scimUrl: string;
  adminRoomId: string;
  botUserId: string;
  store: Store;
  users: UserProvisioner;
  groups: GroupProvisioner;
  /** Compares every user and group with the homeserver now, reporting drift and repairing what is asked. */
  reconcile(request?: ReconcileRequest): Promise<ReconcileResult>;
  /** Runs due journal entries now (the worker also does it on its own); `now` later skips back-off. */
  runJournal(now?: Date): Promise<number>;
  stop(): Promise<void>;
}

/** A start-up check failed: the message says what is wrong and what to do. */
export class StartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StartupError';
  }
}

const JOURNAL_INTERVAL_MS = 5_000;

/**
 * Retries a start-up step that failed transiently. Synapse's ping can fail once on a pooled
 * connection to a previous instance of the appservice listener (M_CONNECTION_FAILED).
 */
async function withRetries<T>(step: () => Promise<T>, attempts = 5, delayMs = 1000): Promise<T> {
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

async function checked<T>(what: string, step: () => Promise<T>, advice: (error: Error) => string): Promise<T> {
  try {
    return await step();
  } catch (error) {
    throw new StartupError(`${what}: ${(error as Error).message}\n  → ${advice(error as Error)}`);
  }
}

/** Starts the bridge: start-up checks, the appservice listener, the SCIM listener, the journal worker. */
export async function start(config: BridgeConfig, registration?: Registration): Promise<BridgeHandles> {
  configureLogging(config.logging.level);
  const reg = registration ?? loadRegistration(config.appservice.registration);
  const botUserId = `@${reg.sender_localpart}:${config.homeserver.domain}`;
  const client = new HomeserverClient({
    baseUrl: config.homeserver.url,
    asToken: reg.as_token,
    ...(config.adminApi.accessToken ? { adminToken: config.adminApi.accessToken } : {}),
  });

  await checked(
    `the homeserver at ${config.homeserver.url} is not reachable`,
    () => client.request('GET', '/_matrix/client/versions', { token: 'none' }),
    () => 'check homeserver.url and that the homeserver is running',
  );
  await checked(
    `the bot ${botUserId} cannot be registered`,
    () => client.register(reg.sender_localpart),
    (e) =>
      e instanceof HomeserverError && e.status === 401
        ? 'the homeserver does not know this registration\'s as_token: add the registration file to app_service_config_files and restart the homeserver'
        : 'check the registration\'s namespace and sender_localpart',
  );

  const store = await SqliteStore.open(config.database.path);
  const cleanups: (() => Promise<void>)[] = [() => store.close()];
  const cleanup = async () => {
    for (const fn of cleanups.reverse()) await fn().catch((e: unknown) => log.warn('error while stopping', e));
  };

  // Built once the admin room is known; events before that are not commands for it.
  let adminConsole: AdminConsole | undefined;
  try {
    const bridge: Bridge = await checked(
      `the appservice listener cannot start on ${config.appservice.bindAddress}:${config.appservice.port}`,
      () =>
        startAppservice({
          homeserverUrl: config.homeserver.url,
          domain: config.homeserver.domain,
          registration: reg,
          bindAddress: config.appservice.bindAddress,
          port: config.appservice.port,
          onEvent: (event) => void adminConsole?.handle(event),
        }),
      () => 'choose a free appservice.port',
    );
    cleanups.push(() => bridge.close());

    await checked(
      'the homeserver cannot reach the bridge (appservice ping failed)',
      () => withRetries(() => client.ping(reg.id)),
      () =>
        `make sure the homeserver loaded the registration (app_service_config_files, then restart it) and can reach ${String(reg.url)}`,
    );
    await checked(
      'the Synapse admin API is not usable',
      () => client.getUser(botUserId),
      (e) =>
        e instanceof HomeserverError && e.status === 403
          ? `promote the bot to server admin (PUT /_synapse/admin/v2/users/${botUserId} {"admin": true} with an admin's token) or set adminApi.accessToken`
          : 'check adminApi.accessToken and that the homeserver is Synapse',
    );
    const adminRoomId = await checked(
      'the admin room cannot be joined or created',
      () =>
        ensureAdminRoom(client, {
          room: config.adminRoom.room ?? `#scim-bridge-admin:${config.homeserver.domain}`,
          operators: config.adminRoom.operators,
          botUserId,
        }),
      (e) =>
        e instanceof HomeserverError && e.errcode === 'M_EXCLUSIVE'
          ? 'the registration does not reserve this alias: regenerate it (generate-registration reserves adminRoom.room) or add the alias to namespaces.aliases'
          : 'invite the bot to adminRoom.room (a room ID), or give an alias in the registration\'s alias namespace',
    );

    const reporter = new AdminRoomReporter(
      { sendNotice: (text, html) => client.sendNotice(adminRoomId, text, html) },
      { burstThreshold: config.adminRoom.burstThreshold, windowMs: config.adminRoom.burstWindowSeconds * 1000, outbox: store.notices },
    );
    cleanups.push(() => reporter.stop());

    const port = new SynapsePort(client, {
      ...(config.provisioning.externalIdProvider ? { externalIdProvider: config.provisioning.externalIdProvider } : {}),
      ...(config.avatars.enabled
        ? {
            avatars: {
              maxBytes: config.avatars.maxBytes,
              timeoutMs: config.avatars.timeoutSeconds * 1000,
              allowedContentTypes: ['image/png', 'image/jpeg', 'image/gif', 'image/webp'],
              allowHttp: config.avatars.allowHttp,
              allowedNetworks: config.avatars.allowedNetworks,
            },
          }
        : {}),
    });
    // The provisioners wake the journal worker when they leave work for the background.
    const wake = () => journal.wake();
    const users = new UserProvisioner(store, port, reporter, {
      domain: config.homeserver.domain,
      localpart: config.provisioning.localpart,
      protectedUsers: protectedPatterns(botUserId, config.provisioning.protectedUsers),
      adoptExistingUsers: config.provisioning.adoptExistingUsers,
      eraseOnDelete: config.provisioning.eraseOnDelete,
      disablePolicy: config.provisioning.onDisable,
      operatorDisabled: config.provisioning.operatorDisabled,
    }, wake);
    const rooms = new SynapseRooms(client, botUserId);
    const groups = new GroupProvisioner(store, rooms, reporter, {
      roomType: config.groups.roomType,
      onDelete: config.groups.onDelete,
      ...(config.groups.memberPowerLevel !== undefined ? { memberPowerLevel: config.groups.memberPowerLevel } : {}),
      links: config.groups.links.map((l) => ({
        displayName: l.displayName,
        rooms: l.rooms,
        ...(l.powerLevel !== undefined ? { powerLevel: l.powerLevel } : {}),
      })),
      batchSize: config.groups.batchSize,
      inactiveLeaveRooms: config.provisioning.onDisable === 'deactivate',
    }, wake);
    const journal = new JournalWorker(store, [users, groups]);

    let scimUrl = '';
    const app = createScimApp({
      baseUrl: () => scimUrl,
      tokens: config.scim.tokens,
      users: userBackend(users, store),
      groups,
      readiness: async () => ({ users: await store.countUsers() }),
    });
    const server = createScimServer(app);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.scim.port, config.scim.bindAddress, () => resolve());
    });
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    server.closeIdleConnections();
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    scimUrl = `${(config.scim.publicUrl ?? `http://${host}:${address.port}`).replace(/\/$/, '')}${SCIM_BASE_PATH}`;

    journal.start(JOURNAL_INTERVAL_MS);
    cleanups.push(() => journal.stop());
    const reconciler = new Reconciler(store, users, rooms, reporter, { repair: config.drift.repair, wakeJournal: wake });
    reconciler.start(config.drift.checkIntervalMinutes * 60_000);
    cleanups.push(() => reconciler.stop());
    adminConsole = new AdminConsole({
      roomId: adminRoomId,
      botUserId,
      operators: config.adminRoom.operators,
      room: consoleRoom(client, adminRoomId),
      context: { reconcile: (request) => reconciler.run(request) },
    });

    log.info(`SCIM API listening at ${scimUrl}; admin room ${adminRoomId}`);
    return {
      scimUrl,
      adminRoomId,
      botUserId,
      store,
      users,
      groups,
      runJournal: (now?: Date) => journal.run(now),
      reconcile: (request) => reconciler.run(request),
      stop: async () => {
        server.closeAllConnections();
        await cleanup();
      },
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
