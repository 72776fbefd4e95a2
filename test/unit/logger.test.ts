import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { prettyTransport } from '../../src/logger';

const { resolve } = createRequire(import.meta.url);
const notInstalled = (id: string): string => {
  throw Object.assign(new Error(`Cannot find module '${id}'`), { code: 'MODULE_NOT_FOUND' });
};

describe('entry-point logger transport', () => {
  it('never pretty-prints in production, even at a terminal (the image has no devDependencies)', () => {
    assert.equal(prettyTransport({ nodeEnv: 'production', isTTY: true, resolve }), undefined);
    assert.equal(prettyTransport({ nodeEnv: 'production', isTTY: true, resolve: notInstalled }), undefined);
  });

  it('falls back to JSON lines at a terminal when pino-pretty is not installed', () => {
    assert.equal(prettyTransport({ nodeEnv: undefined, isTTY: true, resolve: notInstalled }), undefined);
    assert.equal(prettyTransport({ nodeEnv: 'development', isTTY: true, resolve: notInstalled }), undefined);
  });

  it('writes JSON lines when no terminal watches', () => {
    assert.equal(prettyTransport({ nodeEnv: undefined, isTTY: false, resolve }), undefined);
  });

  it('pretty-prints for a developer at a terminal, loading the file it resolved', () => {
    const transport = prettyTransport({ nodeEnv: undefined, isTTY: true, resolve });
    assert.deepEqual(transport, { target: resolve('pino-pretty'), options: { ignore: 'pid,hostname' } });
    assert.ok(transport.target.startsWith('/'), transport.target);
  });
});
