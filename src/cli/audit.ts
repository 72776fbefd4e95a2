import { Command } from 'commander';
import { verifyAuditChain, type AuditChainHead, type AuditChainReport } from '../db/audit-verify';
import { CliError, exitCodes, withDatabase, type CliContext } from './context';
import { emit } from './output';

/** `<seq>:<hash>`, the head as a verification prints it. */
export function parseAnchor(value: string | undefined): AuditChainHead | undefined {
  if (value === undefined) return undefined;
  const match = /^([1-9][0-9]*):([0-9a-fA-F]{64})$/.exec(value);
  if (!match) throw new Error(`--anchor must be <seq>:<64 hex digits>, as audit verify prints the head; got ${value}`);
  return { seq: match[1]!, hash: match[2]! };
}

/**
 * A verification as people read it (here and in `npm run audit:verify`): the findings and the
 * head to record, and the verdict; `tampered` is the message for stderr when the chain fails.
 */
export function formatAuditReport(report: AuditChainReport): { lines: string[]; tampered: string | null } {
  const lines = [`audit log: ${report.rows} rows checked`];
  for (const p of report.problems) lines.push(`  ${p.kind} at position ${p.seq}${p.id ? ` (id ${p.id})` : ''}: ${p.detail}`);
  if (report.head) lines.push(`head: ${report.head.seq}:${report.head.hash}`);
  if (!report.ok) {
    const n = report.problems.length;
    return { lines, tampered: `TAMPERED: the audit log fails verification (${n} problem${n === 1 ? '' : 's'})` };
  }
  lines.push(report.head ? 'intact: every hash and link verifies' : 'intact: the audit log is empty');
  return { lines, tampered: null };
}

export function auditCommand(ctx: CliContext): Command {
  const audit = new Command('audit').description('the audit log');

  audit
    .command('verify')
    .description('recompute the hash chain; exit 0 intact, 1 tampered, 2 could not verify')
    .option('--anchor <seq:hash>', 'a head printed by an earlier verification: also catches a deleted tail')
    .action(async (opts: { anchor?: string }, command: Command) => {
      let anchor: AuditChainHead | undefined;
      try {
        anchor = parseAnchor(opts.anchor);
      } catch (err) {
        throw new CliError((err as Error).message, exitCodes.cannotRun);
      }
      const report = await withDatabase(ctx, (pool) => verifyAuditChain(pool, anchor ? { anchor } : {}));
      const { lines, tampered } = formatAuditReport(report);
      emit(ctx, command, report, () => lines.join('\n'));
      if (tampered) throw new CliError(tampered, exitCodes.failed);
    });

  return audit;
}
