import { expect } from 'chai';
import type { Filter } from '../../src/scim/filter/ast.ts';
import { matchesFilter, MAX_FILTER_DEPTH, MAX_FILTER_TERMS, parseFilter, parsePatchPath } from '../../src/scim/filter/parse.ts';
import { GROUP_RESOURCE } from '../../src/scim/schema/resources.ts';
import type { SqlStore } from '../../src/store/sqlStore.ts';
import { ENGINES } from '../support/engines.ts';
import type { UserRecord } from '../../src/store/types.ts';
import { ENT, scimError } from '../support/scim.ts';
import { seededStore } from '../support/syntheticUsers.ts';

/**
 * Filters as large as the parser allows run on SQLite and in the matcher; anything larger or
 * deeper is a 400 naming the limit, never a stack overflow or an SQLite error.
 */

/** `count` comparisons joined by `or`, the i-th written by `term(i)`. */
const orChain = (count: number, term: (i: number) => string): string => Array.from({ length: count }, (_, i) => term(i)).join(' or ');

/**
 * A filter nested exactly `depth` levels: a value filter inside, wrapped alternately in
 * `not ( )`, an `or` group and an `and` group, so that every kind of nesting is counted.
 */
function nested(depth: number): string {
  let text = 'emails[type eq "work"]';
  for (let level = 2; level <= depth; level++) {
    if (level % 3 === 0) text = `not (${text})`;
    else if (level % 3 === 1) text = `(userName sw "b" or ${text})`;
    else text = `(title pr and ${text})`;
  }
  return text;
}

for (const engine of ENGINES) describe(`filter limits (${engine})`, () => {
  let store: SqlStore;
  let users: UserRecord[];
  before(async () => ({ store, users } = await seededStore(300, engine)));
  after(() => store.close());

  const user = (i: number): UserRecord => users[i % users.length]!;
  /** The ids the in-memory matcher picks: what the SQL must pick too. */
  const matcherPicks = (filter: Filter): string[] =>
    users
      .filter((u) => matchesFilter({ ...u.document, id: u.id, meta: { created: u.created, lastModified: u.lastModified } }, filter))
      .map((u) => u.id)
      .sort();
  const storePicks = async (filter: Filter): Promise<string[]> => {
    const page = await store.listUsers({ filter, startIndex: 1, count: users.length });
    expect(page.totalResults).to.equal(page.users.length);
    return page.users.map((u) => u.id).sort();
  };

  describe('within the limits', () => {
    it(`runs a ${MAX_FILTER_TERMS.toLocaleString('en')}-term or of userName eq, returning exactly the users named`, async () => {
      // Every 20th term names a real user (in upper case: userName ignores case); the rest name nobody.
      const named = (i: number): UserRecord | undefined => (i % 20 === 0 ? user(i / 20 * 6) : undefined);
      const filter = parseFilter(orChain(MAX_FILTER_TERMS, (i) => `userName eq "${named(i)?.userName.toUpperCase() ?? `nobody${i}@example.org`}"`));
      const expected = Array.from({ length: MAX_FILTER_TERMS }, (_, i) => named(i)?.id).filter((id) => id !== undefined).sort();
      expect(expected).to.have.length(MAX_FILTER_TERMS / 20);
      expect(await storePicks(filter)).to.deep.equal(expected);
      expect(matcherPicks(filter)).to.deep.equal(expected);
    });

    it(`runs a ${MAX_FILTER_TERMS.toLocaleString('en')}-term filter mixing and, or, not, value filters and extensions`, async () => {
      // Four templates of four comparisons each; 250 clauses make exactly the limit.
      const clause = (k: number): string => {
        const u = user(k * 7);
        switch (k % 4) {
          case 0:
            return `(userName eq "${u.userName}" and active eq ${String(u.active)} and not (title eq "nobody") and emails[type pr])`;
          case 1:
            return `(${ENT}:employeeNumber eq "${k}" and ${ENT}:department co "a" and (name.familyName eq "Smith" or name.familyName eq "jones"))`;
          case 2:
            return `(emails[type eq "home" and value sw "${u.userName.slice(0, 3)}"] and meta.created ge "2026-01-01T00:00:00Z" and externalId pr)`;
          default:
            return `displayName co "smith" and userName ew "${k % 10}@other.net" and title ne "Intern" and not (active eq false)`;
        }
      };
      const filter = parseFilter(Array.from({ length: MAX_FILTER_TERMS / 4 }, (_, k) => clause(k)).join(' or '));
      const expected = matcherPicks(filter);
      expect(expected.length, 'the filter selects some users, not all').to.be.within(1, users.length - 1);
      expect(await storePicks(filter)).to.deep.equal(expected);
    });

    it(`runs a ${MAX_FILTER_TERMS.toLocaleString('en')}-term or of the comparison that binds the most SQL parameters`, async () => {
      // `emails sw` binds five: the json_each path, two entry paths and the two ends of the range.
      const filter = parseFilter(orChain(MAX_FILTER_TERMS, (i) => `emails sw "${user(i).userName.split('@')[0] ?? ''}@"`));
      const expected = matcherPicks(filter);
      expect(expected.length).to.be.greaterThan(0);
      expect(await storePicks(filter)).to.deep.equal(expected);
    });

    it(`runs a ${MAX_FILTER_TERMS.toLocaleString('en')}-term and on SQLite`, async () => {
      const filter = parseFilter(Array.from({ length: MAX_FILTER_TERMS }, (_, i) => `userName ne "nobody${i}"`).join(' and '));
      expect(await storePicks(filter)).to.deep.equal(users.map((u) => u.id).sort());
    });

    it(`runs a filter nested ${MAX_FILTER_DEPTH} levels deep, the limit`, async () => {
      const filter = parseFilter(nested(MAX_FILTER_DEPTH));
      expect(await storePicks(filter)).to.deep.equal(matcherPicks(filter));
      expect(() => parseFilter(`${'('.repeat(MAX_FILTER_DEPTH)}userName eq "x"${')'.repeat(MAX_FILTER_DEPTH)}`)).to.not.throw();
      expect(() => parseFilter(`${'not ('.repeat(MAX_FILTER_DEPTH)}userName eq "x"${')'.repeat(MAX_FILTER_DEPTH)}`)).to.not.throw();
    });

    it('keeps users without the attribute under a not, in SQL as in the matcher', async () => {
      // The mixed filter above found this: NOT over a comparison with NULL dropped the row.
      for (const text of ['not (title eq "Engineer")', 'emails[not (display eq "x")]', 'not (title gt "m" or userName sw "a")']) {
        const filter = parseFilter(text);
        expect(await storePicks(filter), text).to.deep.equal(matcherPicks(filter));
      }
    });

    it(`runs a ${MAX_FILTER_TERMS.toLocaleString('en')}-term group filter on SQLite`, async () => {
      const text = orChain(MAX_FILTER_TERMS, (i) => (i % 2 === 0 ? `members[value eq "m${i}"]` : `displayName eq "g${i}"`));
      const page = await store.groups.list({ filter: parseFilter(text, GROUP_RESOURCE), startIndex: 1, count: 10 });
      expect(page.totalResults).to.equal(0);
    });
  });

  describe('past the limits: 400 invalidFilter naming the limit', () => {
    const refusal = (text: string) => {
      const error = scimError(() => parseFilter(text));
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal('invalidFilter');
      return error.detail;
    };

    it(`refuses ${(MAX_FILTER_TERMS + 1).toLocaleString('en')} comparisons, saying how many it found`, () => {
      const detail = refusal(orChain(MAX_FILTER_TERMS + 1, (i) => `userName eq "u${i}"`));
      expect(detail).to.include(`${MAX_FILTER_TERMS + 1} comparisons`).and.include(`limit is ${MAX_FILTER_TERMS}`);
      expect(refusal(orChain(2500, () => 'title pr'))).to.include('2500 comparisons');
    });

    it('counts the comparisons inside value filters', () => {
      const text = orChain(MAX_FILTER_TERMS / 2, (i) => `emails[type eq "work" and value eq "u${i}"]`);
      expect(() => parseFilter(text)).to.not.throw();
      expect(refusal(`${text} or title pr`)).to.include(`${MAX_FILTER_TERMS + 1} comparisons`);
    });

    it(`refuses nesting ${MAX_FILTER_DEPTH + 1} levels deep, value filter brackets included`, () => {
      expect(refusal(nested(MAX_FILTER_DEPTH + 1))).to.include(`limit of ${MAX_FILTER_DEPTH} levels`).and.include(`level ${MAX_FILTER_DEPTH + 1}`);
      expect(refusal(`${'('.repeat(MAX_FILTER_DEPTH + 1)}userName eq "x"${')'.repeat(MAX_FILTER_DEPTH + 1)}`)).to.include(`limit of ${MAX_FILTER_DEPTH} levels`);
    });

    it('refuses 10,000 nested parentheses instead of overflowing the stack', () => {
      expect(refusal(`${'('.repeat(10_000)}userName eq "x"${')'.repeat(10_000)}`)).to.include(`limit of ${MAX_FILTER_DEPTH} levels`);
      expect(refusal('('.repeat(10_000))).to.include(`limit of ${MAX_FILTER_DEPTH} levels`);
    });

    it("refuses 3,000 nested 'not (' instead of overflowing the stack", () => {
      expect(refusal(`${'not ('.repeat(3000)}userName eq "x"${')'.repeat(3000)}`)).to.include(`limit of ${MAX_FILTER_DEPTH} levels`);
    });

    it('quotes only the start of a long filter in a syntax error', () => {
      const detail = refusal(`${orChain(500, (i) => `userName eq "u${i}"`)} trailing`);
      expect(detail).to.match(/unexpected 'trailing' at position \d+/);
      expect(detail.length).to.be.below(400);
    });
  });

  describe('PATCH paths', () => {
    const refusal = (text: string) => {
      const error = scimError(() => parsePatchPath(text));
      expect(error.status).to.equal(400);
      expect(error.scimType).to.equal('invalidPath');
      return error.detail;
    };

    it('take value filters up to the limits', () => {
      expect(parsePatchPath(`emails[${orChain(MAX_FILTER_TERMS, (i) => `value eq "u${i}"`)}].value`)).to.include({ sub: 'value' });
      expect(parsePatchPath(`emails[${'('.repeat(MAX_FILTER_DEPTH - 1)}type eq "work"${')'.repeat(MAX_FILTER_DEPTH - 1)}]`)).to.have.property('filter');
    });

    it('refuse value filters past the limits as invalidPath', () => {
      expect(refusal(`emails[${orChain(MAX_FILTER_TERMS + 1, (i) => `value eq "u${i}"`)}]`)).to.include(`limit is ${MAX_FILTER_TERMS}`);
      expect(refusal(`emails[${'('.repeat(MAX_FILTER_DEPTH)}type eq "work"${')'.repeat(MAX_FILTER_DEPTH)}]`)).to.include(`limit of ${MAX_FILTER_DEPTH} levels`);
      expect(refusal(`emails[${'not ('.repeat(10_000)}type eq "work"]`)).to.include(`limit of ${MAX_FILTER_DEPTH} levels`);
    });
  });
});
