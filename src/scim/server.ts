import Koa from 'koa';
import { ScimError } from './errors.ts';
import { errorMiddleware } from './http.ts';
import { scimRouter, type UserBackend } from './router.ts';
import type { GroupBackend } from './groupRoutes.ts';

export interface ScimAppOptions {
  /** Public base URL of the SCIM API, ending in /scim/v2 (known once the listener is bound). */
  baseUrl: () => string;
  tokens: { name: string; token: string }[];
  users: UserBackend;
  groups: GroupBackend;
  /** Answers /health/ready; throws when the bridge is not ready. */
  readiness: () => Promise<Record<string, unknown>>;
}

/** The Koa application of the SCIM listener: /scim/v2, /health/live, /health/ready. */
export function createScimApp(options: ScimAppOptions): Koa {
  const app = new Koa();
  const router = scimRouter({ baseUrl: options.baseUrl, tokens: options.tokens, users: options.users, groups: options.groups });
  app.use(errorMiddleware);
  app.use(async (ctx, next) => {
    if (ctx.path === '/health/live') {
      ctx.body = { status: 'ok' };
      return;
    }
    if (ctx.path === '/health/ready') {
      ctx.body = { status: 'ok', ...(await options.readiness()) };
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
