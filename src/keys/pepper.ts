import { createHmac, randomBytes, type KeyObject, createSecretKey } from 'node:crypto';
import { link, mkdir, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Server-side HMAC peppers, versioned so they can rotate: the highest version hashes new keys,
 * older versions still verify the keys hashed under them (which are then rehashed).
 * Spec: `API_KEY_PEPPERS="2:<secret>,1:<older secret>"`, each secret at least 32 characters.
 */
export class Peppers {
  readonly current: number;
  private readonly secrets: ReadonlyMap<number, KeyObject>;

  constructor(entries: ReadonlyArray<{ version: number; secret: string }>) {
    if (entries.length === 0) throw new Error('at least one API key pepper is required');
    const secrets = new Map<number, KeyObject>();
    for (const { version, secret } of entries) {
      if (!Number.isSafeInteger(version) || version < 1) throw new Error(`pepper version must be a positive integer, got ${version}`);
      if (secret.length < 32) throw new Error(`pepper version ${version} is shorter than 32 characters`);
      if (secrets.has(version)) throw new Error(`pepper version ${version} is given twice`);
      secrets.set(version, createSecretKey(Buffer.from(secret, 'utf8')));
    }
    this.secrets = secrets;
    this.current = Math.max(...secrets.keys());
  }

  get versions(): number[] {
    return [...this.secrets.keys()].sort((a, b) => b - a);
  }

  /** HMAC-SHA256(pepper, key): what is stored and looked up, never the key. */
  digest(key: string, version = this.current): Buffer {
    const secret = this.secrets.get(version);
    if (!secret) throw new Error(`no pepper version ${version} is configured`);
    return createHmac('sha256', secret).update(key, 'utf8').digest();
  }
}

export function parsePeppers(spec: string): Peppers {
  const entries = spec
    .split(',')
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const colon = part.indexOf(':');
      if (colon < 1) throw new Error('API_KEY_PEPPERS must look like "2:<secret>,1:<older secret>"');
      return { version: Number(part.slice(0, colon)), secret: part.slice(colon + 1) };
    });
  return new Peppers(entries);
}

export interface PepperConfig {
  API_KEY_PEPPERS?: string | undefined;
  NODE_ENV?: string | undefined;
  DATA_DIR: string;
}

export const devPepperFile = (dataDir: string) => path.join(dataDir, 'api-key-pepper');

/**
 * The configured peppers; without configuration, outside production, a development pepper
 * generated once and kept in DATA_DIR (mode 0600), so `npm start` needs no setup and keys
 * survive restarts. Production refuses the fallback: a pepper living next to the database it
 * protects protects nothing.
 */
export async function loadPeppers(config: PepperConfig): Promise<{ peppers: Peppers; source: 'env' | 'dev-file' }> {
  if (config.API_KEY_PEPPERS) return { peppers: parsePeppers(config.API_KEY_PEPPERS), source: 'env' };
  if (config.NODE_ENV === 'production') {
    throw new Error('API_KEY_PEPPERS must be set when NODE_ENV=production (e.g. "1:" followed by `openssl rand -base64 48`).');
  }
  const file = devPepperFile(config.DATA_DIR);
  await mkdir(path.dirname(file), { recursive: true });
  // Written aside, then linked into place: link() is atomic and fails if the file exists, so two
  // processes starting together agree on one pepper and neither reads a half-written file.
  const draft = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(draft, `1:${randomBytes(48).toString('base64url')}\n`, { mode: 0o600 });
  try {
    await link(draft, file);
  } catch (err) {
    if (!(err instanceof Error && 'code' in err && err.code === 'EEXIST')) throw err;
  } finally {
    await unlink(draft);
  }
  return { peppers: parsePeppers((await readFile(file, 'utf8')).trim()), source: 'dev-file' };
}
