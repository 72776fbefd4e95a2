import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { interpolate } from '../support/compose';

// The compose test reads docker-compose.yml through this; compose-spec "Interpolation" is the reference.
describe("compose's variable interpolation (test/support/compose.ts)", () => {
  const vars = { SET: 'value', EMPTY: '' };
  const cases: Array<[string, string]> = [
    ['$SET and ${SET}', 'value and value'],
    ['${UNSET}|$UNSET', '|'],
    ['${UNSET:-d} ${EMPTY:-d} ${SET:-d}', 'd d value'],
    ['${UNSET-d} ${EMPTY-d}', 'd '],
    ['${SET:+alt}|${EMPTY:+alt}|${EMPTY+alt}', 'alt||alt'],
    ['$$SET costs $$5', '$SET costs $5'],
    ['postgres://u:${SET}@postgres:5432/db', 'postgres://u:value@postgres:5432/db'],
  ];
  for (const [input, expected] of cases) it(`${input} → ${expected}`, () => assert.equal(interpolate(input, vars), expected));

  it('refuses a required variable that is unset, or empty with `:?`, naming it and the message', () => {
    assert.throws(() => interpolate('${UNSET:?run the script}', vars), /required variable UNSET is missing a value: run the script/);
    assert.throws(() => interpolate('${EMPTY:?x}', vars), /EMPTY/);
    assert.equal(interpolate('${EMPTY?x}', vars), '');
    assert.equal(interpolate('${SET:?x}', vars), 'value');
  });
});
