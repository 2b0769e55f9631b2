import { lookup as dnsLookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';

export interface AvatarFetchOptions {
  maxBytes: number;
  timeoutMs: number;
  allowedContentTypes: string[];
  allowHttp: boolean;
  /** CIDRs or addresses that may be fetched from although they are private or loopback. */
  allowedNetworks: string[];
  maxRedirects?: number;
}

export interface FetchedAvatar {
  data: Buffer;
  contentType: string;
}

export class AvatarFetchError extends Error {
  readonly reason: string;
  constructor(reason: string) {
    super(reason);
    this.name = 'AvatarFetchError';
    this.reason = reason;
  }
}

/** Addresses a photo URL from an IdP must never make the bridge reach (SSRF). */
const FORBIDDEN = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  FORBIDDEN.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  FORBIDDEN.addSubnet(net, prefix, 'ipv6');
}

function toBlockList(networks: string[]): BlockList {
  const list = new BlockList();
  for (const entry of networks) {
    const [address, bits] = entry.split('/');
    if (!address) continue;
    const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address, family);
    else list.addSubnet(address, Number(bits), family);
  }
  return list;
}

function isForbidden(address: string, allowed: BlockList): boolean {
  let family: 'ipv4' | 'ipv6' = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  let checked = address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) {
    checked = mapped[1];
    family = 'ipv4';
  }
  if (allowed.check(checked, family)) return false;
  return FORBIDDEN.check(checked, family);
}

function sniff(data: Buffer): string | undefined {
  if (data.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) return 'image/png';
  if (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) return 'image/jpeg';
  if (data.subarray(0, 6).toString('latin1') === 'GIF87a' || data.subarray(0, 6).toString('latin1') === 'GIF89a') return 'image/gif';
  if (data.subarray(0, 4).toString('latin1') === 'RIFF' && data.subarray(8, 12).toString('latin1') === 'WEBP') return 'image/webp';
  return undefined;
}

/** Resolves the host once, refuses forbidden addresses, and pins the connection to what was checked. */
async function checkedAddress(url: URL, allowed: BlockList): Promise<{ address: string; family: number }> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host, family: isIP(host) }] : await dnsLookup(host, { all: true, verbatim: true });
  if (addresses.length === 0) throw new AvatarFetchError(`${url.host} does not resolve`);
  for (const a of addresses) {
    if (isForbidden(a.address, allowed)) {
      throw new AvatarFetchError(`${url.host} resolves to ${a.address}, a private or reserved address the bridge does not fetch from`);
    }
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family };
}

function getOnce(url: URL, pinned: { address: string; family: number }, options: AvatarFetchOptions, signal: AbortSignal) {
  const lookup: LookupFunction = (_hostname, opts, callback) => {
    if ((opts as { all?: boolean }).all) callback(null, [{ address: pinned.address, family: pinned.family }]);
    else callback(null, pinned.address, pinned.family);
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<{ status: number; location?: string; contentType: string; data: Buffer }>((resolve, reject) => {
    const req = client.get(url, { lookup, signal, headers: { accept: options.allowedContentTypes.join(', ') } }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && res.headers.location) {
        res.resume();
        resolve({ status, location: res.headers.location, contentType: '', data: Buffer.alloc(0) });
        return;
      }
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > options.maxBytes) {
        res.destroy();
        reject(new AvatarFetchError(`the image is ${declared} bytes, more than the ${options.maxBytes} allowed`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > options.maxBytes) {
          res.destroy();
          reject(new AvatarFetchError(`the image is larger than the ${options.maxBytes} bytes allowed`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        resolve({
          status,
          contentType: String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase(),
          data: Buffer.concat(chunks),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/**
 * Fetches an avatar image from a URL an IdP put in `photos`, guarded against SSRF: only
 * http(s), no private or reserved addresses (unless allowed), DNS checked once and pinned,
 * redirects re-checked, size, type and time limited, and the bytes must be the image type
 * the server declared.
 */
export async function fetchAvatar(rawUrl: string, options: AvatarFetchOptions): Promise<FetchedAvatar> {
  const allowed = toBlockList(options.allowedNetworks);
  const signal = AbortSignal.timeout(options.timeoutMs);
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new AvatarFetchError(`"${rawUrl}" is not a URL`);
  }
  const maxRedirects = options.maxRedirects ?? 3;
  try {
    for (let hop = 0; ; hop++) {
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && options.allowHttp)) {
        throw new AvatarFetchError(`${url.protocol} URLs are not fetched (${options.allowHttp ? 'http and https' : 'https'} only)`);
      }
      const pinned = await checkedAddress(url, allowed);
      const response = await getOnce(url, pinned, options, signal);
      if (response.location !== undefined) {
        if (hop >= maxRedirects) throw new AvatarFetchError(`more than ${maxRedirects} redirects`);
        url = new URL(response.location, url);
        continue;
      }
      if (response.status !== 200) throw new AvatarFetchError(`${url.host} answered HTTP ${response.status}`);
      if (!options.allowedContentTypes.includes(response.contentType)) {
        throw new AvatarFetchError(`the content type ${response.contentType || '(none)'} is not an allowed image type`);
      }
      if (sniff(response.data) !== response.contentType) {
        throw new AvatarFetchError(`the data is not the ${response.contentType} image it claims to be`);
      }
      return { data: response.data, contentType: response.contentType };
    }
  } catch (error) {
    if (error instanceof AvatarFetchError) throw error;
    if (signal.aborted) throw new AvatarFetchError(`no image within ${options.timeoutMs} ms`);
    throw new AvatarFetchError(`fetching ${url.host} failed: ${(error as Error).message}`);
  }
}
