import { expect } from 'chai';
import { AdminRoomReporter } from '../../src/matrix/adminRoom.ts';
import { HomeserverError } from '../../src/provisioning/ports.ts';
import { BridgeMetrics, METRIC_PREFIX, homeserverCallKind, type MetricsSources } from '../../src/metrics.ts';
import { readinessProbe } from '../../src/metricsReadiness.ts';
import { startMetricsListener } from '../../src/metricsServer.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';

/** The value of one sample line of the exposition text, e.g. `name{a="b"} 3`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

const quietSources = (over: Partial<MetricsSources> = {}): MetricsSources => ({
  journal: async () => ({ pendingByAction: {}, oldestAgeSeconds: 0 }),
  users: async () => 0,
  groups: async () => 0,
  noticesPending: () => 0,
  ...over,
});

describe('Metrics: names and labels', () => {
  it('exports every metric under the matrix_scim_bridge_ prefix, process metrics included', async () => {
    const metrics = new BridgeMetrics();
    const names = [...(await metrics.exportedNames())];
    expect(names).to.include('matrix_scim_bridge_scim_requests_total');
    expect(names).to.include('matrix_scim_bridge_scim_request_duration_seconds_bucket');
    expect(names).to.include('matrix_scim_bridge_process_resident_memory_bytes');
    expect(names.filter((n) => !n.startsWith(METRIC_PREFIX))).to.deep.equal([]);
  });

  it('names homeserver calls by endpoint family, never by a path with IDs in it', () => {
    const cases: [string, string, string][] = [
      ['GET', '/_synapse/admin/v2/users/%40alice%3Aexample.org', 'admin_user_get'],
      ['PUT', '/_synapse/admin/v2/users/%40alice%3Aexample.org', 'admin_user_put'],
      ['GET', '/_synapse/admin/v1/threepid/email/users/a%40example.com', 'threepid_lookup'],
      ['PUT', '/_matrix/client/v3/rooms/!r%3Ax/send/m.room.message/1234', 'send_notice'],
      ['POST', '/_matrix/client/v3/rooms/!r%3Ax/join', 'join'],
      ['POST', '/_matrix/client/v3/join/%23admin%3Ax', 'join'],
      ['POST', '/_matrix/client/v3/rooms/!r%3Ax/kick', 'kick'],
      ['GET', '/_matrix/client/v3/rooms/!r%3Ax/state/m.room.member/%40a%3Ax', 'room_membership'],
      ['PUT', '/_matrix/client/v3/rooms/!r%3Ax/state/m.room.power_levels/', 'state_put'],
      ['GET', '/_matrix/client/versions', 'versions'],
      ['POST', '/_matrix/media/v3/upload?filename=a.png', 'media_upload'],
      ['DELETE', '/_synapse/admin/v2/users/%40alice%3Aexample.org', 'other'],
      ['GET', '/_synapse/admin/v1/something/new', 'other'],
    ];
    for (const [method, path, kind] of cases) expect(homeserverCallKind(method, path), `${method} ${path}`).to.equal(kind);
  });
});

describe('Metrics: values', () => {
  it('counts SCIM requests by method, route pattern, status and IdP, with their latency', async () => {
    const metrics = new BridgeMetrics({ processMetrics: false });
    metrics.observeScimRequest({ method: 'POST', route: '/Users', status: 201, idp: 'entra', seconds: 0.02 });
    metrics.observeScimRequest({ method: 'POST', route: '/Users', status: 201, idp: 'entra', seconds: 0.03 });
    metrics.observeScimRequest({ method: 'GET', route: '/Users/:id', status: 404, idp: 'okta', seconds: 0.001 });
    const { body } = await metrics.render();
    const labels = { method: 'POST', route: '/Users', status: '201', idp: 'entra' };
    expect(sample(body, 'matrix_scim_bridge_scim_requests_total', labels)).to.equal(2);
    expect(sample(body, 'matrix_scim_bridge_scim_request_duration_seconds_count', labels)).to.equal(2);
    expect(sample(body, 'matrix_scim_bridge_scim_request_duration_seconds_bucket', { ...labels, le: '0.025' })).to.equal(1);
    expect(sample(body, 'matrix_scim_bridge_scim_requests_total', { route: '/Users/:id', status: '404', idp: 'okta' })).to.equal(1);
  });

  it('counts homeserver calls by kind and outcome', async () => {
    const metrics = new BridgeMetrics({ processMetrics: false });
    metrics.observeHomeserverCall({ method: 'PUT', path: '/_synapse/admin/v2/users/%40a%3Ax', outcome: 'ok', seconds: 0.1 });
    metrics.observeHomeserverCall({ method: 'PUT', path: '/_synapse/admin/v2/users/%40b%3Ax', outcome: 'transient', seconds: 3 });
    const { body } = await metrics.render();
    expect(sample(body, 'matrix_scim_bridge_homeserver_requests_total', { kind: 'admin_user_put', outcome: 'ok' })).to.equal(1);
    expect(sample(body, 'matrix_scim_bridge_homeserver_requests_total', { kind: 'admin_user_put', outcome: 'transient' })).to.equal(1);
    expect(body).to.not.include('%40a');
  });

  it('reads the journal, users, groups and notices from their sources at each scrape', async () => {
    const metrics = new BridgeMetrics({ processMetrics: false });
    let users = 3;
    metrics.readFrom(
      quietSources({
        journal: async () => ({ pendingByAction: { sync: 2, 'group-sync': 4 }, oldestAgeSeconds: 42 }),
        users: async () => users,
        groups: async () => 5,
        noticesPending: () => 7,
        membership: async () => ({ joins: 11, kicks: 2 }),
      }),
    );
    let { body } = await metrics.render();
    expect(sample(body, 'matrix_scim_bridge_room_joins_pending')).to.equal(11);
    expect(sample(body, 'matrix_scim_bridge_room_kicks_pending')).to.equal(2);
    expect(sample(body, 'matrix_scim_bridge_journal_pending', { action: 'sync' })).to.equal(2);
    expect(sample(body, 'matrix_scim_bridge_journal_pending', { action: 'delete' })).to.equal(0);
    expect(sample(body, 'matrix_scim_bridge_journal_oldest_age_seconds')).to.equal(42);
    expect(sample(body, 'matrix_scim_bridge_group_room_work_pending')).to.equal(4);
    expect(sample(body, 'matrix_scim_bridge_users')).to.equal(3);
    expect(sample(body, 'matrix_scim_bridge_groups')).to.equal(5);
    expect(sample(body, 'matrix_scim_bridge_admin_notices_pending')).to.equal(7);
    users = 4;
    ({ body } = await metrics.render());
    expect(sample(body, 'matrix_scim_bridge_users')).to.equal(4);
  });

  it('fails the scrape when a source fails, rather than showing stale numbers', async () => {
    const metrics = new BridgeMetrics({ processMetrics: false });
    metrics.readFrom(quietSources({ users: () => Promise.reject(new Error('database is locked')) }));
    let failure: unknown;
    await metrics.render().catch((error: unknown) => (failure = error));
    expect(String(failure)).to.include('database is locked');
  });
});

describe('Metrics listener', () => {
  it('serves /metrics in the Prometheus text format, 404 elsewhere, 500 when collecting fails', async () => {
    const metrics = new BridgeMetrics({ processMetrics: false });
    const listener = await startMetricsListener(metrics, '127.0.0.1', 0);
    try {
      expect(listener.url).to.match(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const ok = await fetch(listener.url);
      expect(ok.status).to.equal(200);
      expect(ok.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
      expect(await ok.text()).to.include('# TYPE matrix_scim_bridge_scim_requests_total counter');
      expect((await fetch(listener.url.replace('/metrics', '/'))).status).to.equal(404);
      metrics.readFrom(quietSources({ groups: () => Promise.reject(new Error('boom')) }));
      const failed = await fetch(listener.url);
      expect(failed.status).to.equal(500);
      expect(await failed.text()).to.not.include('boom');
    } finally {
      await listener.close();
    }
  });
});

describe('Store: journal statistics', () => {
  it('counts open entries by action and gives the oldest one\'s creation time', async () => {
    const store = await openSqliteStore(':memory:');
    try {
      expect(await store.journalStats()).to.deep.equal({ pendingByAction: {}, oldestCreated: null });
      const before = new Date().toISOString();
      await store.openJournal('u1', 'sync');
      await store.openJournal('u2', 'sync');
      await store.openJournal('g1', 'group-sync');
      const stats = await store.journalStats();
      expect(stats.pendingByAction).to.deep.equal({ sync: 2, 'group-sync': 1 });
      expect(stats.oldestCreated! >= before).to.equal(true);
      await store.completeJournal('u1', 'sync');
      await store.completeJournal('u2', 'sync');
      await store.completeJournal('g1', 'group-sync');
      expect(await store.journalStats()).to.deep.equal({ pendingByAction: {}, oldestCreated: null });
    } finally {
      await store.close();
    }
  });
});

describe('Readiness probe', () => {
  it('is ready when every check passes, and shows their details', async () => {
    const probe = readinessProbe([
      { name: 'homeserver', run: async () => undefined, cacheMs: 5000, timeoutMs: 1000 },
      { name: 'store', run: async () => ({ users: 3 }), cacheMs: 0, timeoutMs: 1000 },
    ]);
    expect(await probe()).to.deep.equal({ ready: true, checks: { homeserver: { status: 'ok' }, store: { status: 'ok', users: 3 } } });
  });

  it('says which check fails and why', async () => {
    const probe = readinessProbe([
      { name: 'homeserver', run: () => Promise.reject(new Error('the homeserver is unreachable (ECONNREFUSED)')), cacheMs: 0, timeoutMs: 1000 },
      { name: 'store', run: async () => ({ users: 3 }), cacheMs: 0, timeoutMs: 1000 },
    ]);
    const report = await probe();
    expect(report.ready).to.equal(false);
    expect(report.checks['homeserver']).to.deep.equal({ status: 'failing', error: 'the homeserver is unreachable (ECONNREFUSED)' });
    expect(report.checks['store']?.status).to.equal('ok');
  });

  it('asks the homeserver at most once per cache period, however many probes come', async () => {
    let now = 1_000_000;
    let calls = 0;
    const probe = readinessProbe(
      [{ name: 'homeserver', run: async () => void calls++, cacheMs: 5000, timeoutMs: 1000 }],
      () => now,
    );
    await Promise.all(Array.from({ length: 50 }, () => probe()));
    now += 4999;
    await probe();
    expect(calls).to.equal(1);
    now += 1;
    await probe();
    expect(calls).to.equal(2);
  });

  it('fails a check that does not answer in time', async () => {
    const probe = readinessProbe([{ name: 'homeserver', run: () => new Promise(() => undefined), cacheMs: 0, timeoutMs: 20 }]);
    const report = await probe();
    expect(report.ready).to.equal(false);
    expect(report.checks['homeserver']?.error).to.match(/no answer within 20 ms/);
  });
});

describe('Admin room: notices pending, for the metrics', () => {
  it('counts notices held while the homeserver is unreachable, and none once they are posted', async () => {
    let down = true;
    const posted: string[] = [];
    const reporter = new AdminRoomReporter(
      {
        sendNotice: async (text) => {
          if (down) throw new HomeserverError('the homeserver is unreachable (ECONNREFUSED)', 0, undefined, true);
          posted.push(text);
        },
      },
      { burstThreshold: 10, windowMs: 1000, retryDelaysMs: [], redeliverAfterMs: 60_000 },
    );
    try {
      expect(reporter.pendingCount).to.equal(0);
      reporter.report({ kind: 'created', subject: 'user', userName: 'alice', matrixId: '@alice:example.org', source: 'entra' });
      expect(reporter.pendingCount, 'queued, not yet rendered').to.equal(1);
      await reporter.flush();
      expect(reporter.pendingCount, 'held during the outage').to.equal(1);
      down = false;
      await reporter.flush();
      expect(reporter.pendingCount).to.equal(0);
      expect(posted.length).to.be.greaterThan(0);
    } finally {
      await reporter.stop();
    }
  });
});
