import http from 'node:http';
import type Koa from 'koa';
import { declaresTooLargeBody } from './http.ts';

/**
 * Time limits of the SCIM listener. An IdP sends small JSON requests (at most 1 MiB),
 * often through a reverse proxy that keeps its connections to the bridge open between them.
 */
export const SCIM_LISTENER_TIMEOUTS = {
  /** From the first byte of a request to the end of its headers (a few hundred bytes). */
  headersTimeoutMs: 20_000,
  /**
   * From the first byte to the end of the body. 1 MiB in 30 s needs only 35 KB/s, so a slow
   * client is not cut off, while a client that stalls cannot hold a connection for
   * Node's default of 300 s.
   */
  requestTimeoutMs: 30_000,
  /**
   * Idle time before the bridge closes a kept-alive connection. Longer than the 60 s idle
   * timeout of common proxies (nginx's upstream keepalive_timeout, AWS ALB), so that the
   * proxy closes idle connections first and never sends a request on a connection the
   * bridge is closing at that moment (which the IdP would see as a 502).
   */
  keepAliveTimeoutMs: 65_000,
  /** How often Node checks the two timeouts above (its default, 30 s, would make 20 s up to 50 s). */
  checkIntervalMs: 5_000,
} as const;

/**
 * Largest request head (request line and headers). Node's default, 16 KiB, answers a GET
 * whose filter has a few hundred terms with a bare 431; 128 KiB lets every filter within
 * the filter limits (1,000 comparisons) arrive and be answered as SCIM.
 */
export const SCIM_MAX_HEADER_BYTES = 128 * 1024;

/**
 * The HTTP server of the SCIM listener, serving `app` with the limits above.
 *
 * A request whose Content-Length is over the body limit is answered 413 with
 * `Connection: close` by the app's error middleware before its body is read. For
 * `Expect: 100-continue` it is answered without the interim 100, so that a client that
 * asks first never sends the body.
 */
export function createScimServer(app: Koa): http.Server {
  const handle = app.callback();
  const server = http.createServer(
    {
      headersTimeout: SCIM_LISTENER_TIMEOUTS.headersTimeoutMs,
      requestTimeout: SCIM_LISTENER_TIMEOUTS.requestTimeoutMs,
      keepAliveTimeout: SCIM_LISTENER_TIMEOUTS.keepAliveTimeoutMs,
      connectionsCheckingInterval: SCIM_LISTENER_TIMEOUTS.checkIntervalMs,
      maxHeaderSize: SCIM_MAX_HEADER_BYTES,
    },
    handle,
  );
  server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (!declaresTooLargeBody(req)) res.writeContinue();
    void handle(req, res);
  });
  return server;
}
