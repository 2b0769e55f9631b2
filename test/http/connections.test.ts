import { expect } from 'chai';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { userBackend } from '../../src/provisioning/backends.ts';
import { SCIM_ERROR_SCHEMA } from '../../src/scim/errors.ts';
import { createScimServer, SCIM_LISTENER_TIMEOUTS } from '../../src/scim/listener.ts';
import { createScimApp } from '../../src/scim/server.ts';
import { startHttpBridge, TOKEN, type HttpBridge } from './harness.ts';

/** What a raw client saw on one connection, up to the server closing it. */
interface Exchange {
  status: number;
  headers: Map<string, string>;
  body: string;
  /** Everything before the final response (e.g. an interim 100 Continue). */
  before: string;
}

const MiB = 1024 * 1024;

/**
 * Opens a connection, lets `send` write on it, and resolves with the response once the
 * server has closed the connection; rejects when the server keeps it open longer than `withinMs`.
 */
function exchange(port: number, send: (socket: net.Socket) => void, withinMs = 2_000): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${withinMs} ms`));
    }, withinMs);
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    // Writing after the server closed fails (EPIPE, ECONNRESET): only the answer matters here.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(received).toString('latin1');
      const start = text.lastIndexOf('HTTP/1.1 ');
      const headEnd = text.indexOf('\r\n\r\n', start);
      if (start < 0 || headEnd < 0) {
        reject(new Error(`no complete response before the connection closed: ${JSON.stringify(text.slice(0, 200))}`));
        return;
      }
      const [statusLine = '', ...lines] = text.slice(start, headEnd).split('\r\n');
      const headers = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(headEnd + 4), before: text.slice(0, start) });
    });
    socket.on('connect', () => send(socket));
  });
}

function head(lines: string[]): string {
  return [...lines, `Authorization: Bearer ${TOKEN}`, 'Host: 127.0.0.1', '', ''].join('\r\n');
}

function expectScim413(reply: Exchange): void {
  expect(reply.status).to.equal(413);
  expect(reply.headers.get('connection')).to.equal('close');
  expect(reply.headers.get('content-type')).to.match(/^application\/scim\+json/);
  const body = JSON.parse(reply.body) as Record<string, unknown>;
  expect(body['schemas']).to.deep.equal([SCIM_ERROR_SCHEMA]);
  expect(body['status']).to.equal('413');
  expect(body['detail']).to.match(/larger than 1048576 bytes/);
}

describe('SCIM listener connections', () => {
  let bridge: HttpBridge;
  let server: http.Server;
  let port: number;
  let base: string;

  beforeEach(async () => {
    bridge = await startHttpBridge();
    const app = createScimApp({
      baseUrl: () => base,
      tokens: [{ name: 'test-idp', token: TOKEN }],
      users: userBackend(bridge.users, bridge.store),
      groups: bridge.groups,
      readiness: async () => ({ ready: true, checks: {} }),
    });
    server = createScimServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}/scim/v2`;
  });

  afterEach(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await bridge.close();
  });

  it('answers a declared 1 TB body with 413 at once, unread, and closes the connection', async () => {
    const began = Date.now();
    const reply = await exchange(port, (socket) => {
      socket.write(head(['POST /scim/v2/Users HTTP/1.1', 'Content-Type: application/scim+json', 'Content-Length: 1000000000000']));
      socket.write('{"userName": "');
    });
    expectScim413(reply);
    expect(Date.now() - began).to.be.below(2_000);
    expect(await bridge.store.listUsers({ startIndex: 1, count: 10 })).to.have.property('totalResults', 0);
  });

  it('refuses a declared body over the limit before authentication', async () => {
    const reply = await exchange(port, (socket) =>
      socket.write(['POST /scim/v2/Users HTTP/1.1', 'Host: 127.0.0.1', `Content-Length: ${MiB + 1}`, '', ''].join('\r\n')),
    );
    expectScim413(reply);
  });

  it('answers Expect: 100-continue over the limit with 413 and no 100, so the body is never sent', async () => {
    const reply = await exchange(port, (socket) =>
      socket.write(head(['POST /scim/v2/Users HTTP/1.1', 'Content-Length: 1000000000000', 'Expect: 100-continue'])),
    );
    expectScim413(reply);
    expect(reply.before).to.equal('');
  });

  it('answers a chunked body that passes the limit with 413 and closes the connection', async () => {
    const reply = await exchange(port, (socket) => {
      socket.write(head(['POST /scim/v2/Users HTTP/1.1', 'Content-Type: application/scim+json', 'Transfer-Encoding: chunked']));
      const chunk = Buffer.alloc(64 * 1024, 'a');
      // 1 MiB and a bit, and no last chunk: the body never ends on its own.
      for (let i = 0; i < 17; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk.toString('latin1')}\r\n`);
    });
    expectScim413(reply);
  });

  it('still serves normal requests, keeping the connection alive between them', async () => {
    const user = { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'alice@example.com' };
    const created = await fetch(`${base}/Users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/scim+json' },
      body: JSON.stringify(user),
    });
    expect(created.status).to.equal(201);
    expect(created.headers.get('connection')).to.not.equal('close');
    const listed = await fetch(`${base}/Users`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(listed.status).to.equal(200);
    expect(((await listed.json()) as { totalResults: number }).totalResults).to.equal(1);
  });

  it('accepts a body just under the limit sent chunked', async () => {
    const padding = 'x'.repeat(MiB - 200);
    const reply = await exchange(port, (socket) => {
      socket.write(head(['POST /scim/v2/Users HTTP/1.1', 'Content-Type: application/scim+json', 'Transfer-Encoding: chunked', 'Connection: close']));
      const body = JSON.stringify({ schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: 'bob@example.com', nickName: padding });
      socket.write(`${Buffer.byteLength(body).toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    });
    expect(reply.status).to.not.equal(413);
    expect(reply.status).to.be.below(500);
  });

  it('limits how long a request may take and how long an idle connection stays open', () => {
    expect(server.headersTimeout).to.equal(SCIM_LISTENER_TIMEOUTS.headersTimeoutMs);
    expect(server.requestTimeout).to.equal(SCIM_LISTENER_TIMEOUTS.requestTimeoutMs);
    expect(server.keepAliveTimeout).to.equal(SCIM_LISTENER_TIMEOUTS.keepAliveTimeoutMs);
    expect(server.headersTimeout).to.be.below(server.requestTimeout);
  });
});
