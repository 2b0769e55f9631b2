import { expect } from 'chai';
import { roomNameOf } from '../../src/provisioning/groups.ts';
import {
  accountProblems,
  avatarOf,
  canonicalEmail,
  displayNameOf,
  emailsOf,
  HOMESERVER_LIMITS,
  localpartFor,
  matrixIdProblem,
  msisdnOf,
  msisdnsOf,
  protectedPatterns,
} from '../../src/provisioning/mapping.ts';

const policy = { stripEmailDomain: true, replacement: '_', prefix: '' };

describe('userName to localpart', () => {
  it('strips the email domain and lower-cases', () => {
    expect(localpartFor('Alice.Smith@example.com', policy)).to.equal('alice.smith');
  });
  it('keeps the domain when told to, mapping @ to the replacement', () => {
    expect(localpartFor('Alice@example.com', { ...policy, stripEmailDomain: false })).to.equal('alice_example.com');
  });
  it('drops accents and replaces characters Matrix does not allow', () => {
    expect(localpartFor('José Müller', policy)).to.equal('jose_muller');
  });
  it('adds the prefix', () => {
    expect(localpartFor('bob', { ...policy, prefix: 'corp_' })).to.equal('corp_bob');
  });
  it('refuses a userName that leaves nothing usable', () => {
    expect(() => localpartFor('日本', { ...policy, replacement: '' })).to.throw(/no usable Matrix localpart/);
  });
});

describe('attribute mapping', () => {
  it('takes displayName, else name.formatted, else given and family name', () => {
    expect(displayNameOf({ displayName: 'Ali', name: { formatted: 'Alice S' } })).to.equal('Ali');
    expect(displayNameOf({ name: { formatted: 'Alice S', givenName: 'A' } })).to.equal('Alice S');
    expect(displayNameOf({ name: { givenName: 'Alice', familyName: 'Smith' } })).to.equal('Alice Smith');
    expect(displayNameOf({ userName: 'x' })).to.equal(null);
  });
  it('prefers the Matrix extension displayName, which lets an IdP give Matrix its own', () => {
    const matrix = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';
    expect(displayNameOf({ displayName: 'Ali', [matrix]: { displayName: 'Ali (Sales)' } })).to.equal('Ali (Sales)');
  });
  it('prefers the primary photo and recognises mxc URIs', () => {
    const doc = { photos: [{ value: 'https://a/1.png' }, { value: 'mxc://hs/abc', primary: true }] };
    expect(avatarOf(doc)).to.deep.equal({ kind: 'mxc', uri: 'mxc://hs/abc' });
    expect(avatarOf({ photos: [{ value: 'https://a/1.png' }] })).to.deep.equal({ kind: 'url', url: 'https://a/1.png' });
  });
  it('lower-cases and de-duplicates emails, primary first', () => {
    expect(emailsOf({ emails: [{ value: 'B@x.org' }, { value: 'a@x.org', primary: true }, { value: 'b@X.org' }] })).to.deep.equal([
      'a@x.org',
      'b@x.org',
    ]);
  });
  it('keeps only the digits of phone numbers', () => {
    expect(msisdnsOf({ phoneNumbers: [{ value: '+49 (30) 1234-567' }, { value: 'tel:+1-555-0100' }] })).to.deep.equal([
      '49301234567',
      '15550100',
    ]);
  });
  it('names emails, phone numbers and photos the homeserver would refuse', () => {
    const problems = accountProblems({
      emails: [{ value: 'not-an-email' }],
      phoneNumbers: [{ value: 'call me' }],
      photos: [{ value: 'ftp://x/y.png' }],
    });
    expect(problems).to.have.length(3);
    expect(problems[0]).to.equal('emails[0].value "not-an-email" is not an email address');
    expect(problems[1]).to.match(/^phoneNumbers\[0\]\.value "call me"/);
    expect(problems[2]).to.match(/^photos\[0\]\.value "ftp:/);
  });
});

describe('phone numbers and their extensions', () => {
  it('maps only the number, not the extension, in every way people write one', () => {
    for (const phone of [
      '+1 425-555-0100 x123',
      '+1 425-555-0100x123',
      '+1 425 555 0100 ext. 123',
      '+1 425 555 0100 Ext 123',
      '+1 (425) 555-0100 extension 123',
      '+1 425 555 0100 #123',
      '+14255550100,,123',
      'tel:+1-425-555-0100;ext=123',
      'TEL:+1-425-555-0100;phone-context=example.com',
    ]) {
      expect(msisdnOf(phone), phone).to.equal('14255550100');
    }
    expect(msisdnOf('tel:+1-201-555-0123;ext=1234')).to.equal('12015550123');
  });

  it('does not take the x of a spelled-out number for an extension', () => {
    expect(msisdnOf('+1 800 TAXI 123')).to.equal('1800123');
  });

  it('gives the homeserver the number and keeps the SCIM value as sent', () => {
    const doc = { phoneNumbers: [{ value: '+1 425-555-0100 x123', type: 'work' }, { value: 'tel:+1-201-555-0123;ext=1234' }] };
    expect(msisdnsOf(doc)).to.deep.equal(['14255550100', '12015550123']);
    expect(doc.phoneNumbers[0]?.value).to.equal('+1 425-555-0100 x123');
    expect(accountProblems(doc)).to.deep.equal([]);
  });

  it('refuses a number with fewer than 5 digits once the extension is gone, or more than E.164 allows', () => {
    expect(accountProblems({ phoneNumbers: [{ value: '+1 x 4255550100' }] })[0]).to.match(/^phoneNumbers\[0\]\.value .* is not a phone number/);
    expect(accountProblems({ phoneNumbers: [{ value: '+1 425 555 0100 1234 5678' }] })[0]).to.match(/^phoneNumbers\[0\]\.value .* 19 digits .* at most 15/);
  });
});

describe("the homeserver's limits", () => {
  const matrix = 'urn:matrix:params:scim:schemas:extension:matrix:2.0:User';

  it('refuses a password longer than 512 characters, never quoting it', () => {
    const password = 'p'.repeat(600);
    const problems = accountProblems({ userName: 'a', password });
    expect(problems).to.deep.equal(['password is 600 characters long; a password on the homeserver holds at most 512']);
    expect(accountProblems({ password: 'p'.repeat(HOMESERVER_LIMITS.password) })).to.deep.equal([]);
  });

  it('counts a password in characters, as Synapse does, not in UTF-16 units', () => {
    expect(accountProblems({ password: '😀'.repeat(512) })).to.deep.equal([]);
    expect(accountProblems({ password: '😀'.repeat(513) })[0]).to.match(/^password is 513 characters long/);
  });

  it('refuses a password that is not a string, or holds NUL or a lone surrogate', () => {
    expect(accountProblems({ password: 12345678 })).to.deep.equal(['password must be a string']);
    expect(accountProblems({ password: 'a\u0000b' })[0]).to.match(/^password holds a NUL character/);
    expect(accountProblems({ password: 'pass\ud800word' })[0]).to.match(/^password holds a lone UTF-16 surrogate/);
    for (const problem of accountProblems({ password: 'secret\u0000' })) expect(problem).to.not.include('secret');
  });

  it('refuses a display name over 256 characters, naming the attribute it came from', () => {
    const long = 'D'.repeat(100_000);
    expect(accountProblems({ displayName: long })).to.deep.equal([
      'displayName would make a Matrix display name of 100,000 characters; the homeserver holds at most 256',
    ]);
    expect(accountProblems({ name: { formatted: long } })[0]).to.match(/^name\.formatted would make/);
    expect(accountProblems({ name: { givenName: 'G'.repeat(200), familyName: 'F'.repeat(200) } })[0]).to.match(
      /^name\.givenName and name\.familyName would make a Matrix display name of 401 characters/,
    );
    expect(accountProblems({ displayName: 'Short', [matrix]: { displayName: long } })[0]).to.match(new RegExp(`^${matrix}:displayName would make`));
    // Only the name that is mapped counts: the Matrix extension's short one wins here.
    expect(accountProblems({ displayName: long, [matrix]: { displayName: 'Short' } })).to.deep.equal([]);
    expect(accountProblems({ displayName: 'é'.repeat(256) })).to.deep.equal([]);
  });

  it('refuses NUL and lone surrogates in the display name', () => {
    expect(accountProblems({ displayName: 'Ali\u0000ce' })[0]).to.match(/^displayName holds a NUL character/);
    expect(accountProblems({ displayName: 'Ali\udc00ce' })[0]).to.match(/^displayName holds a lone UTF-16 surrogate/);
    expect(accountProblems({ displayName: 'Alice 😀' })).to.deep.equal([]);
  });

  it('refuses emails over 500 characters or holding NUL, without echoing them whole', () => {
    const long = `${'a'.repeat(600)}@example.org`;
    const [problem] = accountProblems({ emails: [{ value: 'ok@example.org' }, { value: long }] });
    expect(problem).to.equal('emails[1].value is 612 characters long; an email address on the homeserver holds at most 500');
    expect(accountProblems({ emails: [{ value: 'a\u0000b@example.org' }] })[0]).to.match(/^emails\[0\]\.value holds a NUL character/);
    const [notEmail] = accountProblems({ emails: [{ value: 'x'.repeat(300) }] });
    expect(notEmail).to.have.length.below(120);
  });

  it('refuses an avatar URL over 1,000 characters, and an http(s) photo link over 8,000', () => {
    expect(accountProblems({ photos: [{ value: `mxc://example.org/${'m'.repeat(1000)}` }] })[0]).to.match(
      /^photos\[0\]\.value is 1,018 characters long; an avatar URL on the homeserver holds at most 1,000/,
    );
    expect(accountProblems({ photos: [{ value: `https://example.org/${'p'.repeat(2000)}.png` }] })).to.deep.equal([]);
    expect(accountProblems({ photos: [{ value: `https://example.org/${'p'.repeat(8000)}.png` }] })[0]).to.match(/^photos\[0\]\.value is 8,024/);
    // The photo that is used is checked: here the primary one, second in the list.
    const photos = [{ value: 'https://example.org/a.png' }, { value: 'ftp://x/y.png', primary: true }];
    expect(accountProblems({ photos })[0]).to.match(/^photos\[1\]\.value "ftp:/);
  });

  it('refuses NUL in externalId, which the homeserver may be given', () => {
    expect(accountProblems({ externalId: 'ext\u00001' })).to.deep.equal(['externalId holds a NUL character (U+0000), which the homeserver cannot store']);
  });

  it('accepts a document within every limit', () => {
    const doc = {
      userName: 'alice',
      password: 'correct horse battery staple',
      displayName: 'A'.repeat(256),
      emails: [{ value: 'alice@example.org' }],
      phoneNumbers: [{ value: '+49 30 1234567' }],
      photos: [{ value: 'mxc://example.org/abc' }],
      externalId: 'ext-1',
    };
    expect(accountProblems(doc)).to.deep.equal([]);
  });
});

describe('Matrix ID length', () => {
  const domain = ':example.org';

  it('takes a Matrix ID of 255 characters, "@" and domain included, and refuses 256', () => {
    const at255 = `@${'a'.repeat(255 - 1 - domain.length)}${domain}`;
    expect(at255).to.have.length(255);
    expect(matrixIdProblem(at255)).to.equal(undefined);
    expect(matrixIdProblem(`@a${at255.slice(1)}`)).to.match(/^userName gives the Matrix ID @a{31}…:example\.org, 256 characters long; the homeserver takes at most 255/);
  });

  it('names the userName when a long one makes a long Matrix ID, without echoing it whole', () => {
    const localpart = localpartFor(`${'u'.repeat(5000)}@example.com`, policy);
    const problem = matrixIdProblem(`@${localpart}${domain}`);
    expect(problem).to.match(/^userName gives the Matrix ID .*5,013 characters long/);
    expect(problem).to.have.length.below(200);
  });
});

describe('protected users', () => {
  const patterns = protectedPatterns('@scim-bridge:example.org', ['^@admin.*:example\\.org$', 'bot$']);
  const isProtected = (id: string) => patterns.some((p) => p.test(id));
  it('protects the bot by its exact ID', () => {
    expect(isProtected('@scim-bridge:example.org')).to.equal(true);
    expect(isProtected('@scim-bridgeXexample.org')).to.equal(false);
  });
  it('reads configured entries as regular expressions, also those starting with @', () => {
    expect(isProtected('@admin2:example.org')).to.equal(true);
    expect(isProtected('@helperbot')).to.equal(true);
    expect(isProtected('@alice:example.org')).to.equal(false);
  });
});

describe('names as the homeserver keeps them', () => {
  it('case-folds an email\'s local part as Synapse does, so "ß" is "ss"', () => {
    expect(canonicalEmail('Stra\u00dfe@Example.COM')).to.equal('strasse@example.com');
    expect(canonicalEmail('\u0131lker@example.com')).to.equal('\u0131lker@example.com');
    // Cherokee folds to upper case (Python: 'ꭰbc'.casefold() == 'Ꭰbc').
    expect(canonicalEmail('\uab70bc@example.com')).to.equal('\u13a0bc@example.com');
    expect(canonicalEmail('\u13a0bc@example.com')).to.equal('\u13a0bc@example.com');
    expect(emailsOf({ emails: [{ value: 'GROSS\u00df@Example.org' }] })).to.deep.equal(['grossss@example.org']);
  });

  it('strips a display name as Synapse does (Python\'s strip), so it never drifts', () => {
    expect(displayNameOf({ displayName: 'Name2\u001f' })).to.equal('Name2');
    expect(displayNameOf({ displayName: '\u0085 Name \u3000' })).to.equal('Name');
    expect(displayNameOf({ displayName: '\ufeffName' })).to.equal('\ufeffName');
  });

  it('cuts a group\'s room name to what a room name may hold, on a character boundary', () => {
    expect(roomNameOf('Engineering')).to.equal('Engineering');
    const long = roomNameOf('\u00e9'.repeat(70_000));
    expect(Buffer.byteLength(long, 'utf8')).to.be.at.most(240);
    expect(long.endsWith('\u00e9…')).to.equal(true);
  });
});
