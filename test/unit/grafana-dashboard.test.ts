import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { BridgeMetrics, METRIC_PREFIX } from '../../src/metrics.ts';

const DASHBOARD = new URL('../../contrib/grafana/matrix-scim-bridge.json', import.meta.url);

type Json = Record<string, unknown>;

/** Every PromQL query of the dashboard: panel targets (rows included) and template variables. */
function queries(dashboard: Json): { where: string; expr: string }[] {
  const found: { where: string; expr: string }[] = [];
  const visit = (panels: unknown): void => {
    for (const panel of (panels as Json[] | undefined) ?? []) {
      for (const target of (panel['targets'] as Json[] | undefined) ?? []) {
        found.push({ where: `panel "${String(panel['title'])}" ${String(target['refId'])}`, expr: String(target['expr'] ?? '') });
      }
      visit(panel['panels']);
    }
  };
  visit(dashboard['panels']);
  const variables = ((dashboard['templating'] as Json | undefined)?.['list'] as Json[] | undefined) ?? [];
  for (const variable of variables) {
    const query = variable['query'];
    const text = typeof query === 'string' ? query : String((query as Json | undefined)?.['query'] ?? '');
    const inner = /^label_values\((.*)\)$/.exec(text.trim());
    if (inner?.[1]) found.push({ where: `variable $${String(variable['name'])}`, expr: inner[1].replace(/,\s*\w+\s*$/, '') });
  }
  return found;
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression reads. Not a full parser, but enough for a
 * dashboard: strings, label matchers, ranges, grouping clauses and variables are removed,
 * then every identifier that is not a function call or a keyword is a metric name.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/\b\d+(\.\d+)?(e[+-]?\d+)?\b/gi, ' ');
  const names: string[] = [];
  for (const match of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?/g)) {
    const [token, call] = [match[0].replace(/\s*\($/, ''), match[1]];
    if (call || KEYWORDS.has(token.toLowerCase())) continue;
    names.push(token);
  }
  return names;
}

describe('Grafana dashboard (contrib/grafana)', () => {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Json;
  const all = queries(dashboard);

  it('reads metric names out of PromQL as expected', () => {
    expect(
      metricNames('histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{route!~"/x{1}"}[$__rate_interval]))) / clamp_min(b_total, 1e-9)'),
    ).to.deep.equal(['a_bucket', 'b_total']);
  });

  it('has a query in every panel target', () => {
    expect(all.length).to.be.greaterThan(10);
    for (const q of all) expect(q.expr.trim(), q.where).to.not.equal('');
  });

  it('names in every query only metrics the bridge exports', async () => {
    const exported = await new BridgeMetrics().exportedNames();
    const unknown: string[] = [];
    for (const q of all) {
      const names = metricNames(q.expr);
      expect(names, `${q.where} reads no metric: ${q.expr}`).to.not.be.empty;
      for (const name of names) if (!exported.has(name)) unknown.push(`${q.where}: ${name}`);
    }
    expect(unknown, 'metrics the bridge does not export').to.deep.equal([]);
  });

  it('shows every metric of the bridge itself (process metrics aside)', async () => {
    const metrics = new BridgeMetrics({ processMetrics: false });
    const own = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    const used = new Set(all.flatMap((q) => metricNames(q.expr)).map((n) => n.replace(/_(bucket|sum|count)$/, '')));
    expect(own.every((n) => n.startsWith(METRIC_PREFIX))).to.equal(true);
    expect(own.filter((n) => !used.has(n)), 'metrics no panel shows').to.deep.equal([]);
  });
});
