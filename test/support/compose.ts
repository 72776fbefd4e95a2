/**
 * Reads docker-compose.yml and the Dockerfile the way Docker would, for test/integration/compose.test.ts:
 * the command and environment each service's container gets, after compose's variable
 * interpolation, with the image's ENV underneath, and the image's WORKDIR with production
 * dependencies only. No Docker involved.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { DockerfileParser } from 'dockerfile-ast';
import { parse } from 'yaml';

/** The variables compose interpolates from (the shell and the project's .env). */
export type ComposeVariables = Readonly<Record<string, string | undefined>>;

/**
 * Compose's interpolation (compose-spec "Interpolation"): `$$` is a literal `$`; `$VAR` and `${VAR}`
 * take the value or ""; `${VAR:-default}` / `${VAR-default}` fall back when unset or empty / unset;
 * `${VAR:?message}` / `${VAR?message}` refuse to start; `${VAR:+alt}` / `${VAR+alt}` substitute
 * when set. Nested expressions are not used in this project and not supported.
 */
export function interpolate(value: string, vars: ComposeVariables): string {
  const pattern = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;
  return value.replace(pattern, (_match, dollar?: string, braced?: string, colon?: string, op?: string, arg?: string, bare?: string) => {
    if (dollar) return '$';
    const name = (braced ?? bare)!;
    const current = vars[name];
    const missing = colon ? !current : current === undefined;
    switch (op) {
      case '-':
        return missing ? arg! : current!;
      case '?':
        if (missing) throw new Error(`docker compose would refuse to start: required variable ${name} is missing a value: ${arg}`);
        return current!;
      case '+':
        return missing ? '' : arg!;
      default:
        return current ?? '';
    }
  });
}

function interpolateAll(node: unknown, vars: ComposeVariables): unknown {
  if (typeof node === 'string') return interpolate(node, vars);
  if (Array.isArray(node)) return node.map((n) => interpolateAll(n, vars));
  if (node && typeof node === 'object') return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, interpolateAll(v, vars)]));
  return node;
}

export interface ComposeService {
  name: string;
  image?: string;
  /** Set for the services built from this repository's Dockerfile. */
  build?: unknown;
  command?: string[];
  environment: Record<string, string>;
  /** Ports the container listens on: the targets of `ports` and `expose`. */
  containerPorts: number[];
  /** `volume:/container/path` mounts, by container path. */
  volumeTargets: string[];
  /** `stop_grace_period` in seconds: how long `docker compose stop` waits after SIGTERM (10 by default). */
  stopGraceSeconds: number;
}

/** Compose durations as this project writes them: `75s`, `2m`, `1m30s`. */
function seconds(duration: string): number {
  const match = /^(?:(\d+)m)?(?:(\d+)s)?$/.exec(duration);
  if (!match || duration === '') throw new Error(`duration ${duration}: write it as 75s, 2m or 1m30s`);
  return Number(match[1] ?? 0) * 60 + Number(match[2] ?? 0);
}

const asStrings = (v: unknown, what: string): string[] => {
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' || typeof s === 'number')) {
    throw new Error(`${what} must be a list of strings (the compose test runs only the exec form)`);
  }
  return v.map(String);
};

function environmentOf(name: string, raw: unknown, vars: ComposeVariables): Record<string, string> {
  const env: Record<string, string> = {};
  const entries: Array<[string, unknown]> = Array.isArray(raw)
    ? raw.map((line: string) => {
        const eq = line.indexOf('=');
        return eq < 0 ? [line, null] : [line.slice(0, eq), line.slice(eq + 1)];
      })
    : Object.entries((raw ?? {}) as Record<string, unknown>);
  for (const [key, value] of entries) {
    // `KEY:` without a value passes the variable through from where compose runs, if set there.
    if (value === null || value === undefined) {
      if (vars[key] !== undefined) env[key] = vars[key];
    } else if (typeof value === 'object') {
      throw new Error(`service ${name}: environment ${key} is not a scalar`);
    } else env[key] = String(value as string | number | boolean);
  }
  return env;
}

/** `ports` entries: "3000", "3000-3009:3000", "127.0.0.1:3000:3000/tcp", or the long form's target. */
function containerPortOf(entry: unknown): number {
  if (entry && typeof entry === 'object' && 'target' in entry) return Number(entry.target);
  const spec = String(entry as string | number).replace(/\/(tcp|udp)$/, '');
  return Number(spec.slice(spec.lastIndexOf(':') + 1));
}

/** The services of a compose file, interpolated with `vars` as `docker compose up` would. */
export function loadCompose(file: string, vars: ComposeVariables): Map<string, ComposeService> {
  // merge: the `<<: *anchor` keys compose accepts.
  const doc = interpolateAll(parse(readFileSync(file, 'utf8'), { merge: true }), vars) as {
    services?: Record<string, Record<string, unknown>>;
  };
  const services = new Map<string, ComposeService>();
  for (const [name, raw] of Object.entries(doc.services ?? {})) {
    if (raw.env_file !== undefined)
      throw new Error(`service ${name}: env_file is not read by the compose test; extend test/support/compose.ts first`);
    const volumes = ((raw.volumes ?? []) as unknown[]).map((v) =>
      typeof v === 'string' ? v.split(':')[1] : (v as { target?: string }).target,
    );
    services.set(name, {
      name,
      ...(typeof raw.image === 'string' ? { image: raw.image } : {}),
      ...(raw.build !== undefined ? { build: raw.build } : {}),
      ...(raw.command !== undefined ? { command: asStrings(raw.command, `service ${name}: command`) } : {}),
      environment: environmentOf(name, raw.environment, vars),
      containerPorts: [...((raw.ports ?? []) as unknown[]).map(containerPortOf), ...((raw.expose ?? []) as unknown[]).map(Number)],
      volumeTargets: volumes.filter((t): t is string => Boolean(t)),
      stopGraceSeconds: raw.stop_grace_period === undefined ? 10 : seconds(String(raw.stop_grace_period as string)),
    });
  }
  return services;
}

export interface DockerImage {
  /** ENV of the image, in order. */
  env: Record<string, string>;
  cmd?: string[];
  /** What its COPY instructions take from the build context, each to the same path under WORKDIR. */
  copies: string[];
}

/** What a single-stage Dockerfile sets for the containers of its image. */
export function loadDockerfile(file: string): DockerImage {
  const dockerfile = DockerfileParser.parse(readFileSync(file, 'utf8'));
  if (dockerfile.getFROMs().length !== 1) throw new Error(`${file}: the compose test reads single-stage Dockerfiles only`);
  const env: Record<string, string> = {};
  for (const instruction of dockerfile.getENVs()) {
    for (const property of instruction.getProperties()) env[property.getName()] = property.getValue() ?? '';
  }
  const copies = dockerfile.getCOPYs().flatMap((instruction) => {
    const args = instruction.getArguments().map((a) => a.getValue());
    const [destination, ...sources] = [args.at(-1)!, ...args.slice(0, -1)];
    const same = sources.length === 1 && path.normalize(destination) === path.normalize(sources[0]!);
    if (instruction.getFlags().length > 0 || !(destination === './' || same)) {
      throw new Error(`${file}: the compose test reads COPY <files> ./ and COPY <dir> ./<dir> only, not ${instruction.getTextContent()}`);
    }
    return sources;
  });
  const cmd = dockerfile.getCMDs().at(-1);
  return { env, copies, ...(cmd ? { cmd: cmd.getJSONStrings().map((s) => s.getJSONValue()) } : {}) };
}

/**
 * The image's WORKDIR, built without Docker in `dir`: the files its COPY instructions take from the
 * build context `root`, and a node_modules holding only what `npm ci --omit=dev` installs there
 * (package-lock.json's top-level packages not marked dev), linked from the checkout's. Node
 * resolves the app's imports from `dir`, so code that needs a devDependency fails as it would in the
 * container; a linked package resolves its own dependencies from the checkout, which is the same
 * set, dependencies of production packages being production packages.
 */
export function buildWorkdir(root: string, image: DockerImage, dir: string): void {
  for (const source of image.copies) cpSync(path.join(root, source), path.join(dir, source), { recursive: true });
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean }>;
  };
  for (const [key, entry] of Object.entries(lock.packages)) {
    // Top level only (node_modules/<name>, node_modules/@scope/<name>); nested copies live inside their parent.
    if (entry.dev || !/^node_modules\/(?:@[^/]+\/)?[^/]+$/.test(key)) continue;
    // Optional packages for other platforms are in the lock file but not installed.
    if (!existsSync(path.join(root, key))) continue;
    mkdirSync(path.dirname(path.join(dir, key)), { recursive: true });
    symlinkSync(path.join(root, key), path.join(dir, key));
  }
}
