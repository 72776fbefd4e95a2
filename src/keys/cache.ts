import { performance } from 'node:perf_hooks';

export interface KeyCacheOptions {
  /** Backstop: an entry is trusted at most this long even if an invalidation was lost. */
  ttlMs: number;
  /** Known keys kept (least recently used evicted first). */
  maxEntries: number;
  /**
   * Unknown keys kept, separately: anyone can mint well-formed keys with valid checksums, and
   * such a flood must neither evict real keys nor grow memory without bound.
   */
  maxUnknown: number;
  now?: () => number;
}

interface Entry<V> {
  value: V;
  expiresAt: number;
}

/**
 * Verified keys by the HMAC of the presented key, positive and negative. Trusted only while its
 * invalidation feed (LISTEN/NOTIFY) is live: `setLive(false)` empties it and turns it off, so a
 * process that may have missed notifications goes back to the database instead of serving stale
 * answers. The known keys it held then are kept aside (`lastKnown`), the answer of last resort
 * while the database cannot be reached either (a Postgres outage takes the feed down with it);
 * going live again forgets them.
 *
 * Each invalidation bumps `generation`; a lookup started before it must not store its (maybe
 * stale) result, so `set` takes the generation read when the lookup began.
 */
export class KeyCache<V extends { id: string }> {
  private readonly known = new Map<string, Entry<V>>();
  private readonly unknown = new Map<string, Entry<null>>();
  private readonly digestById = new Map<string, string>();
  private fallback = new Map<string, V>();
  private readonly now: () => number;
  private isLive = false;
  private gen = 0;

  constructor(private readonly opts: KeyCacheOptions) {
    this.now = opts.now ?? (() => performance.now());
  }

  get live(): boolean {
    return this.isLive;
  }

  get generation(): number {
    return this.gen;
  }

  get size(): { known: number; unknown: number } {
    return { known: this.known.size, unknown: this.unknown.size };
  }

  /** `undefined`: not cached (ask the database); `null`: known not to exist. */
  get(digest: string): V | null | undefined {
    if (!this.isLive) return undefined;
    const hit = this.known.get(digest) ?? this.unknown.get(digest);
    if (!hit) return undefined;
    if (hit.expiresAt <= this.now()) {
      this.drop(digest);
      return undefined;
    }
    if (hit.value) {
      // Map keeps insertion order: re-inserting marks the entry most recently used.
      this.known.delete(digest);
      this.known.set(digest, hit as Entry<V>);
    }
    return hit.value;
  }

  set(digest: string, value: V | null, generation: number): void {
    if (!this.isLive || generation !== this.gen) return;
    const entry = { value, expiresAt: this.now() + this.opts.ttlMs };
    this.drop(digest);
    if (value) {
      this.known.set(digest, entry as Entry<V>);
      this.digestById.set(value.id, digest);
      if (this.known.size > this.opts.maxEntries) this.drop(this.known.keys().next().value!);
    } else {
      this.unknown.set(digest, entry as Entry<null>);
      if (this.unknown.size > this.opts.maxUnknown) this.unknown.delete(this.unknown.keys().next().value!);
    }
  }

  /**
   * The known key the cache held when its feed was lost, if any: only for when the database
   * cannot answer. Negative answers are not kept: a key created meanwhile must not be refused.
   */
  lastKnown(digest: string): V | undefined {
    return this.fallback.get(digest);
  }

  /** A key row changed: forget it (a change made through this process while the feed is down, too). */
  evict(id: string): void {
    this.gen++;
    const digest = this.digestById.get(id);
    if (digest !== undefined) this.drop(digest);
    for (const [d, value] of this.fallback) if (value.id === id) this.fallback.delete(d);
  }

  clear(): void {
    this.gen++;
    this.known.clear();
    this.unknown.clear();
    this.digestById.clear();
  }

  /** Called by the invalidation listener: entries are trusted only while it hears every change. */
  setLive(live: boolean): void {
    if (live) this.fallback = new Map();
    else if (this.isLive) {
      this.fallback = new Map();
      for (const [digest, entry] of this.known) this.fallback.set(digest, entry.value);
    }
    this.clear();
    this.isLive = live;
  }

  private drop(digest: string): void {
    const entry = this.known.get(digest);
    if (entry) {
      this.known.delete(digest);
      this.digestById.delete(entry.value.id);
    }
    this.unknown.delete(digest);
  }
}
