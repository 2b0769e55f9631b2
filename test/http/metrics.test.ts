import { expect } from 'chai';
import { BridgeMetrics } from '../../src/metrics.ts';
import type { ReadinessReport } from '../../src/scim/server.ts';
import { startHttpBridge, type HttpBridge } from './harness.ts';

const CORE_USER = 'urn:ietf:params:scim:schemas:core:2.0:User';

/** The value of the sample of `name` whose labels include all of `labels` (0 when absent). */
function value(text: string, name: string, labels: Record<string, string>): number {
  const line = text
    .split('\n')
    .find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('Metrics over HTTP: the SCIM counters move with each answered request', () => {
  let bridge: HttpBridge;
  let metrics: BridgeMetrics;
  let readiness: ReadinessReport = { ready: true, checks: {} };

  beforeEach(async () => {
    metrics = new BridgeMetrics({ processMetrics: false });
    bridge = await startHttpBridge({}, {}, {
      onRequest: (sample) => metrics.observeScimRequest(sample),
      readiness: async () => readiness,
    });
  });
  afterEach(() => bridge.close());

  const scrape = async () => (await metrics.render()).body;

  it('labels requests with the route pattern, the status and the IdP token name, never the raw path', async () => {
    const created = await bridge.call('POST', '/Users', { schemas: [CORE_USER], userName: 'alice@example.com' });
    expect(created.status).to.equal(201);
    const id = String(created.body['id']);
    expect((await bridge.call('GET', `/Users/${id}`)).status).to.equal(200);
    expect((await bridge.call('GET', '/Users/no-such-id')).status).to.equal(404);

    const text = await scrape();
    const total = 'matrix_scim_bridge_scim_requests_total';
    expect(value(text, total, { method: 'POST', route: '/Users', status: '201', idp: 'test-idp' })).to.equal(1);
    expect(value(text, total, { method: 'GET', route: '/Users/:id', status: '200', idp: 'test-idp' })).to.equal(1);
    expect(value(text, total, { method: 'GET', route: '/Users/:id', status: '404', idp: 'test-idp' })).to.equal(1);
    expect(value(text, 'matrix_scim_bridge_scim_request_duration_seconds_count', { route: '/Users', status: '201' })).to.equal(1);
    expect(text).to.not.include(id);
  });

  it('counts refused tokens as idp="none" and unknown paths as route="unmatched"', async () => {
    expect((await bridge.call('GET', '/Users', undefined, { authorization: 'Bearer wrong-token-0123456789' })).status).to.equal(401);
    expect((await bridge.call('GET', '/NoSuchThing/123')).status).to.equal(404);
    const text = await scrape();
    const total = 'matrix_scim_bridge_scim_requests_total';
    expect(value(text, total, { method: 'GET', route: '/Users', status: '401', idp: 'none' })).to.equal(1);
    expect(value(text, total, { route: 'unmatched', status: '404' })).to.equal(1);
    expect(text).to.not.include('NoSuchThing');
  });

  it('answers /health/ready 503 naming the failing check, and 200 once it passes', async () => {
    const ready = bridge.base.replace('/scim/v2', '/health/ready');
    readiness = {
      ready: false,
      checks: { homeserver: { status: 'failing', error: 'the homeserver is unreachable (ECONNREFUSED)' }, store: { status: 'ok', users: 0 } },
    };
    const down = await fetch(ready);
    expect(down.status).to.equal(503);
    expect(await down.json()).to.deep.equal({
      status: 'unavailable',
      homeserver: { status: 'failing', error: 'the homeserver is unreachable (ECONNREFUSED)' },
      store: { status: 'ok', users: 0 },
    });
    readiness = { ready: true, checks: { homeserver: { status: 'ok' } } };
    const up = await fetch(ready);
    expect(up.status).to.equal(200);
    expect(await up.json()).to.deep.equal({ status: 'ok', homeserver: { status: 'ok' } });
    const text = await scrape();
    expect(value(text, 'matrix_scim_bridge_scim_requests_total', { route: '/health/ready', status: '503', idp: 'none' })).to.equal(1);
  });
});
