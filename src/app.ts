import type { AddressInfo } from 'node:net';
import type { Bridge } from 'matrix-appservice-bridge';
import { rereadTokenFiles, type BridgeConfig, type TokenReload } from './config/load.ts';
import { loadRegistration, type Registration } from './config/registration.ts';
import { configureLogging, logger } from './log.ts';
import { AdminRoomReporter } from './matrix/adminRoom.ts';
import { ensureAdminRoom } from './matrix/adminRoomSetup.ts';
import { AdminConsole, consoleRoom } from './matrix/console.ts';
import { LastRequests, consoleContext } from './consoleContext.ts';
import { VERSION } from './version.ts';
import { startAppservice } from './matrix/appservice.ts';
import { HomeserverClient, HomeserverError } from './matrix/homeserverClient.ts';
import { SynapsePort } from './matrix/synapsePort.ts';
import { MasClient } from './matrix/masClient.ts';
import { MasPort } from './matrix/masPort.ts';
import type { HomeserverPort } from './provisioning/ports.ts';
import { UserProvisioner } from './provisioning/users.ts';
import { protectedPatterns } from './provisioning/mapping.ts';
import { GroupProvisioner } from './provisioning/groups.ts';
import { JournalWorker } from './provisioning/journal.ts';
import { Reconciler, type ReconcileRequest, type ReconcileResult } from './provisioning/reconciler.ts';
import { groupBackend, userBackend, type ScopeOf } from './provisioning/backends.ts';
import { SynapseRooms } from './matrix/rooms.ts';
import { SCIM_BASE_PATH } from './scim/router.ts';
import { createScimApp } from './scim/server.ts';
import { createScimServer } from './scim/listener.ts';
import { AuditLog } from './provisioning/auditLog.ts';
import { BridgeMetrics } from './metrics.ts';
import { readinessProbe } from './metricsReadiness.ts';
import { startMetricsListener } from './metricsServer.ts';
import type { Store } from './store/types.ts';
import {
  checkAccountBackend,
  checkAdminApi,
  checked,
  checkHomeserver,
  checkLocally,
  openStore,
  pingFromHomeserver,
  StartupError,
} from './startupChecks.ts';

export { checkLocally, StartupError };

const log = logger('Bridge');

export interface BridgeHandles {
  /** Base URL of the SCIM API as the IdP should use it (ends in /scim/v2). */
  scimUrl: string;
  /** URL of the Prometheus metrics (ends in /metrics) when metrics.enabled. */
  metricsUrl?: string;
  adminRoomId: string;
  botUserId: string;
  store: Store;
  users: UserProvisioner;
  groups: GroupProvisioner;
  /** Compares every user and group with the homeserver now, reporting drift and repairing what is asked. */
  reconcile(request?: ReconcileRequest): Promise<ReconcileResult>;
  /** Runs due journal entries now (the worker also does it on its own); `now` later skips back-off. */
  runJournal(now?: Date): Promise<number>;
  /** Reads the SCIM token files again and uses them from the next request on (SIGHUP); logs which. */
  reloadTokens(): TokenReload;
  stop(): Promise<void>;
}

const JOURNAL_INTERVAL_MS = 5_000;

/** Starts the bridge: start-up checks, the appservice listener, the SCIM listener, the journal worker. */
export async function start(config: BridgeConfig, registration?: Registration): Promise<BridgeHandles> {
  configureLogging(config.logging);
  const reg = registration ?? loadRegistration(config.appservice.registration);
  checkLocally(config, reg);
  const botUserId = `@${reg.sender_localpart}:${config.homeserver.domain}`;
  const metrics = config.metrics.enabled ? new BridgeMetrics() : undefined;
  const client = new HomeserverClient({
    baseUrl: config.homeserver.url,
    asToken: reg.as_token,
    ...(metrics ? { onCall: (call) => metrics.observeHomeserverCall(call) } : {}),
    ...(config.adminApi.accessToken ? { adminToken: config.adminApi.accessToken } : {}),
  });

  await checkHomeserver(client, config, reg);
  const mas = config.mas ? new MasClient({ baseUrl: config.mas.url, clientId: config.mas.clientId, clientSecret: config.mas.clientSecret }) : undefined;
  await checkAccountBackend(client, config, mas);

  const store = await openStore(config);
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

    await pingFromHomeserver(client, config, reg);
    await checkAdminApi(client, config, botUserId);
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
    // Every event is logged (the audit trail) on its way to the admin room.
    const audit = new AuditLog(reporter);

    const avatars = config.avatars.enabled
      ? {
          avatars: {
            maxBytes: config.avatars.maxBytes,
            timeoutMs: config.avatars.timeoutSeconds * 1000,
            allowedContentTypes: ['image/png', 'image/jpeg', 'image/gif', 'image/webp'],
            allowHttp: config.avatars.allowHttp,
            allowedNetworks: config.avatars.allowedNetworks,
          },
        }
      : {};
    // Only here is the account backend picked: MAS when Synapse delegates accounts to it.
    const port: HomeserverPort = mas
      ? new MasPort(mas, client, {
          domain: config.homeserver.domain,
          ...(config.mas?.upstreamProviderId ? { upstreamProviderId: config.mas.upstreamProviderId } : {}),
          ...avatars,
          leftovers: store.leftovers,
        })
      : new SynapsePort(client, {
          ...(config.provisioning.externalIdProvider ? { externalIdProvider: config.provisioning.externalIdProvider } : {}),
          ...avatars,
        });
    // The provisioners wake the journal worker when they leave work for the background.
    const wake = () => journal.wake();
    const users = new UserProvisioner(store, port, audit, {
      domain: config.homeserver.domain,
      localpart: config.provisioning.localpart,
      protectedUsers: protectedPatterns(botUserId, config.provisioning.protectedUsers),
      adoptExistingUsers: config.provisioning.adoptExistingUsers,
      eraseOnDelete: config.provisioning.eraseOnDelete,
      disablePolicy: config.provisioning.onDisable,
      operatorDisabled: config.provisioning.operatorDisabled,
    }, wake);
    const rooms = new SynapseRooms(client, botUserId);
    const groups = new GroupProvisioner(store, rooms, audit, {
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
    // Read on every request: reloadTokens() replaces its entries.
    const scimTokens = [...config.scim.tokens];
    const scopeOf: ScopeOf = (source) => config.scim.scopes[source] ?? 'all';
    const lastRequests = new LastRequests();
    const app = createScimApp({
      baseUrl: () => scimUrl,
      tokens: scimTokens,
      users: userBackend(users, store, scopeOf),
      groups: groupBackend(groups, scopeOf),
      // The homeserver check is cached, so that a storm of probes costs Synapse one request every few seconds.
      readiness: readinessProbe([
        {
          name: 'homeserver',
          run: async () => void (await client.request('GET', '/_matrix/client/versions', { token: 'none' })),
          cacheMs: 5_000,
          timeoutMs: 3_000,
        },
        { name: 'store', run: async () => ({ users: await store.countUsers() }), cacheMs: 0, timeoutMs: 3_000 },
      ]),
      onRequest: (sample) => {
        lastRequests.note(sample.idp);
        metrics?.observeScimRequest(sample);
      },
    });
    const server = createScimServer(app);
    await checked(
      `the SCIM listener cannot start on ${config.scim.bindAddress}:${config.scim.port}`,
      () =>
        new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(config.scim.port, config.scim.bindAddress, () => resolve());
        }),
      () => `choose a free scim.port (or 0 for any free port), or stop what listens on ${config.scim.bindAddress}:${config.scim.port}`,
    );
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    server.closeIdleConnections();
    const address = server.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    scimUrl = `${(config.scim.publicUrl ?? `http://${host}:${address.port}`).replace(/\/$/, '')}${SCIM_BASE_PATH}`;

    let metricsUrl: string | undefined;
    if (metrics) {
      metrics.readFrom({
        journal: async () => {
          const stats = await store.journalStats();
          const oldest = stats.oldestCreated ? Date.parse(stats.oldestCreated) : Date.now();
          return { pendingByAction: stats.pendingByAction, oldestAgeSeconds: Math.max(0, (Date.now() - oldest) / 1000) };
        },
        users: () => store.countUsers(),
        groups: async () => (await store.groups.list({ startIndex: 1, count: 0 })).totalResults,
        noticesPending: () => reporter.pendingCount,
        membership: () => store.groups.pendingMembership(),
      });
      const listener = await checked(
        `the metrics listener cannot start on ${config.metrics.bindAddress}:${config.metrics.port}`,
        () => startMetricsListener(metrics, config.metrics.bindAddress, config.metrics.port),
        () => 'choose a free metrics.port (or 0 for any), or set metrics.enabled: false',
      );
      cleanups.push(() => listener.close());
      metricsUrl = listener.url;
      log.info(`Prometheus metrics at ${metricsUrl}`);
    }

    journal.start(JOURNAL_INTERVAL_MS);
    cleanups.push(() => journal.stop());
    const reconciler = new Reconciler(store, users, rooms, audit, { repair: config.drift.repair, wakeJournal: wake });
    reconciler.start(config.drift.checkIntervalMinutes * 60_000);
    cleanups.push(() => reconciler.stop());
    adminConsole = new AdminConsole({
      roomId: adminRoomId,
      botUserId,
      operators: config.adminRoom.operators,
      room: consoleRoom(client, adminRoomId),
      context: consoleContext({
        version: VERSION,
        domain: config.homeserver.domain,
        store,
        users,
        groups,
        reconciler,
        homeserverVersion: () => client.serverVersion(),
        lastRequests,
        // A time far ahead: every entry is due, whatever its back-off.
        runJournalNow: () => journal.run(new Date(Date.now() + 86_400_000 * 365)),
      }),
    });

    log.info(`SCIM API listening at ${scimUrl}; admin room ${adminRoomId}`);
    const hello = `▶️ matrix-scim-bridge ${VERSION} started; operators can send "!scim help" here`;
    client.sendNotice(adminRoomId, hello, hello).catch((error: unknown) => log.warn(`could not post the start notice: ${(error as Error).message}`));
    return {
      scimUrl,
      ...(metricsUrl ? { metricsUrl } : {}),
      adminRoomId,
      botUserId,
      store,
      users,
      groups,
      runJournal: (now?: Date) => journal.run(now),
      reconcile: (request) => reconciler.run(request),
      reloadTokens: () => {
        const result = rereadTokenFiles(scimTokens, config.scim.tokenFiles);
        scimTokens.splice(0, scimTokens.length, ...result.tokens);
        const changed = result.changed.length > 0 ? ` (changed: ${result.changed.join(', ')})` : ' (none changed)';
        if (result.reloaded.length > 0) log.info(`SCIM tokens reloaded from their files: ${result.reloaded.join(', ')}${changed}`);
        else if (result.kept.length === 0) log.info('no SCIM token is read from a file: nothing to reload');
        for (const kept of result.kept) log.warn(`SCIM token ${kept.name} kept as it was: ${kept.reason}`);
        return result;
      },
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
