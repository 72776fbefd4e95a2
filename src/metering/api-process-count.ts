import type { Logger } from 'pino';
import type { Queryable } from '../db/transaction';
import { ENTITLEMENT_LISTENER_APPLICATION_NAME } from '../entitlements/entitlements';

const DEFAULT_REFRESH_MS = 15_000;

/**
 * How many API processes are storing usage: each holds one entitlement listener connection under
 * a known application name, so PostgreSQL's pg_stat_activity counts them (in this database) with
 * no registry of our own. Read every `refreshMs` (default 15 s); while PostgreSQL cannot answer the last count
 * stands. Never less than 1: this process.
 */
export class ApiProcessCount {
  private count = 1;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly db: Queryable,
    private readonly logger: Logger,
    refreshMs = DEFAULT_REFRESH_MS,
  ) {
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), refreshMs);
    this.timer.unref();
  }

  get value(): number {
    return this.count;
  }

  async refresh(): Promise<void> {
    try {
      const { rows } = await this.db.query<{ n: number }>(
        'select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = $1',
        [ENTITLEMENT_LISTENER_APPLICATION_NAME],
      );
      this.count = Math.max(1, rows[0]!.n);
    } catch (err) {
      this.logger.debug({ err }, 'API processes not counted: the last count stands');
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
