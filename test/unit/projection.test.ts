import { expect } from 'chai';
import { parseAttributeList, project } from '../../src/scim/projection.ts';

const CORE = 'urn:ietf:params:scim:schemas:core:2.0:User';
const ENT = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';
const MATRIX = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';

const user = () => ({
  schemas: [CORE, ENT, MATRIX],
  id: 'id-1',
  userName: 'bjensen',
  password: 'must never show',
  name: { givenName: 'Barbara', familyName: 'Jensen' },
  emails: [{ value: 'b@x', type: 'work' }],
  [ENT]: { department: 'Tours', manager: { value: 'm' } },
  [MATRIX]: { matrixId: '@bjensen:example.org' },
  meta: { resourceType: 'User', location: 'https://x/Users/id-1' },
});

describe('attribute projection', () => {
  it('returns default attributes and meta, never the password', () => {
    const { password: _p, [MATRIX]: _m, ...expected } = user();
    expect(project(user(), {})).to.deep.equal(expected);
  });

  it('returns matrixId only on request (returned: request), and the rest of its extension by default', () => {
    const doc = { ...user(), [MATRIX]: { displayName: 'Babs (Tours)', matrixId: '@bjensen:example.org' } };
    expect(project(doc, {})[MATRIX]).to.deep.equal({ displayName: 'Babs (Tours)' });
    expect(project(doc, { attributes: [`${MATRIX}:matrixId`] })[MATRIX]).to.deep.equal({ matrixId: '@bjensen:example.org' });
  });

  it('returns only the requested attributes plus id and schemas', () => {
    expect(project(user(), { attributes: ['USERNAME'] })).to.deep.equal({ schemas: user().schemas, id: 'id-1', userName: 'bjensen' });
  });

  it('never returns the password even when asked for', () => {
    expect(project(user(), { attributes: ['password'] })).to.not.have.property('password');
  });

  it('selects sub-attributes of single and multi-valued attributes', () => {
    const doc = project(user(), { attributes: ['name.givenName', 'emails.value'] });
    expect(doc['name']).to.deep.equal({ givenName: 'Barbara' });
    expect(doc['emails']).to.deep.equal([{ value: 'b@x' }]);
    expect(doc).to.not.have.property('userName');
  });

  it('selects extension attributes by URN-qualified name or by the extension URN', () => {
    expect(project(user(), { attributes: [`${ENT}:manager.value`] })[ENT]).to.deep.equal({ manager: { value: 'm' } });
    expect(project(user(), { attributes: [ENT.toLowerCase()] })[ENT]).to.deep.equal(user()[ENT]);
    expect(project(user(), { attributes: [`${MATRIX}:matrixId`] })[MATRIX]).to.deep.equal({ matrixId: '@bjensen:example.org' });
  });

  it('excludes attributes, sub-attributes and extensions but never id', () => {
    const doc = project(user(), { excludedAttributes: ['emails', 'name.familyName', `${ENT}:department`, 'id', 'meta'] });
    expect(doc).to.not.have.property('emails');
    expect(doc).to.not.have.property('meta');
    expect(doc['name']).to.deep.equal({ givenName: 'Barbara' });
    expect(doc[ENT]).to.deep.equal({ manager: { value: 'm' } });
    expect(doc['id']).to.equal('id-1');
    expect(project(user(), { excludedAttributes: [MATRIX] })).to.not.have.property(MATRIX);
  });

  it('drops an extension object that projection leaves empty', () => {
    expect(project(user(), { excludedAttributes: [`${ENT}:department`, `${ENT}:manager`] })).to.not.have.property(ENT);
  });

  it('ignores unknown names', () => {
    expect(project(user(), { attributes: ['nope', 'userName'] })).to.have.keys('schemas', 'id', 'userName');
  });

  it('parses comma-separated attribute lists', () => {
    expect(parseAttributeList(' userName, name.givenName ,,')).to.deep.equal(['userName', 'name.givenName']);
    expect(parseAttributeList('')).to.equal(undefined);
    expect(parseAttributeList(undefined)).to.equal(undefined);
  });
});
