import { expect } from 'chai';
import { lookup } from 'node:dns/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AvatarFetchError,
  fetchAvatar,
  isBlockedAddress,
  type AvatarFetchFailure,
  type AvatarFetchOptions,
} from '../../src/matrix/avatarFetch.ts';

/** A valid 1×1 RGBA PNG, made with Python's zlib and struct. */
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGPQ6w7/DwAECwIQP82uTwAAAABJRU5ErkJggg==', 'base64');
/** The leading bytes of the other formats: enough for the sniffer, which only reads magic numbers. */
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00]);
const GIF = Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1');
const WEBP = Buffer.concat([Buffer.from('RIFF'), Buffer.from([0x1a, 0, 0, 0]), Buffer.from('WEBPVP8L'), Buffer.alloc(8)]);

/** What a route of the loopback server does: answer, never answer, or send part of the body and stall. */
type Route = { status?: number; headers?: Record<string, string>; body?: Buffer | string; chunked?: boolean; hang?: boolean; stall?: boolean };

interface Site {
  url: string;
  hits: string[];
  close(): Promise<void>;
}

async function serve(routes: Record<string, Route>): Promise<Site> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(req.url ?? '');
    const route = routes[req.url ?? ''];
    if (!route) return void res.writeHead(404).end();
    if (route.hang) return;
    const headers = { ...route.headers };
    if (route.stall) {
      res.writeHead(200, { ...headers, 'content-length': String(PNG.length * 10) });
      res.write(PNG);
      return;
    }
    if (!route.chunked && route.body !== undefined) headers['content-length'] = String(Buffer.byteLength(route.body));
    res.writeHead(route.status ?? 200, headers);
    if (route.chunked && route.body !== undefined) {
      // Several writes, so the size limit has to be enforced while streaming.
      const body = Buffer.from(route.body);
      for (let at = 0; at < body.length; at += 1024) res.write(body.subarray(at, at + 1024));
    }
    res.end(route.chunked ? undefined : route.body);
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

const loopbackAllowed: AvatarFetchOptions = {
  maxBytes: 10_000,
  timeoutMs: 5_000,
  allowedContentTypes: ['image/png', 'image/jpeg', 'image/gif', 'image/webp'],
  allowHttp: true,
  allowedNetworks: ['127.0.0.1/32'],
};
const noExceptions: AvatarFetchOptions = { ...loopbackAllowed, allowedNetworks: [] };

async function refusal(url: string, options: AvatarFetchOptions): Promise<{ reason: AvatarFetchFailure; message: string }> {
  try {
    await fetchAvatar(url, options);
  } catch (error) {
    expect(error).to.be.instanceOf(AvatarFetchError);
    const { reason, message } = error as AvatarFetchError;
    return { reason, message };
  }
  throw new Error(`${url} was fetched`);
}

describe('avatar fetch', () => {
  let site: Site;

  before(async () => {
    site = await serve({
      '/a.png': { headers: { 'content-type': 'image/png' }, body: PNG },
      '/a-with-params.png': { headers: { 'content-type': 'Image/PNG; charset=binary' }, body: PNG },
      '/a.jpg': { headers: { 'content-type': 'image/jpeg' }, body: JPEG },
      '/a.gif': { headers: { 'content-type': 'image/gif' }, body: GIF },
      '/a.webp': { headers: { 'content-type': 'image/webp' }, body: WEBP },
      '/big.png': { headers: { 'content-type': 'image/png' }, body: Buffer.concat([PNG, Buffer.alloc(20_000)]) },
      '/big-chunked.png': { headers: { 'content-type': 'image/png' }, body: Buffer.concat([PNG, Buffer.alloc(20_000)]), chunked: true },
      '/page': { headers: { 'content-type': 'text/html' }, body: '<html></html>' },
      '/untyped': { body: PNG },
      '/liar.png': { headers: { 'content-type': 'image/png' }, body: '<svg onload="alert(1)"/>' },
      '/gif-as.png': { headers: { 'content-type': 'image/png' }, body: GIF },
      '/to-metadata': { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data' }, body: '' },
      '/to-file': { status: 302, headers: { location: 'file:///etc/passwd' }, body: '' },
      '/to-a': { status: 301, headers: { location: '/a.png' }, body: '' },
      '/to-to-a': { status: 307, headers: { location: '/to-a' }, body: '' },
      '/loop': { status: 302, headers: { location: '/loop' }, body: '' },
      '/hang.png': { hang: true },
      '/stall.png': { headers: { 'content-type': 'image/png' }, stall: true },
    });
  });
  after(() => site.close());

  it('fetches an image from a network the operator allowed', async () => {
    const image = await fetchAvatar(`${site.url}/a.png`, loopbackAllowed);
    expect(image.contentType).to.equal('image/png');
    expect(image.data.equals(PNG)).to.equal(true);
  });

  it('recognises JPEG, GIF and WebP by their bytes, and ignores content-type parameters', async () => {
    for (const [path, type] of [['/a.jpg', 'image/jpeg'], ['/a.gif', 'image/gif'], ['/a.webp', 'image/webp'], ['/a-with-params.png', 'image/png']]) {
      expect((await fetchAvatar(`${site.url}${path}`, loopbackAllowed)).contentType, path).to.equal(type);
    }
  });

  it('follows redirects to allowed places', async () => {
    expect((await fetchAvatar(`${site.url}/to-to-a`, loopbackAllowed)).data.equals(PNG)).to.equal(true);
  });

  it('resolves host names and connects to the checked address', async function () {
    const addresses = await lookup('localhost', { all: true });
    if (addresses.length !== 1 || addresses[0]!.address !== '127.0.0.1') this.skip(); // this host's localhost is not just 127.0.0.1
    const url = site.url.replace('127.0.0.1', 'localhost');
    expect((await fetchAvatar(`${url}/a.png`, loopbackAllowed)).data.equals(PNG)).to.equal(true);
    const refused = await refusal(`${url}/a.png`, noExceptions);
    expect(refused.reason).to.equal('blocked-address');
    expect(refused.message).to.equal('localhost resolves to 127.0.0.1, a private or reserved address the bridge does not fetch from');
  });

  it('connects to the address it checked, so DNS cannot change the answer afterwards (rebinding)', async () => {
    const port = new URL(site.url).port;
    const answers = [[{ address: '127.0.0.1', family: 4 }], [{ address: '10.0.0.1', family: 4 }]];
    const asked: string[] = [];
    const resolver = async (hostname: string) => {
      asked.push(hostname);
      return answers.shift() ?? [];
    };
    // avatar.invalid cannot resolve in real DNS: the image can only have come from the checked address.
    const image = await fetchAvatar(`http://avatar.invalid:${port}/a.png`, { ...loopbackAllowed, resolver });
    expect(image.data.equals(PNG)).to.equal(true);
    expect(asked).to.deep.equal(['avatar.invalid']);
  });

  it('refuses a host if any of its addresses is blocked', async () => {
    const resolver = async () => [
      { address: '93.184.215.14', family: 4 },
      { address: '192.168.1.10', family: 4 },
    ];
    const refused = await refusal('https://photos.example.com/a.png', { ...noExceptions, resolver });
    expect(refused).to.deep.equal({
      reason: 'blocked-address',
      message: 'photos.example.com resolves to 192.168.1.10, a private or reserved address the bridge does not fetch from',
    });
  });

  it('keeps the time limit while DNS is slow', async () => {
    const resolver = () => new Promise<{ address: string; family: number }[]>(() => {});
    expect((await refusal('https://slow-dns.example.com/a.png', { ...noExceptions, timeoutMs: 300, resolver })).reason).to.equal('timeout');
  });

  it('refuses loopback unless the operator allowed it, without connecting', async () => {
    const before = site.hits.length;
    const refused = await refusal(`${site.url}/a.png`, noExceptions);
    expect(refused).to.deep.equal({
      reason: 'blocked-address',
      message: '127.0.0.1 resolves to 127.0.0.1, a private or reserved address the bridge does not fetch from',
    });
    expect(site.hits.length).to.equal(before);
  });

  it('refuses plain http unless allowed', async () => {
    expect(await refusal(`${site.url}/a.png`, { ...loopbackAllowed, allowHttp: false })).to.deep.equal({
      reason: 'scheme',
      message: 'http: URLs are not fetched (https only)',
    });
  });

  it('refuses schemes other than http and https', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.org/a.png', 'data:image/png;base64,AAAA', 'gopher://example.org/']) {
      expect((await refusal(url, loopbackAllowed)).reason, url).to.equal('scheme');
    }
  });

  it('refuses cloud metadata, IPv6 loopback, private ranges and their disguises', async () => {
    for (const url of [
      'http://169.254.169.254/latest/meta-data',
      'http://[::1]/a.png',
      'http://10.1.2.3/a.png',
      'http://192.168.1.1/',
      'http://100.64.0.1/',
      'http://0.0.0.0/',
      'http://[::ffff:127.0.0.1]/a.png', // IPv4-mapped
      'http://[::ffff:a9fe:a9fe]/', // IPv4-mapped metadata, in hex
      'http://[64:ff9b::a9fe:a9fe]/', // NAT64 of the metadata address
      'http://2130706433/', // 127.0.0.1 as one decimal number
      'http://0x7f.1/', // 127.0.0.1 in hex shorthand
      'http://[fe80::1]/',
      'http://[fd00::1]/',
    ]) {
      const refused = await refusal(url, noExceptions);
      expect(refused.reason, url).to.equal('blocked-address');
      expect(refused.message, url).to.match(/a private or reserved address/);
    }
  });

  it('tells blocked addresses from public ones, and lets allowed networks through', () => {
    for (const address of [
      '127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.0.1', '169.254.169.254', '100.64.1.1', '0.0.0.0', '224.0.0.1',
      '255.255.255.255', '::', '::1', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1', '::ffff:10.0.0.1', '::ffff:7f00:1',
      '64:ff9b::7f00:1', '2002:a9fe:a9fe::1',
    ]) {
      expect(isBlockedAddress(address), address).to.equal(true);
    }
    for (const address of ['93.184.215.14', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '64:ff9b::808:808', '::ffff:8.8.8.8']) {
      expect(isBlockedAddress(address), address).to.equal(false);
    }
    expect(isBlockedAddress('10.1.2.3', ['10.0.0.0/8'])).to.equal(false);
    expect(isBlockedAddress('10.1.2.3', ['10.1.2.4'])).to.equal(true);
    expect(isBlockedAddress('fd00::5', ['fd00::/64'])).to.equal(false);
  });

  it('says which allowedNetworks entry is wrong', async () => {
    expect(await refusal(`${site.url}/a.png`, { ...loopbackAllowed, allowedNetworks: ['127.0.0.1/33'] })).to.deep.equal({
      reason: 'bad-config',
      message: 'allowedNetworks entry "127.0.0.1/33" is not an IP address or CIDR',
    });
    expect((await refusal(`${site.url}/a.png`, { ...loopbackAllowed, allowedNetworks: ['intranet'] })).reason).to.equal('bad-config');
  });

  it('re-checks every redirect hop', async () => {
    const refused = await refusal(`${site.url}/to-metadata`, loopbackAllowed);
    expect(refused.reason).to.equal('blocked-address');
    expect(refused.message).to.match(/^169\.254\.169\.254 resolves to 169\.254\.169\.254/);
    expect((await refusal(`${site.url}/to-file`, loopbackAllowed)).reason).to.equal('scheme');
  });

  it('stops after the allowed number of redirects', async () => {
    expect(await refusal(`${site.url}/loop`, loopbackAllowed)).to.deep.equal({ reason: 'redirects', message: 'more than 3 redirects' });
    expect((await refusal(`${site.url}/to-to-a`, { ...loopbackAllowed, maxRedirects: 1 })).reason).to.equal('redirects');
  });

  it('refuses images over the size limit, whether declared up front or found while streaming', async () => {
    expect(await refusal(`${site.url}/big.png`, loopbackAllowed)).to.deep.equal({
      reason: 'too-large',
      message: `the image is ${PNG.length + 20_000} bytes, more than the 10000 allowed`,
    });
    expect(await refusal(`${site.url}/big-chunked.png`, loopbackAllowed)).to.deep.equal({
      reason: 'too-large',
      message: 'the image is larger than the 10000 bytes allowed',
    });
  });

  it('refuses what is not an allowed image type', async () => {
    expect(await refusal(`${site.url}/page`, loopbackAllowed)).to.deep.equal({
      reason: 'content-type',
      message: 'the content type text/html is not an allowed image type',
    });
    expect((await refusal(`${site.url}/untyped`, loopbackAllowed)).message).to.equal('the content type (none) is not an allowed image type');
    expect((await refusal(`${site.url}/a.gif`, { ...loopbackAllowed, allowedContentTypes: ['image/png'] })).reason).to.equal('content-type');
  });

  it('refuses bytes that are not the image type the server declared', async () => {
    expect(await refusal(`${site.url}/liar.png`, loopbackAllowed)).to.deep.equal({
      reason: 'not-an-image',
      message: 'the data is not the image/png image it claims to be (not a known image format)',
    });
    expect((await refusal(`${site.url}/gif-as.png`, loopbackAllowed)).message).to.match(/\(it is image\/gif\)/);
  });

  it('refuses an error answer', async () => {
    expect(await refusal(`${site.url}/missing.png`, loopbackAllowed)).to.deep.equal({
      reason: 'http-status',
      message: `${site.url.slice('http://'.length)} answered HTTP 404`,
    });
  });

  it('gives up on a server that never answers', async () => {
    const refused = await refusal(`${site.url}/hang.png`, { ...loopbackAllowed, timeoutMs: 300 });
    expect(refused.reason).to.equal('timeout');
    expect(refused.message).to.match(/within 300 ms$/);
  });

  it('gives up on a server that stops sending half-way through the image', async () => {
    expect((await refusal(`${site.url}/stall.png`, { ...loopbackAllowed, timeoutMs: 300 })).reason).to.equal('timeout');
  });

  it('refuses something that is not a URL', async () => {
    expect((await refusal('not a url', loopbackAllowed)).reason).to.equal('bad-url');
  });
});
