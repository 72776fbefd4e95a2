import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { devPepperFile, loadPeppers, parsePeppers } from '../../src/keys/pepper';

const secret = (c: string) => c.repeat(40);

describe('API key peppers', () => {
  test('the highest version is current; each version gives a different HMAC', () => {
    const peppers = parsePeppers(`1:${secret('a')}, 3:${secret('c')},2:${secret('b')}`);
    assert.equal(peppers.current, 3);
    assert.deepEqual(peppers.versions, [3, 2, 1]);
    const key = 'mf_live_example';
    assert.deepEqual(peppers.digest(key), peppers.digest(key, 3));
    assert.notDeepEqual(peppers.digest(key, 1), peppers.digest(key, 2));
    assert.equal(peppers.digest(key).length, 32);
    assert.throws(() => peppers.digest(key, 4), /no pepper version 4/);
  });

  test('bad specifications are refused', () => {
    assert.throws(() => parsePeppers(''), /at least one/);
    assert.throws(() => parsePeppers(secret('a')), /must look like/);
    assert.throws(() => parsePeppers('1:short'), /shorter than 32/);
    assert.throws(() => parsePeppers(`0:${secret('a')}`), /positive integer/);
    assert.throws(() => parsePeppers(`1:${secret('a')},1:${secret('b')}`), /twice/);
  });

  test('configured peppers win; production without them refuses to start', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pepper-'));
    try {
      const configured = await loadPeppers({ API_KEY_PEPPERS: `7:${secret('z')}`, NODE_ENV: 'production', DATA_DIR: dir });
      assert.equal(configured.source, 'env');
      assert.equal(configured.peppers.current, 7);
      await assert.rejects(loadPeppers({ NODE_ENV: 'production', DATA_DIR: dir }), /API_KEY_PEPPERS must be set/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('without configuration, one development pepper is created (0600) and then reused, even by concurrent starters', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'pepper-'));
    try {
      const loaded = await Promise.all(Array.from({ length: 8 }, () => loadPeppers({ DATA_DIR: dir })));
      const digests = new Set(loaded.map((l) => l.peppers.digest('k').toString('hex')));
      assert.equal(digests.size, 1);
      assert.ok(loaded.every((l) => l.source === 'dev-file'));
      assert.equal(statSync(devPepperFile(dir)).mode & 0o777, 0o600);
      const again = await loadPeppers({ DATA_DIR: dir });
      assert.equal(again.peppers.digest('k').toString('hex'), [...digests][0]);
      assert.match(readFileSync(devPepperFile(dir), 'utf8'), /^1:[A-Za-z0-9_-]{64}\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
