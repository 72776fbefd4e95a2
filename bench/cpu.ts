import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { Queryable } from '../src/db/transaction';

/**
 * CPU seconds spent by processes, from /proc (Linux): what a benchmark's work costs regardless of
 * what else the machine runs meanwhile, which only stretches the wall-clock figures.
 */
const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime, stime, cutime, cstime and the parent pid of a process; undefined once it is gone. */
function stat(pid: number): { own: number; children: number; ppid: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces: fields are counted after its closing parenthesis.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(f[1]), own: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
}

/** CPU seconds of one process so far (NaN without /proc). */
export function processCpuSeconds(pid: number): number {
  const s = stat(pid);
  return s ? s.own / TICKS_PER_SECOND : NaN;
}

/**
 * CPU seconds of a PostgreSQL server so far: the postmaster, its live children (backends,
 * checkpointer, WAL writer…) and the children it has reaped (connections closed, autovacuum
 * workers). NaN when the server is not on this machine.
 */
export async function postgresCpuSeconds(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ pid: number }>('select pg_backend_pid() as pid');
  const postmaster = stat(rows[0]!.pid)?.ppid;
  if (postmaster === undefined) return NaN;
  // A child reaped during the scan would move from the live ones to the reaped ones unseen: rescan.
  for (;;) {
    const before = stat(postmaster);
    if (!before) return NaN;
    let ticks = before.own + before.children;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const child = stat(Number(entry));
      if (child?.ppid === postmaster) ticks += child.own;
    }
    if (stat(postmaster)?.children === before.children) return ticks / TICKS_PER_SECOND;
  }
}

/** A process's peak resident memory so far in MB (VmHWM), NaN without /proc: what its memory limit must hold. */
export function peakResidentMegabytes(pid: number): number {
  try {
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? NaN : Math.round(Number(kb) / 1024);
  } catch {
    return NaN;
  }
}
