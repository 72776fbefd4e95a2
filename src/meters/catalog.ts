import { isConnectionError } from '../db/connection-errors';
import type { Pool } from '../db/pool';
import type { Meter } from '../domain/metering/meter';
import { allMeters } from './store';

/**
 * Meters by event type, in memory: ingestion validates events without a database read.
 * Meters are few and only ever added, so the whole table is cached and refreshed on a short TTL;
 * an unknown event type forces one refresh (at most once per `missRefreshMs`) before it is
 * rejected, so a meter created through another process is seen at once.
 */
export class MeterCatalog {
  private byType = new Map<string, Meter>();
  private byCode = new Map<string, Meter>();
  private loadedAt = 0;
  private lastMissRefresh = 0;
  private loading: Promise<void> | undefined;

  constructor(
    private readonly pool: Pool,
    private readonly ttlMs = 30_000,
    private readonly missRefreshMs = 1_000,
  ) {}

  /** The meters of these event types (unknown types are absent from the result). */
  async forTypes(eventTypes: ReadonlySet<string>): Promise<ReadonlyMap<string, Meter>> {
    await this.fresh(() => [...eventTypes].some((t) => !this.byType.has(t)));
    return this.byType;
  }

  /** The meter with this code, if there is one. */
  async forCode(code: string): Promise<Meter | undefined> {
    await this.fresh(() => !this.byCode.has(code));
    return this.byCode.get(code);
  }

  /** Adds a meter this process just created, without waiting for a refresh. */
  add(meter: Meter): void {
    this.byType.set(meter.eventType, meter);
    this.byCode.set(meter.code, meter);
  }

  private async fresh(missing: () => boolean): Promise<void> {
    const now = Date.now();
    if (now - this.loadedAt > this.ttlMs) {
      // Meters are only ever added: with the database unreachable, the last list is still right
      // for every meter on it (a miss below still needs the database).
      await this.refresh().catch((err: unknown) => {
        if (this.loadedAt === 0 || !isConnectionError(err)) throw err;
      });
    }
    if (missing() && now - this.lastMissRefresh >= this.missRefreshMs) {
      this.lastMissRefresh = now;
      await this.refresh();
    }
  }

  refresh(): Promise<void> {
    this.loading ??= allMeters(this.pool)
      .then((meters) => {
        this.byType = new Map(meters.map((m) => [m.eventType, m]));
        this.byCode = new Map(meters.map((m) => [m.code, m]));
        this.loadedAt = Date.now();
      })
      .finally(() => {
        this.loading = undefined;
      });
    return this.loading;
  }
}
