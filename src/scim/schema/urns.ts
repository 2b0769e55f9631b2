/** The schema and message URNs this server speaks (RFC 7643 §8.7, RFC 7644 §3.1). */
export const CORE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const CORE_GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER_SCHEMA = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
/** The bridge's own extension, for Matrix attributes such as the read-only matrixId. */
export const MATRIX_USER_SCHEMA = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';
export const LIST_RESPONSE_SCHEMA = 'urn:ietf:params:scim:api:messages:2.0:ListResponse';

/** OneLogin's pre-RFC spelling of the core schema, for every resource type. */
export const ONELOGIN_CORE_SCHEMA = 'urn:scim:schemas:core:2.0';
/** The Group schema id of Microsoft's old SCIM documentation; Entra may still list it. */
export const MICROSOFT_GROUP_SCHEMA = 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group';
