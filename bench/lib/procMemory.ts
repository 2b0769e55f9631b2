// Another process's memory as the kernel counts it (Linux /proc), in MiB: what an operator's
// `ps`, systemd's MemoryMax and a container limit see, whatever V8 thinks it holds.
import { readFileSync, writeFileSync } from 'node:fs';

const KiB_PER_MiB = 1024;

export interface ProcMemory {
  /** Resident now. */
  rss: number;
  /** The most ever resident (since start, or since resetPeak()). */
  hwm: number;
  /** Of rss: anonymous memory (the V8 heap, malloc: SQLite's page cache), mapped files (the node binary), shared memory. */
  anon: number;
  file: number;
  shmem: number;
}

/** Reads /proc/<pid>/status; undefined where there is none (not Linux, or the process is gone). */
export function procMemory(pid: number): ProcMemory | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const mib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) / KiB_PER_MiB;
  return { rss: mib('VmRSS'), hwm: mib('VmHWM'), anon: mib('RssAnon'), file: mib('RssFile'), shmem: mib('RssShmem') };
}

/**
 * Starts VmHWM over from the current RSS (Linux 4.0+: writing 5 to clear_refs), so that a
 * peak read later is the peak of what ran in between, not of start-up. False if refused.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export function describe(memory: ProcMemory): string {
  const mib = (value: number) => value.toFixed(0);
  return `RSS ${mib(memory.rss)} (anon ${mib(memory.anon)}, file ${mib(memory.file)}, shmem ${mib(memory.shmem)})`;
}
