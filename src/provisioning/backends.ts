import type { UserBackend, UserResourceRecord } from '../scim/router.ts';
import type { Store, UserRecord } from '../store/types.ts';
import type { UserProvisioner } from './users.ts';

/**
 * The users backend the SCIM API sees: the provisioner, with each user's read-only
 * `groups` filled in from the store.
 */
export function userBackend(users: UserProvisioner, store: Store): UserBackend {
  const withGroups = async (record: UserRecord): Promise<UserResourceRecord> => ({
    ...record,
    groups: await store.groups.groupsOf(record.id),
  });
  return {
    get: async (id) => withGroups(await users.get(id)),
    list: async (query) => {
      const page = await users.list(query);
      const withAll: UserResourceRecord[] = [];
      for (const user of page.users) withAll.push(await withGroups(user));
      return { totalResults: page.totalResults, users: withAll };
    },
    create: (input, ctx) => users.create(input, ctx),
    replace: async (id, input, ctx, ifMatch) => withGroups(await users.replace(id, input, ctx, ifMatch)),
    patch: async (id, body, ctx, ifMatch) => withGroups(await users.patch(id, body, ctx, ifMatch)),
    delete: (id, ctx, ifMatch) => users.delete(id, ctx, ifMatch),
  };
}
