import Koa from 'koa';
import { ScimError } from './errors.ts';
import { errorMiddleware, type ScimState } from './http.ts';
import { SCIM_BASE_PATH, scimRouter, type UserBackend } from './router.ts';
import type { GroupBackend } from './groupRoutes.ts';

/** One check of /health/ready: ok with details (e.g. counts), or failing with what is wrong. */
export type CheckResult = { status: 'ok' | 'failing'; error?: string } & Record<string, unknown>;

/** What /health/ready answers: 200 when every check is ok, else 503. */
export interface ReadinessReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

/** One answered request, for the metrics: the route is the matched pattern, never the raw path. */
export interface RequestSample {
  method: string;
  route: string;
  status: number;
  /** The IdP token's name, or "none" for an unauthenticated request. */
  idp: string;
  seconds: number;
}

export interface ScimAppOptions {
  /** Public base URL of the SCIM API, ending in /scim/v2 (known once the listener is bound). */
  baseUrl: () => string;
  /** Read on every request: replace its entries to rotate the tokens (SIGHUP does). */
  tokens: { name: string; token: string }[];
  users: UserBackend;
  groups: GroupBackend;
  /** Answers /health/ready. */
  readiness: () => Promise<ReadinessReport>;
  /** Told of every answered request (for the metrics). */
  onRequest?: (sample: RequestSample) => void;
}

/** The route label of a request: its matched pattern without /scim/v2, or a fixed word. */
function routeOf(ctx: Koa.Context): string {
  if (ctx.path === '/health/live' || ctx.path === '/health/ready') return ctx.path;
  const matched: unknown = ctx['_matchedRoute'];
  if (typeof matched !== 'string') return 'unmatched';
  return matched.startsWith(SCIM_BASE_PATH) ? matched.slice(SCIM_BASE_PATH.length) || '/' : matched;
}

/** Times every request and reports it once answered, errors included (it runs outside errorMiddleware). */
function requestObserver(onRequest: (sample: RequestSample) => void): Koa.Middleware {
  return async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      onRequest({
        method: ctx.method,
        route: routeOf(ctx),
        status: ctx.status,
        idp: (ctx.state as Partial<ScimState>).source ?? 'none',
        seconds: Number(process.hrtime.bigint() - started) / 1e9,
      });
    }
  };
}

/** The Koa application of the SCIM listener: /scim/v2, /health/live, /health/ready. */
export function createScimApp(options: ScimAppOptions): Koa {
  const app = new Koa();
  const router = scimRouter({ baseUrl: options.baseUrl, tokens: options.tokens, users: options.users, groups: options.groups });
  if (options.onRequest) app.use(requestObserver(options.onRequest));
  app.use(errorMiddleware);
  app.use(async (ctx, next) => {
    if (ctx.path === '/health/live') {
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path === '/health/ready') {
      const report = await options.readiness().catch(
        (error: unknown): ReadinessReport => ({
          ready: false,
          checks: { readiness: { status: 'failing', error: error instanceof Error ? error.message : String(error) } },
        }),
      );
      ctx.status = report.ready ? 200 : 503;
      ctx.body = { status: report.ready ? 'ok' : 'unavailable', ...report.checks };
      return;
    }
    await next();
  });
  app.use(async (ctx, next) => {
    await next();
    if (ctx.status === 405) throw new ScimError(405, `${ctx.method} is not supported on ${ctx.path}`);
    if (ctx.status === 404 && ctx.body === undefined) throw new ScimError(404, `no endpoint at ${ctx.path}`);
  });
  app.use(router.routes());
  app.use(router.allowedMethods({ throw: false }));
  return app;
}
