import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, describe, test } from 'node:test';
import pg from 'pg';
import { freePort } from '../../scripts/free-port';
import { recordAudit, type AuditEntry } from '../../src/db/audit';
import { verifyAuditChain, type AuditChainReport } from '../../src/db/audit-verify';
import { embeddedUrl, ensureDatabase } from '../../src/db/embedded';
import { createPool, type Pool } from '../../src/db/pool';
import { inTransaction } from '../../src/db/transaction';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { migrateSteps } from '../support/migration-steps';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');

const databases: TestDatabase[] = [];
after(async () => {
  await Promise.all(databases.map((db) => db.drop()));
});

/** Tampering needs its own database each time: nothing can undo it. */
async function logWith(entries: number): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  for (let n = 1; n <= entries; n++) await recordAudit(db.pool, entry(n));
  return db;
}

const entry = (n: number, action = 'test.recorded'): AuditEntry => ({
  actor: 'system',
  action,
  subjectType: 'test',
  subjectId: `subject-${n}`,
  details: { n },
});

/** What a superuser can do: switch the triggers off around a statement, in one transaction. */
async function tamper(pool: Pool, sql: string): Promise<void> {
  await inTransaction(pool, async (client) => {
    await client.query('alter table audit_log disable trigger user');
    await client.query(sql);
    await client.query('alter table audit_log enable trigger user');
  });
}

const findings = (report: AuditChainReport) => report.problems.map(({ seq, kind }) => ({ seq, kind }));

async function idAt(pool: Pool, seq: number): Promise<string> {
  const { rows } = await pool.query<{ id: string }>('select id::text from audit_log where chain_seq = $1', [seq]);
  return rows[0]!.id;
}

/** The real script, as `npm run audit:verify` runs it, in its own process. */
async function auditVerify(databaseUrl: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'scripts/audit-verify.ts', ...args], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: databaseUrl },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('audit chain', () => {
  test('entries chain from the genesis in insert order and verify, whatever the session settings', async () => {
    const db = await logWith(0);
    assert.deepEqual(await verifyAuditChain(db.pool), { rows: 0, ok: true, problems: [], head: null });

    await recordAudit(db.pool, {
      actor: 'workflow:collect/3f0c2a4e-8c1b-4d7e-9a51-2b7d6f0e1c9a',
      action: 'invoice.paid',
      subjectType: 'invoice',
      subjectId: 'inv-1',
      details: { zeta: [1, 2.5, { nested: null }], alpha: 'ünïcødé ✓ "quoted" \\ back\nline', '': 0 },
      before: { status: 'finalized' },
      after: { status: 'paid', total: '12.50' },
    });
    await inTransaction(db.pool, async (client) => {
      // Rendering of timestamps must not depend on the writer's session.
      await client.query(`set local timezone = 'America/St_Johns'`);
      await client.query(`set local datestyle = 'SQL, DMY'`);
      await client.query(
        `insert into audit_log (occurred_at, actor, action, subject_type, subject_id) values ('2026-03-01 12:34:56.789012+05:30', 'cli', 'test.recorded', 'test', 'tz')`,
      );
    });
    // The trigger owns the chain columns: values a caller passes are overwritten.
    await db.pool.query(
      `insert into audit_log (actor, action, subject_type, subject_id, chain_seq, prev_hash, hash) values ('system', 'test.recorded', 'test', 'forged', 99, '\\x00', '\\x00')`,
    );

    const { rows } = await db.pool.query<{ chain_seq: string; prev_hash: Buffer; hash: Buffer; before: unknown; after: unknown }>(
      'select chain_seq, prev_hash, hash, before, after from audit_log order by chain_seq',
    );
    assert.deepEqual(
      rows.map((r) => r.chain_seq),
      ['1', '2', '3'],
    );
    assert.deepEqual(rows[0]!.prev_hash, Buffer.alloc(32));
    assert.deepEqual(rows[1]!.prev_hash, rows[0]!.hash);
    assert.deepEqual(rows[2]!.prev_hash, rows[1]!.hash);
    assert.deepEqual([rows[0]!.before, rows[0]!.after], [{ status: 'finalized' }, { status: 'paid', total: '12.50' }]);
    assert.deepEqual([rows[1]!.before, rows[1]!.after], [null, null]);

    const head = { seq: '3', hash: rows[2]!.hash.toString('hex') };
    for (const pageSize of [1, 2, 1000]) {
      assert.deepEqual(await verifyAuditChain(db.pool, { pageSize }), { rows: 3, ok: true, problems: [], head });
    }
    assert.equal((await verifyAuditChain(db.pool, { anchor: head })).ok, true);
  });

  test('50 concurrent transactions, some rolled back, append one gap-free chain that verifies', async () => {
    const db = await logWith(0);
    const pool = createPool(db.url, 50);
    const rolledBack = new Error('rolled back on purpose');
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) =>
          inTransaction(pool, async (client) => {
            await client.query('select pg_sleep(random() * 0.01)');
            await recordAudit(client, entry(i, 'test.first'));
            await client.query('select pg_sleep(random() * 0.005)');
            if (i % 5 === 0) {
              await client.query(
                `insert into audit_log (actor, action, subject_type, subject_id) select 'system', 'test.batch', 'test', 'batch-' || g from generate_series(1, 3) g`,
              );
            } else {
              await recordAudit(client, entry(i, 'test.second'));
            }
            if (i % 10 === 9) throw rolledBack;
          }),
        ),
      );
      const failures = outcomes.flatMap((o) => (o.status === 'rejected' && o.reason !== rolledBack ? [String(o.reason)] : []));
      assert.deepEqual(failures, []);
    } finally {
      await pool.end();
    }

    // 45 committed: 10 of them (i % 5 === 0) wrote 1 + 3 rows, 35 wrote 2.
    const expected = 10 * 4 + 35 * 2;
    const { rows } = await db.pool.query<{ n: number; max: string }>('select count(*)::int as n, max(chain_seq) as max from audit_log');
    assert.deepEqual(rows[0], { n: expected, max: String(expected) });
    const report = await verifyAuditChain(db.pool, { pageSize: 7 });
    assert.deepEqual({ rows: report.rows, ok: report.ok, problems: report.problems }, { rows: expected, ok: true, problems: [] });
  });

  test('a row edited behind the triggers is named, and rehashing it breaks the next link instead', async () => {
    const db = await logWith(5);
    const id = await idAt(db.pool, 3);
    await tamper(db.pool, `update audit_log set details = '{"n": 333}' where chain_seq = 3`);
    const edited = await verifyAuditChain(db.pool);
    assert.equal(edited.ok, false);
    assert.deepEqual(
      edited.problems.map(({ seq, id, kind }) => ({ seq, id, kind })),
      [{ seq: '3', id, kind: 'altered' }],
    );

    await tamper(db.pool, `update audit_log set hash = sha256(prev_hash || audit_log_serialize(audit_log)) where chain_seq = 3`);
    assert.deepEqual(findings(await verifyAuditChain(db.pool)), [{ seq: '4', kind: 'broken_link' }]);
  });

  test('a deleted row in the middle is reported missing at its position', async () => {
    const db = await logWith(5);
    await tamper(db.pool, 'delete from audit_log where chain_seq = 3');
    const report = await verifyAuditChain(db.pool);
    assert.equal(report.rows, 4);
    assert.deepEqual(
      report.problems.map(({ seq, id, kind }) => ({ seq, id, kind })),
      [{ seq: '3', id: null, kind: 'missing' }],
    );
  });

  test('swapped rows and a row slipped in at the end are reported', async () => {
    const db = await logWith(5);
    await tamper(
      db.pool,
      `update audit_log set chain_seq = 100 where chain_seq = 2;
       update audit_log set chain_seq = 2 where chain_seq = 3;
       update audit_log set chain_seq = 3 where chain_seq = 100;`,
    );
    assert.deepEqual(findings(await verifyAuditChain(db.pool)), [
      { seq: '2', kind: 'broken_link' },
      { seq: '2', kind: 'altered' },
      { seq: '3', kind: 'broken_link' },
      { seq: '3', kind: 'altered' },
      { seq: '4', kind: 'broken_link' },
    ]);

    const other = await logWith(5);
    await tamper(
      other.pool,
      `insert into audit_log (actor, action, subject_type, subject_id, chain_seq, prev_hash, hash)
       select 'system', 'test.recorded', 'test', 'slipped in', 6, hash, sha256('made up') from audit_log where chain_seq = 5`,
    );
    assert.deepEqual(findings(await verifyAuditChain(other.pool)), [{ seq: '6', kind: 'altered' }]);
  });

  test('deleting the newest rows leaves a valid shorter chain: only a recorded head reveals it', async () => {
    const db = await logWith(5);
    const { head } = await verifyAuditChain(db.pool);
    await tamper(db.pool, 'delete from audit_log where chain_seq = 5');
    const report = await verifyAuditChain(db.pool);
    assert.deepEqual({ rows: report.rows, ok: report.ok }, { rows: 4, ok: true });
    assert.deepEqual(findings(await verifyAuditChain(db.pool, { anchor: head! })), [{ seq: '5', kind: 'missing' }]);
  });

  test('npm run audit:verify exits 0 when intact, 1 when tampered, 2 when it cannot verify', async () => {
    const db = await logWith(5);
    const { head } = await verifyAuditChain(db.pool);
    const intact = await auditVerify(db.url);
    assert.equal(intact.code, 0, intact.stderr);
    assert.match(intact.stdout, /5 rows checked/);
    assert.ok(intact.stdout.includes(`head: 5:${head!.hash}`));

    const id = await idAt(db.pool, 2);
    await tamper(db.pool, `update audit_log set actor = 'cli' where chain_seq = 2`);
    await tamper(db.pool, 'delete from audit_log where chain_seq = 5');
    const tampered = await auditVerify(db.url, '--anchor', `5:${head!.hash}`);
    assert.equal(tampered.code, 1, tampered.stderr);
    assert.ok(tampered.stdout.includes(`altered at position 2 (id ${id})`), tampered.stdout);
    assert.ok(tampered.stdout.includes('missing at position 5'), tampered.stdout);
    assert.match(tampered.stderr, /TAMPERED/);

    const unreachable = await auditVerify(embeddedUrl(await freePort(), 'meterflow'));
    assert.equal(unreachable.code, 2);
    assert.match(unreachable.stderr, /could not read the audit log at postgres:\/\/postgres@127\.0\.0\.1:\d+\/meterflow/);
    assert.equal((await auditVerify(db.url, '--anchor', 'latest')).code, 2);
  });

  test('the migration chains existing entries in id order, and its down migration removes the chain', async () => {
    const maintenanceUrl = process.env.TEST_PG_URL!;
    const name = `meterflow_test_${randomBytes(6).toString('hex')}`;
    const url = await ensureDatabase(maintenanceUrl, name);
    const pool = createPool(url, 2);
    const migrateBy = (direction: 'up' | 'down', count: number) => migrateSteps(url, direction, count);
    try {
      await migrateBy('up', 7);
      await pool.query(
        `insert into audit_log (actor, action, subject_type, subject_id, details) values
           ('system', 'test.recorded', 'test', 'a', '{"n": 1}'), ('cli', 'test.recorded', 'test', 'b', '{}'), ('key:k1', 'test.recorded', 'test', 'c', '{"n": [3]}')`,
      );
      assert.deepEqual(
        (await migrateBy('up', 1)).map((m) => m.name),
        ['0008_audit_chain'],
      );
      const { rows } = await pool.query<{ subject_id: string }>('select subject_id from audit_log order by chain_seq');
      assert.deepEqual(
        rows.map((r) => r.subject_id),
        ['a', 'b', 'c'],
      );
      await recordAudit(pool, entry(4));
      assert.deepEqual(findings(await verifyAuditChain(pool)), []);
      await assert.rejects(pool.query(`update audit_log set actor = 'cli'`), /append-only/);

      await migrateBy('down', 1);
      const columns = await pool.query<{ column_name: string }>(
        `select column_name from information_schema.columns where table_name = 'audit_log' and column_name in ('before', 'after', 'chain_seq', 'prev_hash', 'hash')`,
      );
      assert.equal(columns.rowCount, 0);
      await pool.query(`insert into audit_log (actor, action, subject_type, subject_id) values ('system', 'test.recorded', 'test', 'd')`);
      await assert.rejects(pool.query('delete from audit_log'), /append-only/);
    } finally {
      await pool.end();
      const admin = new pg.Client({ connectionString: maintenanceUrl });
      await admin.connect();
      await admin.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
      await admin.end();
    }
  });
});
