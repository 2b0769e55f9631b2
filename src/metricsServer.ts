import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { logger } from './log.ts';
import type { BridgeMetrics } from './metrics.ts';

const log = logger('Metrics');

export interface MetricsListener {
  /** http://host:port/metrics */
  url: string;
  close(): Promise<void>;
}

/**
 * The metrics listener: its own HTTP server, so that Prometheus is kept off the SCIM port
 * (which faces the IdP) and can be bound to an internal address. It serves `GET /metrics`
 * and nothing else.
 */
export async function startMetricsListener(metrics: BridgeMetrics, bindAddress: string, port: number): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: the metrics are at /metrics\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('only GET\n');
      return;
    }
    metrics.render().then(
      ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(req.method === 'HEAD' ? undefined : body),
      (error: unknown) => {
        log.error('cannot collect the metrics', error);
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('cannot collect the metrics: see the bridge log\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, bindAddress, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
