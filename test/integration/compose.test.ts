/**
 * docker-compose.yml, tested without Docker: every service built from this repository (api, worker,
 * provider) runs as a local process with exactly the command and environment its container would
 * get (the Dockerfile's ENV, NODE_ENV=production included, under the compose file's environment,
 * interpolated with the secrets scripts/generate-compose-env.sh writes), and must become ready. What
 * is mapped, and only that: the other services' host names (postgres, temporal, provider) to the
 * local PostgreSQL, Temporal dev server and provider process; a service's own listening port to a
 * free one (a container's port is its own; here processes share the host); volume paths to
 * temporary directories; the Postgres service's credentials and database to a fresh, empty
 * database on the test server (the services migrate it themselves, concurrently, as they would).
 * They run in a copy of the image's WORKDIR (what the Dockerfile COPYs, and node_modules with the
 * production dependencies only, as `npm ci --omit=dev` leaves it), so a devDependency the running
 * code needs fails here too. The image services (Postgres, Temporal, its UI) are not run: their settings are checked against
 * the app's.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { parse as parseDotenv } from 'dotenv';
import { temporalCliPath } from '../../src/temporal/binaries';
import { DRAINED_START_TO_CLOSE_MS } from '../../src/workflows/activity-timeouts';
import { freePort } from '../../scripts/free-port';
import { buildWorkdir, loadCompose, loadDockerfile, type ComposeService } from '../support/compose';
import { createTestDatabase, type TestDatabase } from '../support/database';
import { localEnvironment } from '../support/temporal';
import { waitFor } from '../support/wait-for';

const root = path.resolve(import.meta.dirname, '../..');
const composeFile = path.join(root, 'docker-compose.yml');
const dockerfile = path.join(root, 'Dockerfile');

/** Where a `service:port` of the compose network is reached from here. */
interface Endpoint {
  host: string;
  port: number;
  /** For the Postgres service: the test database's user, password and name replace the URL's. */
  database?: URL;
}

interface RunningService {
  name: string;
  child: ChildProcess;
  exit?: string;
  tail(): string;
}

/** The image services the app's environment may point at, and what each stands for here. */
const infrastructure = ['postgres', 'temporal'];

describe('docker-compose.yml in production mode, run without Docker', () => {
  let scratch: string;
  let secrets: Record<string, string>;
  let services: Map<string, ComposeService>;
  let temporal: TestWorkflowEnvironment;
  let db: TestDatabase;

  before(async () => {
    scratch = mkdtempSync(path.join(tmpdir(), 'meterflow-compose-'));
    // The .env a user makes by following the README, made the same way.
    execFileSync('bash', [path.join(root, 'scripts/generate-compose-env.sh'), path.join(scratch, '.env')], { stdio: 'ignore' });
    secrets = parseDotenv(readFileSync(path.join(scratch, '.env')));
    services = loadCompose(composeFile, secrets);
    [temporal, db] = await Promise.all([localEnvironment(), createTestDatabase({ empty: true })]);
  });

  after(async () => {
    await Promise.all([temporal?.teardown(), db?.drop()]);
    rmSync(scratch, { recursive: true, force: true });
  });

  const service = (name: string) => {
    const s = services.get(name);
    assert.ok(s, `docker-compose.yml has no service ${name}`);
    return s;
  };
  const ownServices = () => [...services.values()].filter((s) => s.build !== undefined);

  it('refuses to start without the secrets instead of letting api and worker crash-loop', () => {
    assert.throws(() => loadCompose(composeFile, {}), /required variable (POSTGRES_PASSWORD|API_KEY_PEPPERS) is missing a value/);
  });

  it("runs Temporal's current images at the versions the tests run, and the app where they set it up", () => {
    const images = [...services.values()].flatMap((s) => (s.image ? [s.image] : []));
    assert.ok(!images.some((i) => i.startsWith('temporalio/auto-setup')), 'temporalio/auto-setup is deprecated upstream');
    // e.g. "temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)"
    const cli = execFileSync(temporalCliPath(), ['--version'], { encoding: 'utf8' });
    const [, server, ui] = /Server ([\d.]+), UI ([\d.]+)/.exec(cli) ?? assert.fail(`unexpected: ${cli}`);
    for (const image of images.filter((i) => i.startsWith('temporalio/'))) {
      const expected = image.startsWith('temporalio/ui:') ? ui : server;
      assert.equal(
        image.split(':')[1],
        expected,
        `${image}: the tests run Temporal Server ${server} and UI ${ui} (scripts/provision-temporal.sh)`,
      );
    }

    const pg = service('postgres').environment;
    const namespace = service('temporal-namespace').environment.TEMPORAL_NAMESPACE;
    for (const app of ['api', 'worker']) {
      const env = service(app).environment;
      const url = new URL(env.DATABASE_URL!);
      assert.deepEqual(
        [url.hostname, decodeURIComponent(url.username), decodeURIComponent(url.password), url.pathname.slice(1)],
        ['postgres', pg.POSTGRES_USER, pg.POSTGRES_PASSWORD, pg.POSTGRES_DB],
        `${app}: DATABASE_URL must name the postgres service's user, password and database`,
      );
      assert.equal(env.TEMPORAL_NAMESPACE, namespace, `${app} runs in the namespace temporal-namespace creates`);
    }
    assert.equal(service('temporal-ui').environment.TEMPORAL_DEFAULT_NAMESPACE, namespace, 'the UI opens on the billing workflows');
    assert.equal(service('worker').environment.API_KEY_PEPPERS, undefined, 'only the API verifies API keys: the pepper goes nowhere else');
    assert.equal(service('temporal').environment.POSTGRES_PWD, pg.POSTGRES_PASSWORD);
    assert.equal(service('temporal-schema').environment.SQL_PASSWORD, pg.POSTGRES_PASSWORD);

    const worker = service('worker');
    const grace = Number(worker.environment.WORKER_SHUTDOWN_GRACE_SECONDS);
    assert.ok(
      grace * 1000 >= DRAINED_START_TO_CLOSE_MS,
      `worker: WORKER_SHUTDOWN_GRACE_SECONDS (${grace}) must cover the longest startToClose that drains (${DRAINED_START_TO_CLOSE_MS / 1000} s)`,
    );
    assert.ok(
      worker.stopGraceSeconds > grace,
      `worker: stop_grace_period (${worker.stopGraceSeconds} s) must exceed WORKER_SHUTDOWN_GRACE_SECONDS (${grace})`,
    );
  });

  it('runs api, worker and provider with their compose command and environment; each becomes ready and stops cleanly', async () => {
    const image = loadDockerfile(dockerfile);
    const workdir = path.join(scratch, 'app');
    buildWorkdir(root, image, workdir);
    const endpoints = new Map<string, Endpoint>();
    const pgUrl = new URL(db.url);
    endpoints.set('postgres:5432', { host: pgUrl.hostname, port: Number(pgUrl.port), database: pgUrl });
    const [temporalHost, temporalPort] = temporal.address.split(':');
    endpoints.set('temporal:7233', { host: temporalHost!, port: Number(temporalPort) });
    for (const s of ownServices()) {
      for (const port of s.containerPorts) endpoints.set(`${s.name}:${port}`, { host: '127.0.0.1', port: await freePort() });
    }
    const known = new Set([...infrastructure, ...ownServices().map((s) => s.name)]);

    const endpoint = (s: ComposeService, key: string, host: string, port: number): Endpoint => {
      const e = endpoints.get(`${host}:${port}`);
      if (!e) assert.fail(`${s.name}: ${key} points at ${host}:${port}, which this test does not map (extend \`endpoints\`)`);
      return e;
    };

    /** One environment value as the process here must see it (see the file's comment). */
    const mapped = (s: ComposeService, key: string, value: string): string => {
      if (s.containerPorts.map(String).includes(value)) return String(endpoint(s, key, s.name, Number(value)).port);
      const volume = s.volumeTargets.find((t) => value === t || value.startsWith(`${t}/`));
      if (volume) {
        const dir = path.join(scratch, 'volumes', s.name, volume);
        mkdirSync(dir, { recursive: true });
        return dir + value.slice(volume.length);
      }
      const address = /^([\w.-]+):(\d+)$/.exec(value);
      if (address && known.has(address[1]!)) {
        const e = endpoint(s, key, address[1]!, Number(address[2]));
        return `${e.host}:${e.port}`;
      }
      if (!URL.canParse(value)) return value;
      const url = new URL(value);
      if (!known.has(url.hostname)) return value;
      const e = endpoint(s, key, url.hostname, Number(url.port));
      url.hostname = e.host;
      url.port = String(e.port);
      if (e.database) {
        url.username = e.database.username;
        url.password = e.database.password;
        url.pathname = e.database.pathname;
      }
      return url.toString();
    };

    const start = (s: ComposeService): RunningService => {
      const build = typeof s.build === 'string' ? s.build : (s.build as { context?: string }).context;
      assert.equal(
        path.resolve(root, build ?? '.'),
        root,
        `${s.name}: built from this repository's root (the Dockerfile's WORKDIR is its copy)`,
      );
      const command = s.command ?? image.cmd ?? assert.fail(`${s.name}: no command and the Dockerfile has no CMD`);
      const env: Record<string, string> = {
        // What the node image provides beneath the Dockerfile: programs and a home directory.
        PATH: process.env.PATH!,
        HOME: path.join(scratch, 'home', s.name),
        ...image.env,
        ...Object.fromEntries(Object.entries(s.environment).map(([k, v]) => [k, mapped(s, k, v)])),
      };
      mkdirSync(env.HOME!, { recursive: true });
      const child = spawn(command[0]!, command.slice(1), { cwd: workdir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      const lines: string[] = [];
      const keep = (chunk: Buffer) => lines.splice(0, Math.max(0, lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)) - 200));
      child.stdout!.on('data', keep);
      child.stderr!.on('data', keep);
      const running: RunningService = { name: s.name, child, tail: () => lines.slice(-40).join('\n') };
      child.on('exit', (code, signal) => (running.exit = code === null ? String(signal) : `code ${code}`));
      return running;
    };

    /** Waits for `probe`; a process that exits first fails at once, with its own last words. */
    const ready = async (r: RunningService, what: string, probe: () => Promise<boolean>) => {
      const outcome = await waitFor(async () => (r.exit ? 'exited' : (await probe()) ? 'ready' : 'waiting'), {
        description: `${r.name}: ${what}`,
        until: (v) => v !== 'waiting',
        // The worker bundles the workflow code at start: a minute on a loaded 2-core machine.
        timeout: 180_000,
        interval: 250,
      });
      if (outcome === 'exited') {
        assert.fail(
          `${r.name} exited (${r.exit}) before ${what}: under restart: unless-stopped it would crash-loop. Its last output:\n${r.tail()}`,
        );
      }
    };

    const localPort = (s: ComposeService) => endpoints.get(`${s.name}:${s.containerPorts[0]}`)!.port;
    const answers = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(5000) })).ok;
    const readiness: Record<string, [string, (s: ComposeService) => Promise<boolean>]> = {
      provider: ['answering /healthz', (s) => answers(`http://127.0.0.1:${localPort(s)}/healthz`)],
      api: ['ready on /readyz (Postgres and Temporal answer)', (s) => answers(`http://127.0.0.1:${localPort(s)}/readyz`)],
      worker: [
        'polling its task queue',
        async (s) => {
          const { pollers } = await temporal.client.workflowService.describeTaskQueue({
            namespace: s.environment.TEMPORAL_NAMESPACE,
            taskQueue: { name: s.environment.TEMPORAL_TASK_QUEUE },
          });
          return pollers.length > 0;
        },
      ],
    };
    assert.deepEqual(
      ownServices()
        .map((s) => s.name)
        .sort(),
      Object.keys(readiness).sort(),
      'every service built from this repository needs a readiness check here',
    );

    // Together, as `docker compose up` starts them once Postgres and Temporal are up.
    const running = ownServices().map((s) => [s, start(s)] as const);
    try {
      await Promise.all(
        running.map(([s, r]) => {
          const [what, probe] = readiness[s.name]!;
          return ready(r, what, () => probe(s));
        }),
      );
      // `docker compose stop`: SIGTERM, then SIGKILL after stop_grace_period.
      for (const [s, r] of running) {
        const exited = once(r.child, 'exit');
        r.child.kill('SIGTERM');
        await Promise.race([
          exited,
          waitFor(() => r.exit, { description: `${s.name} to stop after SIGTERM`, timeout: s.stopGraceSeconds * 1000 }),
        ]);
        assert.equal(r.exit, 'code 0', `${s.name} stopped with ${r.exit}. Its last output:\n${r.tail()}`);
      }
    } finally {
      // The whole process group: a command that forks (npm does) leaves its child behind otherwise.
      for (const [, r] of running) {
        try {
          process.kill(-r.child.pid!, 'SIGKILL');
        } catch {
          // ESRCH: the group is gone already.
        }
      }
    }
  });
});
