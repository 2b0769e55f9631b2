import { startTestPostgres, stopTestPostgres } from './engines.ts';

/**
 * Mocha root hooks for the tiers whose tests open PostgreSQL stores: the throw-away server
 * starts once before any test (initdb and start take a second or two, more than a test's
 * own timeout), and stops after the last.
 */
export const mochaHooks = {
  async beforeAll(this: Mocha.Context): Promise<void> {
    this.timeout(120_000);
    await startTestPostgres();
  },
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    await stopTestPostgres();
  },
};
