/**
 * `npm test`: type-check, lint, unit tests, integration tests on a real PostgreSQL, and workflow tests
 * on Temporal's time-skipping test server. One PostgreSQL cluster serves the whole run: a template
 * database is migrated once and every test file clones its own database from it.
 * `npm run test:<suite>` runs one suite; TEST_FILTER=<part of a file name> narrows to matching files.
 */
import { spawn } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { ensureDatabase, startEmbeddedPostgres, type RunningPostgres } from '../src/db/embedded';
import { migrate } from '../src/db/migrate';
import { createClient } from '../src/db/pool';
import { temporalTestServerPath } from '../src/temporal/binaries';
import { freePort } from './free-port';

const root = path.resolve(import.meta.dirname, '..');
const suites = ['unit', 'integration', 'workflows'] as const;
type Suite = (typeof suites)[number];

function testFiles(dir: string): string[] {
  const abs = path.join(root, 'test', dir);
  try {
    statSync(abs);
  } catch {
    return [];
  }
  return readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.test.ts') && (!process.env.TEST_FILTER || f.includes(process.env.TEST_FILTER)))
    .map((f) => path.join('test', dir, f))
    .sort();
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: 'inherit' });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

async function dropDatabase(maintenanceUrl: string, name: string): Promise<void> {
  const client = createClient({ connectionString: maintenanceUrl });
  await client.connect();
  await client.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`);
  await client.end();
}

async function main(): Promise<number> {
  const only = process.argv.slice(2) as Suite[];
  const selected = only.length ? suites.filter((s) => only.includes(s)) : suites;
  const started = Date.now();
  const timings: string[] = [];
  const step = async (name: string, fn: () => Promise<number>) => {
    const t0 = Date.now();
    const code = await fn();
    timings.push(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s${code ? ' (FAILED)' : ''}`);
    return code;
  };

  if (!only.length && (await step('typecheck', () => run(path.join(root, 'node_modules/.bin/tsc'), ['--noEmit', '-p', '.'])))) {
    return 1;
  }
  // The layering, the promise rules and the formatting (eslint.config.js, .prettierrc.json).
  if (!only.length && (await step('lint', () => run('npm', ['run', '--silent', 'lint'])))) return 1;

  // A test that hangs fails after 10 minutes instead of holding the run forever; tests wait on
  // conditions with their own deadlines, so a loaded machine is never near this.
  const nodeTest = (files: string[], env: NodeJS.ProcessEnv) =>
    run(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-timeout=600000', '--test-reporter=spec', ...files],
      env,
    );

  let failed = 0;
  const unitFiles = testFiles('unit');
  if (selected.includes('unit') && unitFiles.length) failed |= await step('unit', () => nodeTest(unitFiles, process.env));

  const needsPostgres = selected.some((s) => s !== 'unit' && testFiles(s).length > 0);
  let cluster: RunningPostgres | undefined;
  let maintenanceUrl = process.env.DATABASE_URL;
  const scratch = path.join(root, '.data', `test-pg-${process.pid}`);
  const template = `meterflow_test_template_${process.pid}`;
  const cleanup = async () => {
    if (maintenanceUrl) await dropDatabase(maintenanceUrl, template).catch(() => undefined);
    if (cluster) await cluster.stop();
    rmSync(scratch, { recursive: true, force: true });
    // As root the data may have been placed elsewhere (see startEmbeddedPostgres).
    if (cluster?.startedHere) rmSync(cluster.dataDir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().finally(() => process.exit(130)));
  try {
    if (needsPostgres) {
      await step('postgres', async () => {
        if (!maintenanceUrl) {
          cluster = await startEmbeddedPostgres({ dataDir: scratch, port: await freePort(), durability: 'none' });
          maintenanceUrl = cluster.url;
        }
        await migrate(await ensureDatabase(maintenanceUrl, template));
        return 0;
      });
    }
    // Only the suites past unit need Temporal's binaries: `npm run test:unit` runs without them.
    const env = () => ({
      ...process.env,
      TEST_PG_URL: maintenanceUrl,
      TEST_PG_TEMPLATE: template,
      TEMPORAL_TEST_SERVER_PATH: temporalTestServerPath(),
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
    });
    for (const suite of selected.filter((s) => s !== 'unit')) {
      const files = testFiles(suite);
      if (files.length) failed |= await step(suite, () => nodeTest(files, env()));
    }
  } finally {
    await cleanup();
  }
  console.log(`\n${timings.join('\n')}\ntotal: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
