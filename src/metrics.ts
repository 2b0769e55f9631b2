import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The bridge's Prometheus metrics: one registry, every metric named here with the
 * `matrix_scim_bridge_` prefix. Request counters are moved by the SCIM middleware and the
 * homeserver client's observer; the state gauges (journal, users, groups, notices) are read
 * from their sources when Prometheus scrapes, so that they are never stale and cost nothing
 * between scrapes. Labels are bounded: routes are patterns, homeserver calls are kinds.
 */
export const METRIC_PREFIX = 'matrix_scim_bridge_';

/** How a homeserver call ended: answered, refused for good, or worth retrying (down, 5xx, 429). */
export type CallOutcome = 'ok' | 'error' | 'transient';

/** Open journal work, as the store counts it. */
export interface JournalStats {
  /** Open entries by action (sync, delete, group-sync, group-delete). */
  pendingByAction: Record<string, number>;
  /** Seconds since the oldest open entry was first opened; 0 when there is none. */
  oldestAgeSeconds: number;
}

/** Where the scrape-time gauges read from (wired in src/app.ts). */
export interface MetricsSources {
  journal(): Promise<JournalStats>;
  users(): Promise<number>;
  groups(): Promise<number>;
  /** Admin-room notices not yet taken by the homeserver (queued or held). */
  noticesPending(): number;
  /** Room joins and kicks not done yet, member by member. */
  membership?(): Promise<{ joins: number; kicks: number }>;
}

export interface ScimRequestSample {
  method: string;
  /** The route pattern (e.g. /Users/:id), never the raw path. */
  route: string;
  status: number;
  /** Name of the IdP token, or "none" when the request was not authenticated. */
  idp: string;
  seconds: number;
}

export interface HomeserverCallSample {
  method: string;
  path: string;
  outcome: CallOutcome;
  seconds: number;
}

/** Journal actions that are room joins and kicks for a group. */
const ROOM_WORK_ACTIONS = ['group-sync', 'group-delete'];
const JOURNAL_ACTIONS = ['sync', 'delete', ...ROOM_WORK_ACTIONS];

/** Seconds: SCIM answers range from a store read to a burst of homeserver calls. */
const SCIM_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const HOMESERVER_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The endpoint family of a homeserver call: a bounded label, never a path with IDs in it.
 * Anything not listed is "other" (a new call shows up there until it is named here).
 */
const CALL_KINDS: { method: string; pattern: RegExp; kind: string }[] = [
  { method: 'GET', pattern: /^\/_matrix\/client\/versions$/, kind: 'versions' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v3\/register$/, kind: 'register' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v1\/appservice\/[^/]+\/ping$/, kind: 'ping' },
  { method: 'GET', pattern: /^\/_matrix\/client\/v3\/account\/whoami$/, kind: 'whoami' },
  { method: 'POST', pattern: /^\/_matrix\/media\/v3\/upload$/, kind: 'media_upload' },
  { method: 'GET', pattern: /^\/_matrix\/client\/v3\/directory\/room\/[^/]+$/, kind: 'alias_resolve' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v3\/createRoom$/, kind: 'room_create' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v3\/join\/[^/]+$/, kind: 'join' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/join$/, kind: 'join' },
  { method: 'GET', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/joined_members$/, kind: 'room_members' },
  { method: 'GET', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/state\/m\.room\.member\/[^/]+$/, kind: 'room_membership' },
  { method: 'GET', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/state\//, kind: 'state_get' },
  { method: 'PUT', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/state\//, kind: 'state_put' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/invite$/, kind: 'invite' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/kick$/, kind: 'kick' },
  { method: 'POST', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/leave$/, kind: 'leave' },
  { method: 'PUT', pattern: /^\/_matrix\/client\/v3\/rooms\/[^/]+\/send\/m\.room\.message\//, kind: 'send_notice' },
  { method: 'GET', pattern: /^\/_synapse\/admin\/v2\/users\/[^/]+$/, kind: 'admin_user_get' },
  { method: 'PUT', pattern: /^\/_synapse\/admin\/v2\/users\/[^/]+$/, kind: 'admin_user_put' },
  { method: 'GET', pattern: /^\/_synapse\/admin\/v1\/threepid\//, kind: 'threepid_lookup' },
  { method: 'GET', pattern: /^\/_synapse\/admin\/v1\/auth_providers\//, kind: 'external_id_lookup' },
  { method: 'POST', pattern: /^\/_synapse\/admin\/v1\/deactivate\/[^/]+$/, kind: 'deactivate' },
  { method: 'PUT', pattern: /^\/_synapse\/admin\/v1\/suspend\/[^/]+$/, kind: 'suspend' },
  { method: 'GET', pattern: /^\/_synapse\/admin\/v1\/server_version$/, kind: 'server_version' },
];

export function homeserverCallKind(method: string, path: string): string {
  const bare = path.split('?')[0] ?? path;
  return CALL_KINDS.find((k) => k.method === method && k.pattern.test(bare))?.kind ?? 'other';
}

export interface MetricsOptions {
  /** Also export the process's CPU, memory, event loop and GC metrics (prom-client's defaults). */
  processMetrics?: boolean;
}

export class BridgeMetrics {
  readonly registry = new Registry();
  readonly #scimRequests: Counter<'method' | 'route' | 'status' | 'idp'>;
  readonly #scimDuration: Histogram<'method' | 'route' | 'status' | 'idp'>;
  readonly #homeserverCalls: Counter<'kind' | 'outcome'>;
  readonly #homeserverDuration: Histogram<'kind' | 'outcome'>;
  readonly #journalPending: Gauge<'action'>;
  readonly #journalOldest: Gauge;
  readonly #roomWorkPending: Gauge;
  readonly #joinsPending: Gauge;
  readonly #kicksPending: Gauge;
  readonly #users: Gauge;
  readonly #groups: Gauge;
  readonly #notices: Gauge;
  #sources: MetricsSources | undefined;

  constructor(options: MetricsOptions = {}) {
    const registers = [this.registry];
    this.#scimRequests = new Counter({
      name: `${METRIC_PREFIX}scim_requests_total`,
      help: 'SCIM requests answered, by method, route pattern, status and IdP token name',
      labelNames: ['method', 'route', 'status', 'idp'],
      registers,
    });
    this.#scimDuration = new Histogram({
      name: `${METRIC_PREFIX}scim_request_duration_seconds`,
      help: 'Time to answer a SCIM request, by method, route pattern, status and IdP token name',
      labelNames: ['method', 'route', 'status', 'idp'],
      buckets: SCIM_BUCKETS,
      registers,
    });
    this.#homeserverCalls = new Counter({
      name: `${METRIC_PREFIX}homeserver_requests_total`,
      help: 'Calls to the homeserver, by endpoint family (kind) and outcome (ok, error, transient)',
      labelNames: ['kind', 'outcome'],
      registers,
    });
    this.#homeserverDuration = new Histogram({
      name: `${METRIC_PREFIX}homeserver_request_duration_seconds`,
      help: 'Time of a homeserver call (rate-limit waits included), by kind and outcome',
      labelNames: ['kind', 'outcome'],
      buckets: HOMESERVER_BUCKETS,
      registers,
    });
    this.#journalPending = new Gauge({
      name: `${METRIC_PREFIX}journal_pending`,
      help: 'Open journal entries (homeserver work accepted but not finished), by action',
      labelNames: ['action'],
      registers,
    });
    this.#journalOldest = new Gauge({
      name: `${METRIC_PREFIX}journal_oldest_age_seconds`,
      help: 'Age of the oldest open journal entry in seconds (0 when none is open)',
      registers,
    });
    this.#roomWorkPending = new Gauge({
      name: `${METRIC_PREFIX}group_room_work_pending`,
      help: 'Groups whose room joins or kicks are not finished (open group-sync and group-delete journal entries)',
      registers,
    });
    this.#joinsPending = new Gauge({
      name: `${METRIC_PREFIX}room_joins_pending`,
      help: 'Provisioned group members not yet joined to their group\'s rooms',
      registers,
    });
    this.#kicksPending = new Gauge({
      name: `${METRIC_PREFIX}room_kicks_pending`,
      help: 'Room members the bridge joined who are no longer in their group, not yet removed',
      registers,
    });
    this.#users = new Gauge({ name: `${METRIC_PREFIX}users`, help: 'Users known to SCIM (pending or provisioned)', registers });
    this.#groups = new Gauge({ name: `${METRIC_PREFIX}groups`, help: 'Groups known to SCIM (active)', registers });
    this.#notices = new Gauge({
      name: `${METRIC_PREFIX}admin_notices_pending`,
      help: 'Admin-room notices not yet posted (queued for a digest, or held while the homeserver is unreachable)',
      registers,
    });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX });
  }

  /** Where the state gauges are read from at each scrape; until set, they stay at 0. */
  readFrom(sources: MetricsSources): void {
    this.#sources = sources;
  }

  observeScimRequest(sample: ScimRequestSample): void {
    const labels = { method: sample.method, route: sample.route, status: String(sample.status), idp: sample.idp };
    this.#scimRequests.inc(labels);
    this.#scimDuration.observe(labels, sample.seconds);
  }

  observeHomeserverCall(sample: HomeserverCallSample): void {
    const labels = { kind: homeserverCallKind(sample.method, sample.path), outcome: sample.outcome };
    this.#homeserverCalls.inc(labels);
    this.#homeserverDuration.observe(labels, sample.seconds);
  }

  /** The exposition text; reads the state gauges first. A failing source fails the scrape. */
  async render(): Promise<{ contentType: string; body: string }> {
    if (this.#sources) await this.#refresh(this.#sources);
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  async #refresh(sources: MetricsSources): Promise<void> {
    const [journal, users, groups] = await Promise.all([sources.journal(), sources.users(), sources.groups()]);
    for (const action of new Set([...JOURNAL_ACTIONS, ...Object.keys(journal.pendingByAction)])) {
      this.#journalPending.set({ action }, journal.pendingByAction[action] ?? 0);
    }
    this.#journalOldest.set(journal.oldestAgeSeconds);
    this.#roomWorkPending.set(ROOM_WORK_ACTIONS.reduce((sum, a) => sum + (journal.pendingByAction[a] ?? 0), 0));
    this.#users.set(users);
    this.#groups.set(groups);
    this.#notices.set(sources.noticesPending());
    const membership = (await sources.membership?.()) ?? { joins: 0, kicks: 0 };
    this.#joinsPending.set(membership.joins);
    this.#kicksPending.set(membership.kicks);
  }

  /** Every sample name the registry exports (histograms with _bucket, _sum and _count). */
  async exportedNames(): Promise<Set<string>> {
    const names = new Set<string>();
    for (const metric of await this.registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${metric.name}${s}`);
      if (String(metric.type) === 'summary') for (const s of ['_sum', '_count']) names.add(`${metric.name}${s}`);
    }
    return names;
  }
}
