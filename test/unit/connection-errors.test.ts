import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isConnectionError } from '../../src/db/connection-errors';
import { createClient } from '../../src/db/pool';
import { freePort } from '../../scripts/free-port';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

test('connection failures are told apart from failures of the request itself', () => {
  const cases: Array<[string, unknown, boolean]> = [
    ['refused', withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'), true],
    ['reset', withCode('read ECONNRESET', 'ECONNRESET'), true],
    ['terminated by an admin (57P01)', withCode('terminating connection due to administrator command', '57P01'), true],
    ['crash of another backend (57P02)', withCode('terminating connection because of crash of another server process', '57P02'), true],
    ['starting up (57P03)', withCode('the database system is starting up', '57P03'), true],
    ['class 08', withCode('connection failure', '08006'), true],
    ['too many connections', withCode('sorry, too many clients already', '53300'), true],
    ['lost mid-query', new Error('Connection terminated unexpectedly'), true],
    [
      'pool connect timeout',
      new Error('Connection terminated due to connection timeout', { cause: new Error('Connection terminated unexpectedly') }),
      true,
    ],
    ['pool queue timeout', new Error('timeout exceeded when trying to connect'), true],
    ['broken client reused', new Error('Client has encountered a connection error and is not queryable'), true],
    ['several addresses refused', new AggregateError([withCode('connect ECONNREFUSED ::1:5432', 'ECONNREFUSED')], 'all failed'), true],
    ['unique violation', withCode('duplicate key value violates unique constraint', '23505'), false],
    ['syntax error', withCode('syntax error at or near "selec"', '42601'), false],
    ['serialization failure', withCode('could not serialize access', '40001'), false],
    ['a plain bug', new TypeError("Cannot read properties of undefined (reading 'id')"), false],
    ['not an error', 'ECONNREFUSED', false],
    ['nothing', undefined, false],
  ];
  for (const [name, err, expected] of cases) assert.equal(isConnectionError(err), expected, name);
});

test('a real refused connection is one', async () => {
  const client = createClient({ connectionString: `postgres://nobody:x@127.0.0.1:${await freePort()}/none` });
  const err = await client.connect().then(
    () => assert.fail('connected to a port nobody listens on'),
    (e: unknown) => e,
  );
  assert.ok(isConnectionError(err), String(err));
});
