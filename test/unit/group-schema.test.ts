import { expect } from 'chai';
import { matchesFilter, parseFilter, parsePatchPath } from '../../src/scim/filter/parse.ts';
import { normalizeGroupInput, normalizeInput, validateGroup } from '../../src/scim/patch/apply.ts';
import { project } from '../../src/scim/projection.ts';
import {
  attributesOf,
  GROUP_RESOURCE,
  resolveAttribute,
  resolveSchemaUrn,
  schemaDocuments,
  schemasFor,
  USER_RESOURCE,
} from '../../src/scim/schema/attributes.ts';
import { scimError } from '../support/scim.ts';

const GROUP = 'urn:ietf:params:scim:schemas:core:2.0:Group';
const MICROSOFT_GROUP = 'http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group';
const ONELOGIN = 'urn:scim:schemas:core:2.0';

describe('the Group schema', () => {
  it('resolves group attributes ignoring case, with and without the core URN', () => {
    expect(resolveAttribute('DISPLAYNAME', GROUP_RESOURCE)).to.include({ attr: 'displayName' });
    expect(resolveAttribute('members.VALUE', GROUP_RESOURCE)).to.include({ attr: 'members', sub: 'value' });
    expect(resolveAttribute(`${GROUP}:members.$ref`, GROUP_RESOURCE)).to.include({ attr: 'members', sub: '$ref' });
    expect(resolveAttribute('meta.lastModified', GROUP_RESOURCE)).to.include({ attr: 'meta', sub: 'lastModified' });
    expect(resolveAttribute('externalId', GROUP_RESOURCE)).to.include({ attr: 'externalId' });
    expect(resolveAttribute('id', GROUP_RESOURCE)).to.include({ attr: 'id' });
  });

  it('keeps User and Group attributes apart', () => {
    expect(resolveAttribute('userName', GROUP_RESOURCE)).to.equal(undefined);
    expect(resolveAttribute('members', USER_RESOURCE)).to.equal(undefined);
    expect(resolveAttribute('members')).to.equal(undefined);
    expect(resolveAttribute(`${GROUP}:displayName`)).to.equal(undefined);
    expect(resolveSchemaUrn(GROUP)).to.equal(undefined);
  });

  it("reads OneLogin's and Microsoft's Group URNs as the core Group URN", () => {
    for (const urn of [GROUP, GROUP.toUpperCase(), `${ONELOGIN}:Group`, ONELOGIN, MICROSOFT_GROUP]) {
      expect(resolveSchemaUrn(urn, GROUP_RESOURCE), urn).to.equal(GROUP);
    }
    expect(resolveAttribute(`${MICROSOFT_GROUP}:displayName`, GROUP_RESOURCE)).to.include({ attr: 'displayName' });
    expect(resolveAttribute(`${ONELOGIN}:members.value`, GROUP_RESOURCE)).to.include({ attr: 'members', sub: 'value' });
  });

  it('declares the characteristics of RFC 7643 §8.7.1, with a server-unique displayName', () => {
    const displayName = resolveAttribute('displayName', GROUP_RESOURCE)?.definition;
    expect(displayName).to.include({ type: 'string', required: true, caseExact: false, uniqueness: 'server' });
    const members = resolveAttribute('members', GROUP_RESOURCE)?.definition;
    expect(members).to.include({ type: 'complex', multiValued: true, mutability: 'readWrite' });
    const sub = (name: string) => members?.subAttributes?.find((s) => s.name === name);
    expect(sub('value')).to.include({ type: 'string', mutability: 'immutable' });
    expect(sub('$ref')).to.include({ type: 'reference', mutability: 'immutable' }).and.have.deep.property('referenceTypes', ['User', 'Group']);
    expect(sub('display')).to.include({ mutability: 'readOnly' });
    expect(sub('type')).to.include({ mutability: 'immutable' }).and.have.deep.property('canonicalValues', ['User', 'Group']);
    expect(attributesOf(undefined, GROUP_RESOURCE).map((a) => a.name)).to.deep.equal(['id', 'externalId', 'meta', 'displayName', 'members']);
  });

  it('is served at /Schemas', () => {
    const doc = schemaDocuments('https://x/scim/v2').find((d) => d['id'] === GROUP);
    expect(doc).to.include({ name: 'Group' });
    expect(doc?.['meta']).to.deep.equal({ resourceType: 'Schema', location: `https://x/scim/v2/Schemas/${GROUP}` });
    const attrs = doc?.['attributes'] as Record<string, unknown>[];
    expect(attrs.map((a) => a['name'])).to.deep.equal(['displayName', 'members']);
    expect(attrs[1]?.['subAttributes']).to.have.length(4);
  });

  it('lists only the core Group URN in schemas', () => {
    expect(schemasFor({ displayName: 'x' }, GROUP_RESOURCE)).to.deep.equal([GROUP]);
  });
});

describe('group filters', () => {
  const eq = (attr: string, value: string) => ({ kind: 'compare', op: 'eq', path: { attr }, value });

  it('parses the filters IdPs send for groups', () => {
    expect(parseFilter('displayName eq "Engineering"', GROUP_RESOURCE)).to.deep.equal(eq('displayName', 'Engineering'));
    expect(parseFilter('members[value eq "u-1"]', GROUP_RESOURCE)).to.deep.equal({
      kind: 'valuePath',
      path: { attr: 'members' },
      filter: eq('value', 'u-1'),
    });
    expect(parseFilter('members.value eq "u-1"', GROUP_RESOURCE)).to.deep.equal({
      kind: 'compare',
      op: 'eq',
      path: { attr: 'members', sub: 'value' },
      value: 'u-1',
    });
    expect(parseFilter('externalId eq eng-1', GROUP_RESOURCE)).to.deep.equal(eq('externalId', 'eng-1'));
    expect(parseFilter('id eq "g-1"', GROUP_RESOURCE)).to.deep.equal(eq('id', 'g-1'));
    expect(parseFilter('meta.lastModified gt "2024-01-01T00:00:00Z"', GROUP_RESOURCE)).to.deep.equal({
      kind: 'compare',
      op: 'gt',
      path: { attr: 'meta', sub: 'lastModified' },
      value: '2024-01-01T00:00:00Z',
    });
  });

  for (const bad of ['userName eq "x"', 'members[nope eq "x"]', 'members.nope eq "x"', 'description eq "x"', 'displayName[value eq "x"]']) {
    it(`rejects ${JSON.stringify(bad)} on groups as invalidFilter`, () => {
      expect(scimError(() => parseFilter(bad, GROUP_RESOURCE)).scimType).to.equal('invalidFilter');
    });
  }

  it('parses group PATCH paths', () => {
    expect(parsePatchPath('members[value eq "u-1" or value eq "u-2"]', GROUP_RESOURCE)).to.have.property('path').that.deep.equals({ attr: 'members' });
    expect(scimError(() => parsePatchPath('emails', GROUP_RESOURCE)).scimType).to.equal('invalidPath');
  });

  it('matches group documents: displayName without regard to case, member ids exactly', () => {
    const doc = { displayName: 'Engineering', members: [{ value: 'u-1' }, { value: 'u-2' }] };
    const matches = (text: string) => matchesFilter(doc, parseFilter(text, GROUP_RESOURCE), GROUP_RESOURCE);
    expect(matches('displayName eq "ENGINEERING"')).to.equal(true);
    expect(matches('members[value eq "u-2"]')).to.equal(true);
    expect(matches('members.value eq "u-2"')).to.equal(true);
    expect(matches('members eq "u-1"')).to.equal(true);
    expect(matches('members[value eq "U-2"]')).to.equal(false);
    expect(matches('members[value eq "u-3"]')).to.equal(false);
  });
});

describe('group projection', () => {
  const group = () => ({
    schemas: [GROUP],
    id: 'g-1',
    displayName: 'Engineering',
    externalId: 'eng-1',
    members: [{ value: 'u-1', $ref: 'https://x/Users/u-1', display: 'Ann', type: 'User' }],
    meta: { resourceType: 'Group', location: 'https://x/Groups/g-1' },
  });

  it('returns everything by default but members.display, which is returned on request', () => {
    const withoutDisplay = (g: ReturnType<typeof group>) =>
      ({ ...g, members: (g.members as Record<string, unknown>[]).map(({ display: _d, ...m }) => m) });
    expect(project(group(), {}, GROUP_RESOURCE)).to.deep.equal(withoutDisplay(group()));
    const asked = project(group(), { attributes: ['members.display', 'members.value'] }, GROUP_RESOURCE);
    expect((asked['members'] as Record<string, unknown>[]).every((m) => 'display' in m)).to.equal(true);
  });

  it('drops members with excludedAttributes=members, in any case', () => {
    const { members: _m, ...expected } = group();
    expect(project(group(), { excludedAttributes: ['members'] }, GROUP_RESOURCE)).to.deep.equal(expected);
    expect(project(group(), { excludedAttributes: [`${GROUP}:MEMBERS`] }, GROUP_RESOURCE)).to.deep.equal(expected);
  });

  it('returns only what attributes= names, plus id and schemas', () => {
    expect(project(group(), { attributes: ['displayName'] }, GROUP_RESOURCE)).to.deep.equal({ schemas: [GROUP], id: 'g-1', displayName: 'Engineering' });
    expect(project(group(), { attributes: ['members.value'] }, GROUP_RESOURCE)).to.deep.equal({ schemas: [GROUP], id: 'g-1', members: [{ value: 'u-1' }] });
  });

  it('drops a member sub-attribute with excludedAttributes', () => {
    const projected = project(group(), { excludedAttributes: ['members.display', 'members.$ref'] }, GROUP_RESOURCE);
    expect(projected['members']).to.deep.equal([{ value: 'u-1', type: 'User' }]);
  });
});

describe('group POST/PUT body normalisation', () => {
  it('canonicalises names and keeps value, $ref and type of members', () => {
    const doc = normalizeGroupInput({ DisplayName: 'Eng', MEMBERS: [{ VALUE: 'u-1', Type: 'User', $ref: 'https://x/Users/u-1' }] });
    expect(doc).to.deep.equal({ schemas: [GROUP], displayName: 'Eng', members: [{ value: 'u-1', type: 'User', $ref: 'https://x/Users/u-1' }] });
  });

  it('ignores unknown attributes and schemas, read-only attributes, nulls and empty lists', () => {
    const doc = normalizeGroupInput({
      schemas: [GROUP, 'urn:example:unknown'],
      id: 'chosen-by-client',
      meta: { resourceType: 'Group' },
      displayName: 'Eng',
      externalId: null,
      description: 'not in the schema',
      'urn:example:unknown': { x: 1 },
      members: [],
    });
    expect(doc).to.deep.equal({ schemas: [GROUP], displayName: 'Eng' });
    expect(normalizeGroupInput({ displayName: 'Eng', members: null })).to.deep.equal({ schemas: [GROUP], displayName: 'Eng' });
  });

  it("drops members' display and de-duplicates members on value", () => {
    const doc = normalizeGroupInput({ displayName: 'Eng', members: [{ value: 'u-1', display: 'Ann' }, { value: 'u-1' }, { value: 'u-2', $ref: null }] });
    expect(doc['members']).to.deep.equal([{ value: 'u-1' }, { value: 'u-2' }]);
  });

  it("accepts Entra's creation under Microsoft's Group URN, and OneLogin's core URN", () => {
    // Entra creates groups without members, sometimes listing Microsoft's Group schema.
    const entra = normalizeGroupInput({
      schemas: [GROUP, MICROSOFT_GROUP],
      externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159',
      displayName: 'Sales',
      meta: { resourceType: 'Group' },
    });
    expect(entra).to.deep.equal({ schemas: [GROUP], externalId: '8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159', displayName: 'Sales' });
    expect(normalizeGroupInput({ [MICROSOFT_GROUP]: { displayName: 'Sales' } })['displayName']).to.equal('Sales');
    const onelogin = normalizeGroupInput({ schemas: [ONELOGIN], [ONELOGIN]: { displayName: 'O', members: [{ value: 'u-1' }] } });
    expect(onelogin).to.deep.equal({ schemas: [GROUP], displayName: 'O', members: [{ value: 'u-1' }] });
  });

  it('ignores User attributes in a group body', () => {
    expect(normalizeInput({ displayName: 'Eng', userName: 'x', active: true }, GROUP_RESOURCE)).to.deep.equal({ schemas: [GROUP], displayName: 'Eng' });
  });

  it('requires a displayName', () => {
    for (const body of [{}, { displayName: '' }, { displayName: '   ' }, { displayName: null, members: [{ value: 'u-1' }] }]) {
      const error = scimError(() => normalizeGroupInput(body));
      expect(error.scimType, JSON.stringify(body)).to.equal('invalidValue');
      expect(error.detail).to.contain('displayName');
    }
  });

  it('refuses a member without a value, naming it', () => {
    const error = scimError(() => normalizeGroupInput({ displayName: 'Eng', members: [{ value: 'u-1' }, { display: 'Ann' }] }));
    expect(error.scimType).to.equal('invalidValue');
    expect(error.detail).to.contain('members[1]');
  });

  it('refuses a body that is not an object, and a displayName of the wrong type', () => {
    expect(scimError(() => normalizeGroupInput([])).scimType).to.equal('invalidSyntax');
    expect(scimError(() => normalizeGroupInput({ displayName: { x: 1 } })).scimType).to.equal('invalidValue');
  });

  it('validates stored groups', () => {
    expect(() => validateGroup({ displayName: 'x', members: [{ value: 'u-1' }] })).to.not.throw();
    expect(scimError(() => validateGroup({ displayName: 'x', members: [{ value: 7 }] })).detail).to.contain('members[0]');
    expect(scimError(() => validateGroup({ displayName: 'x', members: 'u-1' })).scimType).to.equal('invalidValue');
  });
});
