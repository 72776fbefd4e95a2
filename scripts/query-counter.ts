import pg from 'pg';

export interface QueryCounter {
  /** Queries sent by any pg client of this process since the counter was installed. */
  readonly count: number;
  restore(): void;
}

/**
 * Counts every query any pg client (pooled or not) of this process sends, to prove a path
 * touches the database zero times. One counter at a time; `restore` puts the original back.
 */
export function countQueries(): QueryCounter {
  let count = 0;
  const query = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    count++;
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  return {
    get count() {
      return count;
    },
    restore: () => {
      pg.Client.prototype.query = query;
    },
  };
}
