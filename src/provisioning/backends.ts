import { notFound } from '../scim/errors.ts';
import type { GroupBackend } from '../scim/groupRoutes.ts';
import type { UserBackend, UserResourceRecord } from '../scim/router.ts';
import type { Store, UserRecord } from '../store/types.ts';
import type { GroupProvisioner } from './groups.ts';
import type { RequestContext, UserProvisioner } from './users.ts';

/**
 * What an IdP token may see and change: everything (the default), or only the users and
 * groups it created itself, so that two IdPs (staff and contractors) cannot touch each
 * other's accounts. For such a token the others' resources do not exist: 404, absent from
 * lists, unknown as group members.
 */
export type TokenScope = 'all' | 'own';

/** The scope of each token name; names not listed see everything. */
export type ScopeOf = (source: string) => TokenScope;

const everything: ScopeOf = () => 'all';

function requestContext(ctx: { source: string; answered?: Promise<boolean> }, scopeOf: ScopeOf): RequestContext {
  return {
    source: ctx.source,
    ...(scopeOf(ctx.source) === 'own' ? { ownOnly: true } : {}),
    ...(ctx.answered ? { answered: ctx.answered } : {}),
  };
}

/** Refuses a resource another token created, as if it did not exist. */
function visible<T extends { owner?: string | null }>(record: T, ctx: RequestContext, what: string): T {
  if (ctx.ownOnly && record.owner !== ctx.source) throw notFound(what);
  return record;
}

/**
 * The users backend the SCIM API sees: the provisioner, scoped per token, with each user's
 * read-only `groups` filled in from the store.
 */
export function userBackend(users: UserProvisioner, store: Store, scopeOf: ScopeOf = everything): UserBackend {
  const withGroups = async (record: UserRecord, ctx: RequestContext): Promise<UserResourceRecord> => ({
    ...record,
    groups: await store.groups.groupsOf(record.id, ctx.ownOnly ? ctx.source : undefined),
  });
  const find = async (id: string, ctx: RequestContext) => visible(await users.get(id), ctx, `no user with id ${id}`);
  return {
    get: async (id, request) => {
      const ctx = requestContext(request, scopeOf);
      return withGroups(await find(id, ctx), ctx);
    },
    list: async (query, request) => {
      const ctx = requestContext(request, scopeOf);
      const page = await users.list(ctx.ownOnly ? { ...query, owner: ctx.source } : query);
      const groups = await store.groups.groupsOfMany(
        page.users.map((user) => user.id),
        ctx.ownOnly ? ctx.source : undefined,
      );
      const withAll: UserResourceRecord[] = page.users.map((user) => ({ ...user, groups: groups.get(user.id) ?? [] }));
      return { totalResults: page.totalResults, users: withAll };
    },
    create: (input, request) => users.create(input, requestContext(request, scopeOf)),
    replace: async (id, input, request, ifMatch) => {
      const ctx = requestContext(request, scopeOf);
      await find(id, ctx);
      return withGroups(await users.replace(id, input, ctx, ifMatch), ctx);
    },
    patch: async (id, body, request, ifMatch) => {
      const ctx = requestContext(request, scopeOf);
      await find(id, ctx);
      return withGroups(await users.patch(id, body, ctx, ifMatch), ctx);
    },
    delete: async (id, request, ifMatch) => {
      const ctx = requestContext(request, scopeOf);
      await find(id, ctx);
      await users.delete(id, ctx, ifMatch);
    },
  };
}

/** The groups backend the SCIM API sees: the provisioner, scoped per token. */
export function groupBackend(groups: GroupProvisioner, scopeOf: ScopeOf = everything): GroupBackend {
  const find = async (id: string, ctx: RequestContext) => visible(await groups.get(id, false), ctx, `no group with id ${id}`);
  return {
    get: async (id, withMembers, request) => visible(await groups.get(id, withMembers), requestContext(request, scopeOf), `no group with id ${id}`),
    list: (query, withMembers, request) => {
      const ctx = requestContext(request, scopeOf);
      return groups.list(ctx.ownOnly ? { ...query, owner: ctx.source } : query, withMembers);
    },
    create: (input, request) => groups.create(input, requestContext(request, scopeOf)),
    replace: async (id, input, request, ifMatch) => {
      const ctx = requestContext(request, scopeOf);
      await find(id, ctx);
      return groups.replace(id, input, ctx, ifMatch);
    },
    patch: async (id, body, request, ifMatch) => {
      const ctx = requestContext(request, scopeOf);
      await find(id, ctx);
      return groups.patch(id, body, ctx, ifMatch);
    },
    delete: async (id, request, ifMatch) => {
      const ctx = requestContext(request, scopeOf);
      await find(id, ctx);
      await groups.delete(id, ctx, ifMatch);
    },
  };
}
