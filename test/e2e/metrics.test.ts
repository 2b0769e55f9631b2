// Metrics and readiness against the real Synapse: a POST /Users moves the SCIM and
// homeserver counters on the metrics listener, and /health/ready tells the truth while
// Synapse is stopped (503, naming the homeserver) and after it is back (200).

import { expect } from 'chai';
import type { BridgeHandles } from '../../src/app.ts';
import { homeserver, startBridge, workFile } from './fixture.ts';
import { AdminApi, ScimClient, waitFor, type Json } from './helpers.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

/** Sum of the samples of `name` whose labels include all of `labels`. */
function total(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('Metrics and readiness against Synapse', function () {
  let bridge: BridgeHandles | undefined;
  let scim: ScimClient;
  let admin: AdminApi;
  let synapseUp = true;

  before(async function () {
    const hs = homeserver();
    bridge = await startBridge({ database: { path: workFile('metrics-test.db') }, metrics: { enabled: true, port: 0 } });
    scim = new ScimClient(bridge.scimUrl, hs.scimToken);
    admin = new AdminApi(hs.synapse.url, hs.admin.accessToken);
  });

  after(async function () {
    // Leave the shared homeserver running for the other test files.
    if (!synapseUp) await homeserver().synapse.start();
    await bridge?.stop();
  });

  const scrape = async (): Promise<string> => {
    const res = await fetch(String(bridge?.metricsUrl));
    expect(res.status).to.equal(200);
    return res.text();
  };
  const ready = async (): Promise<{ status: number; body: Json }> => {
    const res = await fetch(bridge!.scimUrl.replace(/\/scim\/v2$/, '/health/ready'));
    return { status: res.status, body: (await res.json()) as Json };
  };

  it('serves metrics on their own listener when metrics.enabled', () => {
    expect(bridge?.metricsUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(bridge?.metricsUrl).to.not.include(new URL(bridge!.scimUrl).port);
  });

  it('moves the SCIM and homeserver counters after a POST /Users, and counts the user', async () => {
    const created201 = { method: 'POST', route: '/Users', status: '201', idp: 'test-idp' };
    const before = await scrape();
    const res = await scim.post('/Users', {
      schemas: [CORE_USER],
      userName: 'mia.metrics@example.com',
      displayName: 'Mia Metrics',
      emails: [{ value: 'mia.metrics@example.com', type: 'work', primary: true }],
    });
    expect(res.status, res.text).to.equal(201);
    const matrixId = String((await bridge!.store.getUser(String(res.body['id'])))?.matrixId);
    expect(await admin.user(matrixId), 'the user exists in Synapse').to.not.equal(undefined);

    const after = await scrape();
    const requests = 'matrix_scim_bridge_scim_requests_total';
    expect(total(after, requests, created201) - total(before, requests, created201)).to.equal(1);
    const latency = 'matrix_scim_bridge_scim_request_duration_seconds_count';
    expect(total(after, latency, created201) - total(before, latency, created201)).to.equal(1);
    const calls = 'matrix_scim_bridge_homeserver_requests_total';
    for (const kind of ['admin_user_get', 'admin_user_put', 'threepid_lookup']) {
      expect(total(after, calls, { kind, outcome: 'ok' }) - total(before, calls, { kind, outcome: 'ok' }), kind).to.be.greaterThan(0);
    }
    expect(after, 'no Matrix ID in a label').to.not.include(encodeURIComponent(matrixId));
    expect(total(after, 'matrix_scim_bridge_users')).to.equal(await scim.count());
    expect(after).to.match(/^matrix_scim_bridge_journal_oldest_age_seconds \d/m);
  });

  it('answers /health/ready 503 naming the homeserver while Synapse is stopped, and 200 once it is back', async function () {
    const up = await ready();
    expect(up.status).to.equal(200);
    expect(up.body['homeserver']).to.deep.equal({ status: 'ok' });

    synapseUp = false;
    await homeserver().synapse.stop();
    // The homeserver check is cached for a few seconds: wait out the last good answer.
    const down = await waitFor(async () => {
      const r = await ready();
      return r.status === 503 && r;
    }, 20_000, '/health/ready to answer 503');
    expect(down.body['status']).to.equal('unavailable');
    expect((down.body['homeserver'] as Json)['status']).to.equal('failing');
    expect(String((down.body['homeserver'] as Json)['error'])).to.match(/unreachable|no answer/);
    expect((down.body['store'] as Json)['status'], 'the store is fine').to.equal('ok');
    expect((await fetch(bridge!.scimUrl.replace(/\/scim\/v2$/, '/health/live'))).status, 'liveness is not the homeserver').to.equal(200);

    await homeserver().synapse.start();
    synapseUp = true;
    const back = await waitFor(async () => {
      const r = await ready();
      return r.status === 200 && r;
    }, 20_000, '/health/ready to answer 200 again');
    expect(back.body['status']).to.equal('ok');
    const text = await scrape();
    expect(total(text, 'matrix_scim_bridge_homeserver_requests_total', { kind: 'versions', outcome: 'transient' })).to.be.greaterThan(0);
  });
});
