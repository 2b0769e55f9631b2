import { expect } from 'chai';
import { ScimError } from '../../src/scim/errors.ts';

export const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
export const MATRIX = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';

/** Runs fn, which must throw a ScimError, and returns that error. */
export function scimError(fn: () => unknown): ScimError {
  try {
    fn();
  } catch (error) {
    expect(error).to.be.instanceOf(ScimError);
    return error as ScimError;
  }
  throw new Error('expected a ScimError');
}
