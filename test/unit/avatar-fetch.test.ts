import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AvatarFetchError, fetchAvatar, type AvatarFetchOptions } from '../../src/matrix/avatarFetch.ts';
import { tinyPng } from '../support/files.ts';

const PNG = tinyPng();

/** Routes of a loopback server: each answers with a status, headers and a body (or never). */
type Route = { status?: number; headers?: Record<string, string>; body?: Buffer | string; hang?: boolean; chunked?: boolean };

async function serve(routes: Record<string, Route>): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (!route) return void res.writeHead(404).end();
    if (route.hang) return;
    const headers = { ...route.headers };
    if (!route.chunked && route.body !== undefined) headers['content-length'] = String(Buffer.byteLength(route.body));
    res.writeHead(route.status ?? 200, headers);
    res.end(route.body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

const loopbackAllowed: AvatarFetchOptions = {
  maxBytes: 10_000,
  timeoutMs: 2_000,
  allowedContentTypes: ['image/png', 'image/jpeg'],
  allowHttp: true,
  allowedNetworks: ['127.0.0.1/32'],
};

async function refusal(url: string, options: AvatarFetchOptions): Promise<string> {
  try {
    await fetchAvatar(url, options);
  } catch (error) {
    expect(error).to.be.instanceOf(AvatarFetchError);
    return (error as Error).message;
  }
  throw new Error(`${url} was fetched`);
}

describe('avatar fetch', () => {
  let site: { url: string; close(): Promise<void> };

  before(async () => {
    site = await serve({
      '/a.png': { headers: { 'content-type': 'image/png' }, body: PNG },
      '/big.png': { headers: { 'content-type': 'image/png' }, body: Buffer.concat([PNG, Buffer.alloc(20_000)]) },
      '/big-chunked.png': { headers: { 'content-type': 'image/png' }, body: Buffer.concat([PNG, Buffer.alloc(20_000)]), chunked: true },
      '/page': { headers: { 'content-type': 'text/html' }, body: '<html></html>' },
      '/liar.png': { headers: { 'content-type': 'image/png' }, body: '<svg onload="x"/>' },
      '/to-metadata': { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data' }, body: '' },
      '/to-a': { status: 301, headers: { location: '/a.png' }, body: '' },
      '/hang.png': { hang: true },
    });
  });
  after(() => site.close());

  it('fetches an image from an allowed network', async () => {
    const image = await fetchAvatar(`${site.url}/a.png`, loopbackAllowed);
    expect(image.contentType).to.equal('image/png');
    expect(image.data.equals(PNG)).to.equal(true);
  });

  it('follows a redirect to an allowed place', async () => {
    expect((await fetchAvatar(`${site.url}/to-a`, loopbackAllowed)).data.equals(PNG)).to.equal(true);
  });

  it('refuses loopback unless the operator allowed it', async () => {
    expect(await refusal(`${site.url}/a.png`, { ...loopbackAllowed, allowedNetworks: [] })).to.match(/127\.0\.0\.1, a private or reserved address/);
  });

  it('refuses plain http unless allowed', async () => {
    expect(await refusal(`${site.url}/a.png`, { ...loopbackAllowed, allowHttp: false })).to.match(/http: URLs are not fetched/);
  });

  it('refuses other schemes', async () => {
    expect(await refusal('file:///etc/passwd', loopbackAllowed)).to.match(/file: URLs are not fetched/);
    expect(await refusal('ftp://example.org/a.png', loopbackAllowed)).to.match(/ftp: URLs/);
  });

  it('refuses cloud metadata, IPv6 loopback and private ranges', async () => {
    const options = { ...loopbackAllowed, allowedNetworks: [] };
    expect(await refusal('http://169.254.169.254/latest/meta-data', options)).to.match(/private or reserved/);
    expect(await refusal('http://[::1]/a.png', options)).to.match(/private or reserved/);
    expect(await refusal('http://10.1.2.3/a.png', options)).to.match(/private or reserved/);
    expect(await refusal('http://[::ffff:127.0.0.1]/a.png', options)).to.match(/private or reserved/);
  });

  it('re-checks every redirect hop', async () => {
    expect(await refusal(`${site.url}/to-metadata`, loopbackAllowed)).to.match(/169\.254\.169\.254/);
  });

  it('refuses images over the size limit, declared or streamed', async () => {
    expect(await refusal(`${site.url}/big.png`, loopbackAllowed)).to.match(/more than the 10000 allowed/);
    expect(await refusal(`${site.url}/big-chunked.png`, loopbackAllowed)).to.match(/larger than the 10000 bytes/);
  });

  it('refuses what is not an allowed image type, or lies about it', async () => {
    expect(await refusal(`${site.url}/page`, loopbackAllowed)).to.match(/text\/html is not an allowed image type/);
    expect(await refusal(`${site.url}/liar.png`, loopbackAllowed)).to.match(/not the image\/png image it claims/);
  });

  it('gives up after the time limit', async () => {
    expect(await refusal(`${site.url}/hang.png`, { ...loopbackAllowed, timeoutMs: 200 })).to.match(/no image within 200 ms/);
  });
});
