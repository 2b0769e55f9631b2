/**
 * The User schema extensions: the enterprise extension (RFC 7643 §4.3, characteristics as in
 * §8.7.2) and the bridge's own Matrix extension.
 */
import { attribute, complex, str, type SchemaDef } from './types.ts';
import { ENTERPRISE_USER_SCHEMA, MATRIX_USER_SCHEMA } from './urns.ts';

export const ENTERPRISE_USER: SchemaDef = {
  id: ENTERPRISE_USER_SCHEMA,
  name: 'EnterpriseUser',
  description: 'Attributes of a person as an employee of an organisation',
  attributes: [
    str('employeeNumber', 'The number the organisation gave the employee.'),
    str('costCenter', 'The cost centre the employee is booked to.'),
    str('organization', 'The organisation the employee belongs to.'),
    str('division', 'The division the employee belongs to.'),
    str('department', 'The department the employee belongs to.'),
    complex('manager', "The employee's manager.", [
      str('value', 'The id of the manager as a SCIM User.'),
      attribute('$ref', 'reference', "The URI of the manager's User resource.", { referenceTypes: ['User'] }),
      str('displayName', "The manager's display name; filled in by the server.", { mutability: 'readOnly' }),
    ]),
  ],
};

export const MATRIX_USER: SchemaDef = {
  id: MATRIX_USER_SCHEMA,
  name: 'MatrixUser',
  description: 'How the user appears on the Matrix homeserver',
  attributes: [
    str('displayName', 'The display name on Matrix, when it should differ from displayName (e.g. "Alice Smith (Sales)").'),
    // Returned on request only: the extension otherwise round-trips exactly what the IdP
    // wrote, which clients (and scim2-tester) compare against.
    str('matrixId', 'The Matrix user ID of the account, e.g. @alice:example.org; chosen by the bridge at creation.', {
      caseExact: true,
      mutability: 'readOnly',
      returned: 'request',
      uniqueness: 'server',
    }),
  ],
};
