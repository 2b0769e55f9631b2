import { expect } from 'chai';
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { permissionWarnings, sensitiveFiles } from '../../src/config/permissions.ts';
import { openSqliteStore } from '../../src/store/sqlite.ts';

const modeOf = (file: string): number => statSync(file).mode & 0o777;

describe('file permissions', () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'msb-permissions-'));
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function file(name: string, mode: number, content = 'x'): string {
    const full = path.join(dir, name);
    writeFileSync(full, content);
    chmodSync(full, mode);
    return full;
  }

  describe('the start-up check', () => {
    it('warns once about each file group or others may read or write, naming it and the fix', () => {
      const open = file('config.yaml', 0o644);
      const groupWritable = file('entra.token', 0o620);
      const warnings = permissionWarnings([
        { path: open, what: 'the configuration file' },
        { path: file('private.token', 0o600), what: 'the secret file of scim.tokens.0.token' },
        { path: groupWritable, what: 'the secret file of scim.tokens.1.token' },
      ]);
      expect(warnings).to.deep.equal([
        `the configuration file ${open} is not private: group may read it, others may read it (mode 0644); fix: chmod 600 ${open}`,
        `the secret file of scim.tokens.1.token ${groupWritable} is not private: group may write it (mode 0620); fix: chmod 600 ${groupWritable}`,
      ]);
    });

    it('says nothing about files that are private or do not exist yet', () => {
      expect(
        permissionWarnings([
          { path: file('registration.yaml', 0o600), what: 'the registration' },
          { path: file('bridge.db', 0o400), what: 'the database' },
          { path: path.join(dir, 'missing.db'), what: 'the database' },
        ]),
      ).to.deep.equal([]);
    });

    it('lets the homeserver\'s group read the registration, but nobody else', () => {
      const shared = file('registration.yaml', 0o640);
      const open = file('registration-open.yaml', 0o644);
      const warnings = permissionWarnings([
        { path: shared, what: 'the registration', groupMayRead: true },
        { path: open, what: 'the registration', groupMayRead: true },
      ]);
      expect(warnings).to.deep.equal([
        `the registration ${open} is not private: group may read it, others may read it (mode 0644); fix: chmod 640 ${open}`,
      ]);
    });

    it('quotes a path the shell would split', () => {
      const spaced = file("it's here.yaml", 0o604);
      expect(permissionWarnings([{ path: spaced, what: 'the configuration file' }])[0]).to.match(
        /fix: chmod 600 '.*it'\\''s here\.yaml'$/,
      );
    });

    it('never puts a secret in a warning', () => {
      const token = file('idp.token', 0o644, 'super-secret-token-value');
      expect(permissionWarnings([{ path: token, what: 'the secret file' }]).join('\n')).to.not.include('super-secret');
    });

    it('checks the config file, every secret file it names, the registration and the database files', () => {
      const config = file(
        'config.yaml',
        0o600,
        [
          'scim:',
          '  tokens:',
          '    - { name: entra, token: { file: entra.token } }',
          '    - { name: okta, token: inline-token-of-some-length }',
          'adminApi:',
          '  accessToken: { file: /etc/admin.token }',
        ].join('\n'),
      );
      const files = sensitiveFiles(config, {
        appservice: { registration: '/srv/registration.yaml' },
        database: { path: '/srv/bridge.db' },
      });
      expect(files.map((f) => f.path)).to.deep.equal([
        config,
        path.join(dir, 'entra.token'),
        '/etc/admin.token',
        '/srv/registration.yaml',
        '/srv/bridge.db',
        '/srv/bridge.db-wal',
        '/srv/bridge.db-shm',
      ]);
      expect(files[1]?.what).to.equal('the secret file of scim.tokens.0.token');
      expect(files[2]?.what).to.equal('the secret file of adminApi.accessToken');
    });
  });

  describe('the store', () => {
    it('creates the database and its -wal and -shm files readable by the bridge only', async () => {
      const db = path.join(dir, 'data', 'bridge.db');
      const store = await openSqliteStore(db);
      try {
        await store.countUsers();
        for (const name of [db, `${db}-wal`, `${db}-shm`]) expect([name, modeOf(name)]).to.deep.equal([name, 0o600]);
      } finally {
        await store.close();
      }
    });

    it('leaves the mode of an existing database alone, and keeps new -wal and -shm files private', async () => {
      const db = file('bridge.db', 0o644, '');
      const store = await openSqliteStore(db);
      try {
        await store.countUsers();
        expect(modeOf(db)).to.equal(0o644);
        for (const name of [`${db}-wal`, `${db}-shm`]) expect([name, modeOf(name)]).to.deep.equal([name, 0o600]);
      } finally {
        await store.close();
      }
      expect(permissionWarnings([{ path: db, what: 'the database' }])).to.have.length(1);
    });
  });
});
