import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Context, Next } from 'koa';
import { ScimError, badRequest } from './errors.ts';
import { logger } from '../log.ts';

const log = logger('ScimHttp');

export const SCIM_CONTENT_TYPE = 'application/scim+json';
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * 413 for a body over the limit. `Connection: close` makes Node close the connection once
 * the answer is sent, instead of reading (and discarding) the rest of the body first.
 */
function bodyTooLarge(): ScimError {
  return new ScimError(413, `the request body is larger than ${MAX_BODY_BYTES} bytes`, undefined, { Connection: 'close' });
}

/** The request declares (Content-Length) a body over the limit: it can be refused unread. */
export function declaresTooLargeBody(req: IncomingMessage): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > MAX_BODY_BYTES;
}

/** State the SCIM middlewares hand to the routes. */
export interface ScimState {
  /** Name of the bearer token the request came with (which IdP). */
  source: string;
}

/**
 * Renders every error as a SCIM error; unexpected ones become a 500 whose detail stays in the log.
 * Being the first middleware, it also refuses a declared body over the limit before anything
 * (authentication included) runs or reads a byte of it.
 */
export async function errorMiddleware(ctx: Context, next: Next): Promise<void> {
  try {
    if (declaresTooLargeBody(ctx.req)) throw bodyTooLarge();
    await next();
  } catch (error) {
    const scimError =
      error instanceof ScimError ? error : new ScimError(500, 'internal error: the bridge logged the details');
    if (error instanceof ScimError) {
      if (error.status >= 500) log.warn(`${ctx.method} ${ctx.path} → ${error.status}: ${error.message}`);
      else log.info(`${ctx.method} ${ctx.path} → ${error.status}: ${error.message}`);
    } else {
      log.error(`${ctx.method} ${ctx.path} failed`, error);
    }
    ctx.status = scimError.status;
    for (const [name, value] of Object.entries(scimError.headers)) ctx.set(name, value);
    ctx.type = SCIM_CONTENT_TYPE;
    ctx.body = scimError.toJSON();
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** A bearer token the SCIM API accepts, and the name of the IdP that sends it. */
export interface ScimToken {
  name: string;
  token: string;
}

/** Digests of token entries; an entry replaced on a reload gets its digest computed anew. */
const digests = new WeakMap<ScimToken, Buffer>();

function digestOf(entry: ScimToken): Buffer {
  let value = digests.get(entry);
  if (!value) {
    value = digest(entry.token);
    digests.set(entry, value);
  }
  return value;
}

/**
 * Bearer-token authentication. Tokens are compared through their SHA-256 digests with
 * timingSafeEqual, so neither their content nor their length leaks through timing, and
 * every configured token is always compared. The list is read on every request: replacing
 * its entries (or giving a function) rotates the tokens without a restart.
 */
export function bearerAuth(tokens: readonly ScimToken[] | (() => readonly ScimToken[])) {
  return async (ctx: Context, next: Next): Promise<void> => {
    const known = typeof tokens === 'function' ? tokens() : tokens;
    const header = ctx.get('authorization');
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    let source: string | undefined;
    if (match?.[1]) {
      const presented = digest(match[1]);
      for (const candidate of known) {
        if (timingSafeEqual(presented, digestOf(candidate))) source = candidate.name;
      }
    }
    if (!source) {
      throw new ScimError(
        401,
        header ? 'the bearer token is not valid' : 'authentication required: send Authorization: Bearer <token>',
        undefined,
        { 'WWW-Authenticate': 'Bearer realm="matrix-scim-bridge"' },
      );
    }
    (ctx.state as ScimState).source = source;
    await next();
  };
}

/**
 * Reads the body up to the limit. Past it, reading stops and the 413 closes the connection
 * (a streamed body has no declared end to skip to). Unlike `for await`, leaving early does
 * not destroy the request, which would destroy the socket before the 413 is written.
 */
function readLimitedBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (req.readableEnded) {
      resolve(Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (error: Error | undefined): void => {
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (error) reject(error);
      else resolve(Buffer.concat(chunks));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
        return;
      }
      req.pause();
      settle(bodyTooLarge());
    };
    const onEnd = (): void => settle(undefined);
    const onError = (error: Error): void => settle(error);
    const onClose = (): void => settle(new Error('the client closed the connection before the end of the body'));
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

/** Reads a JSON body (application/scim+json or application/json), limited in size. */
export async function readJsonBody(ctx: Context): Promise<unknown> {
  const text = (await readLimitedBody(ctx.req)).toString('utf8');
  if (text.trim() === '') throw badRequest('invalidSyntax', 'the request has no body; a JSON object was expected');
  try {
    return JSON.parse(text);
  } catch (error) {
    throw badRequest('invalidSyntax', `the request body is not valid JSON: ${(error as Error).message}`);
  }
}

export function sendScim(ctx: Context, status: number, body: unknown): void {
  ctx.status = status;
  ctx.type = SCIM_CONTENT_TYPE;
  ctx.body = body;
}

/** If-None-Match (RFC 7232 §3.2): true when the client already holds this version. */
export function noneMatch(header: string, version: number): boolean {
  if (!header) return false;
  const tags = header.split(',').map((t) => t.trim());
  return tags.includes('*') || tags.some((t) => t.replace(/^W\//, '') === `"${version}"`);
}

/** Reads a JSON body that must be an object (every SCIM request body is one). */
export async function readJsonObject(ctx: Context): Promise<Record<string, unknown>> {
  const body = await readJsonBody(ctx);
  if (!body || typeof body !== 'object' || Array.isArray(body)) {
    throw badRequest('invalidSyntax', 'the request body must be a JSON object');
  }
  return body as Record<string, unknown>;
}
