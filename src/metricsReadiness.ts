import type { CheckResult, ReadinessReport } from './scim/server.ts';

/**
 * The readiness probe behind /health/ready: a list of named checks, each with its own
 * cache and time limit. A check's result (good or bad) is kept for `cacheMs`, and probes
 * that arrive while it runs share the one run, so that a storm of probes (several
 * replicas, a load balancer, Kubernetes) costs the homeserver one request every few seconds.
 */
export interface ReadinessCheck {
  name: string;
  /** Resolves with details to show (e.g. counts) when healthy; throws with what is wrong. */
  run: () => Promise<Record<string, unknown> | void>;
  /** How long a result is reused; 0 runs the check on every probe. */
  cacheMs: number;
  /** A check that takes longer than this fails (the probe must answer quickly). */
  timeoutMs: number;
}

interface Cached {
  at: number;
  result: Promise<CheckResult>;
}

async function runWithin(check: ReadinessCheck): Promise<CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${check.timeoutMs} ms`)), check.timeoutMs);
  });
  try {
    const details = await Promise.race([check.run(), timeout]);
    return { status: 'ok', ...(details ?? {}) };
  } catch (error) {
    return { status: 'failing', error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

export function readinessProbe(checks: ReadinessCheck[], now: () => number = Date.now): () => Promise<ReadinessReport> {
  const cache = new Map<string, Cached>();
  const resultOf = (check: ReadinessCheck): Promise<CheckResult> => {
    const cached = cache.get(check.name);
    // Reused for cacheMs from the start of its run, so probes during a run share it too.
    if (cached && now() - cached.at < check.cacheMs) return cached.result;
    const result = runWithin(check);
    cache.set(check.name, { at: now(), result });
    return result;
  };
  return async () => {
    const results = await Promise.all(checks.map(async (c) => [c.name, await resultOf(c)] as const));
    return { ready: results.every(([, r]) => r.status === 'ok'), checks: Object.fromEntries(results) };
  };
}
