import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export interface AvatarFetchOptions {
  maxBytes: number;
  /** For the whole fetch: DNS, every redirect hop, and the body. */
  timeoutMs: number;
  allowedContentTypes: string[];
  /** Plain http only if true (tests); https is always allowed. */
  allowHttp: boolean;
  /** CIDRs or addresses that may be fetched from although they are private or loopback. */
  allowedNetworks: string[];
  maxRedirects?: number;
  /** Resolves a host name to all its addresses; defaults to dns.lookup. */
  resolver?: (hostname: string) => Promise<{ address: string; family: number }[]>;
}

const systemResolver = (hostname: string): Promise<{ address: string; family: number }[]> =>
  dnsLookup(hostname, { all: true, verbatim: true });

export interface FetchedAvatar {
  data: Buffer;
  contentType: string;
}

/** What went wrong, for code; the message says it for people. */
export type AvatarFetchFailure =
  | 'bad-url'
  | 'scheme'
  | 'blocked-address'
  | 'dns'
  | 'redirects'
  | 'http-status'
  | 'too-large'
  | 'content-type'
  | 'not-an-image'
  | 'timeout'
  | 'network'
  | 'bad-config';

export class AvatarFetchError extends Error {
  readonly reason: AvatarFetchFailure;
  constructor(reason: AvatarFetchFailure, message: string) {
    super(message);
    this.name = 'AvatarFetchError';
    this.reason = reason;
  }
}

/** Addresses a photo URL from an IdP must never make the bridge reach (SSRF). */
const FORBIDDEN = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // RFC 1918
  ['100.64.0.0', 10], // CGNAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12], // RFC 1918
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // RFC 1918
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved and 255.255.255.255 broadcast
] as const) {
  FORBIDDEN.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['100::', 64], // discard
  ['2001::', 32], // Teredo
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
] as const) {
  FORBIDDEN.addSubnet(net, prefix, 'ipv6');
}
// IPv4-mapped addresses (::ffff:a.b.c.d) are checked against the IPv4 rules by BlockList itself.

/** The IPv4 address inside a NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address, which lead to it. */
function embeddedIpv4(address: string): string | undefined {
  const groups = expandIpv6(address);
  if (!groups) return undefined;
  const v4 = (hi: number, lo: number): string => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const nat64 = groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0);
  if (nat64) return v4(groups[6]!, groups[7]!);
  if (groups[0] === 0x2002) return v4(groups[1]!, groups[2]!);
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address. */
function expandIpv6(address: string): number[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string): number[] => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const groups = tail === undefined ? left : [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g) && g >= 0 && g <= 0xffff) ? groups : undefined;
}

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

function allowList(networks: string[]): BlockList {
  const list = new BlockList();
  for (const entry of networks) {
    const [address = '', bits, extra] = entry.trim().split('/');
    const version = isIP(address);
    const prefix = bits === undefined ? undefined : Number(bits);
    const max = version === 6 ? 128 : 32;
    if (version === 0 || extra !== undefined || (prefix !== undefined && !(Number.isInteger(prefix) && prefix >= 0 && prefix <= max))) {
      throw new AvatarFetchError('bad-config', `allowedNetworks entry "${entry}" is not an IP address or CIDR`);
    }
    if (prefix === undefined) list.addAddress(address, familyOf(address));
    else list.addSubnet(address, prefix, familyOf(address));
  }
  return list;
}

function blocked(address: string, allowed: BlockList): boolean {
  const family = familyOf(address);
  if (allowed.check(address, family)) return false;
  if (FORBIDDEN.check(address, family)) return true;
  const inner = family === 'ipv6' ? embeddedIpv4(address) : undefined;
  return inner !== undefined && !allowed.check(inner, 'ipv4') && FORBIDDEN.check(inner, 'ipv4');
}

/**
 * True if the bridge must not connect to this address: loopback, private, link-local,
 * unique-local, CGNAT, multicast, reserved, or an IPv6 form of one of those, unless it
 * lies in allowedNetworks.
 */
export function isBlockedAddress(address: string, allowedNetworks: string[] = []): boolean {
  return blocked(address, allowList(allowedNetworks));
}

const MAGIC: { type: string; matches(data: Buffer): boolean }[] = [
  { type: 'image/png', matches: (d) => d.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) },
  { type: 'image/jpeg', matches: (d) => d[0] === 0xff && d[1] === 0xd8 && d[2] === 0xff },
  { type: 'image/gif', matches: (d) => ['GIF87a', 'GIF89a'].includes(d.subarray(0, 6).toString('latin1')) },
  { type: 'image/webp', matches: (d) => d.subarray(0, 4).toString('latin1') === 'RIFF' && d.subarray(8, 12).toString('latin1') === 'WEBP' },
];

/** The image type the bytes are, by their magic number. */
function sniff(data: Buffer): string | undefined {
  return MAGIC.find((m) => m.matches(data))?.type;
}

interface Pinned {
  address: string;
  family: 4 | 6;
}

/** Rejects when the signal aborts, so that steps which cannot be cancelled (DNS) still keep the time limit. */
function withinTime<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Resolves the host once (every address), refuses forbidden ones, and returns the address to connect to. */
async function checkedAddress(
  url: URL,
  allowed: BlockList,
  resolver: NonNullable<AvatarFetchOptions['resolver']>,
  signal: AbortSignal,
): Promise<Pinned> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: { address: string; family: number }[];
  if (isIP(host)) {
    addresses = [{ address: host, family: isIP(host) }];
  } else {
    try {
      addresses = await withinTime(resolver(host), signal);
    } catch (error) {
      if (signal.aborted) throw error;
      throw new AvatarFetchError('dns', `${url.hostname} could not be resolved: ${(error as Error).message}`);
    }
  }
  if (addresses.length === 0) throw new AvatarFetchError('dns', `${url.hostname} does not resolve to any address`);
  for (const a of addresses) {
    if (blocked(a.address, allowed)) {
      throw new AvatarFetchError(
        'blocked-address',
        `${url.hostname} resolves to ${a.address}, a private or reserved address the bridge does not fetch from`,
      );
    }
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}

interface Hop {
  status: number;
  location?: string;
  contentType: string;
  data: Buffer;
}

/** One GET, connected to the pinned address whatever DNS says by now (no rebinding), body size-limited. */
function getOnce(url: URL, pinned: Pinned, options: AvatarFetchOptions, signal: AbortSignal): Promise<Hop> {
  const lookup: LookupFunction = (_hostname, lookupOptions, callback) => {
    if (lookupOptions.all) callback(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<Hop>((resolve, reject) => {
    const req = client.get(
      url,
      // agent: false: a fresh connection each time, never a pooled one opened for another check.
      { lookup, signal, agent: false, headers: { accept: options.allowedContentTypes.join(', ') } },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location !== undefined) {
          res.resume();
          resolve({ status, location: res.headers.location, contentType: '', data: Buffer.alloc(0) });
          return;
        }
        const contentType = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (status !== 200) {
          res.resume();
          resolve({ status, contentType, data: Buffer.alloc(0) });
          return;
        }
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (Number.isFinite(declared) && declared > options.maxBytes) {
          res.destroy();
          reject(new AvatarFetchError('too-large', `the image is ${declared} bytes, more than the ${options.maxBytes} allowed`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) {
            res.destroy();
            reject(new AvatarFetchError('too-large', `the image is larger than the ${options.maxBytes} bytes allowed`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status, contentType, data: Buffer.concat(chunks) }));
        res.on('error', reject);
        res.on('close', () => {
          if (!res.complete) reject(new AvatarFetchError('network', `${url.host} closed the connection before the image was complete`));
        });
      },
    );
    req.on('error', reject);
  });
}

function checkScheme(url: URL, allowHttp: boolean): void {
  if (url.protocol === 'https:' || (url.protocol === 'http:' && allowHttp)) return;
  throw new AvatarFetchError('scheme', `${url.protocol} URLs are not fetched (${allowHttp ? 'http and https' : 'https'} only)`);
}

/**
 * Fetches an avatar image from a URL an IdP put in `photos`, guarded against SSRF: only
 * http(s), no private or reserved addresses (unless allowed), DNS checked once and the
 * connection pinned to the checked address, every redirect re-checked, size, type and
 * time limited, and the bytes must be the image type the server declared.
 */
export async function fetchAvatar(rawUrl: string, options: AvatarFetchOptions): Promise<FetchedAvatar> {
  const allowed = allowList(options.allowedNetworks);
  const maxRedirects = options.maxRedirects ?? 3;
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new AvatarFetchError('bad-url', `"${rawUrl.slice(0, 200)}" is not a URL`);
  }
  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    for (let hop = 0; ; hop++) {
      checkScheme(url, options.allowHttp);
      const pinned = await checkedAddress(url, allowed, options.resolver ?? systemResolver, signal);
      const response = await getOnce(url, pinned, options, signal);
      if (response.location !== undefined) {
        if (hop >= maxRedirects) throw new AvatarFetchError('redirects', `more than ${maxRedirects} redirects`);
        const next = URL.parse(response.location, url);
        if (!next) throw new AvatarFetchError('bad-url', `${url.host} redirected to "${response.location.slice(0, 200)}", which is not a URL`);
        url = next;
        continue;
      }
      if (response.status !== 200) throw new AvatarFetchError('http-status', `${url.host} answered HTTP ${response.status}`);
      if (!options.allowedContentTypes.includes(response.contentType)) {
        throw new AvatarFetchError('content-type', `the content type ${response.contentType || '(none)'} is not an allowed image type`);
      }
      const actual = sniff(response.data);
      if (actual !== response.contentType) {
        throw new AvatarFetchError(
          'not-an-image',
          `the data is not the ${response.contentType} image it claims to be (${actual ? `it is ${actual}` : 'not a known image format'})`,
        );
      }
      return { data: response.data, contentType: response.contentType };
    }
  } catch (error) {
    // A refusal stands even if the clock ran out meanwhile; a broken connection after the time limit is the time limit.
    if (error instanceof AvatarFetchError && error.reason !== 'network') throw error;
    if (signal.aborted) throw new AvatarFetchError('timeout', `no image from ${url.host} within ${options.timeoutMs} ms`);
    if (error instanceof AvatarFetchError) throw error;
    throw new AvatarFetchError('network', `fetching from ${url.host} failed: ${(error as Error).message}`);
  }
}
