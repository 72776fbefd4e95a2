import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { Identifier, InstantSchema, jsonObject, jsonValueIssue, MAX_JSON_DEPTH, record } from '../../src/domain/edge-schemas';
import { isStorableText, MAX_INSTANT_MS, MIN_INSTANT_MS } from '../../src/domain/input-checks';
import { z } from 'zod';

/** UTF-16 code units, lone surrogates and NUL included: everything JSON.parse can put in a string. */
const anyCodeUnits = fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength: 40 });
const anyText = fc.oneof(anyCodeUnits, fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 40 }));

/** What PostgreSQL stores as it is: text that survives UTF-8 (no lone surrogate) and holds no NUL. */
const postgresKeeps = (s: string) => !s.includes('\u0000') && Buffer.from(s, 'utf8').toString('utf8') === s;

const nested = (depth: number): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { k: value };
  return value;
};

describe('storable text and identifiers', () => {
  test('a string is storable exactly when PostgreSQL keeps it as it is', () => {
    fc.assert(
      fc.property(anyText, (s) => assert.equal(isStorableText(s), postgresKeeps(s))),
      { numRuns: 2000 },
    );
  });

  test('an identifier is 1 to 128 storable code units', () => {
    fc.assert(
      fc.property(fc.oneof(anyText, fc.string({ minLength: 100, maxLength: 200 })), (s) =>
        assert.equal(Identifier.safeParse(s).success, s.length >= 1 && s.length <= 128 && postgresKeeps(s)),
      ),
      { numRuns: 2000 },
    );
  });

  test('the refusal names the reason', () => {
    const issue = Identifier.safeParse('a\u0000b').error?.issues[0];
    assert.match(issue?.message ?? '', /NUL/);
    assert.match(Identifier.safeParse('\ud800').error?.issues[0]?.message ?? '', /surrogate/);
    assert.equal(Identifier.safeParse('\ud83d\ude00 ok').success, true);
  });
});

describe('instants', () => {
  test('every instant JavaScript represents is accepted exactly when it lies in 1970..9999 (UTC)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -8.64e15 + 86_400_000, max: 8.64e15 - 86_400_000 }),
        fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }),
        (ms, offsetMin) => {
          const date = new Date(ms);
          // The same instant written with an offset: the range is judged in UTC, not on the text.
          const local = new Date(ms + offsetMin * 60_000).toISOString();
          const sign = offsetMin < 0 ? '-' : '+';
          const abs = Math.abs(offsetMin);
          const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
          const withOffset = `${local.slice(0, 23)}${offset}`;
          const inRange = ms >= MIN_INSTANT_MS && ms <= MAX_INSTANT_MS;
          assert.equal(InstantSchema.safeParse(date.toISOString()).success, inRange);
          if (/^\d{4}-/.test(local)) assert.equal(InstantSchema.safeParse(withOffset).success, inRange, withOffset);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test('year 0, five- and six-digit years, impossible dates and instants without a zone are refused', () => {
    for (const text of [
      '0000-01-01T00:00:00Z',
      '0001-01-01T00:00:00+01:00',
      '1969-12-31T23:59:59.999Z',
      '10000-01-01T00:00:00Z',
      '+275760-09-13T00:00:00Z',
      '2026-02-30T00:00:00Z',
      '2026-03-01T00:00:00',
      '2026-03-01',
    ]) {
      assert.equal(InstantSchema.safeParse(text).success, false, text);
    }
    for (const text of ['1970-01-01T00:00:00Z', '9999-12-31T23:59:59.999Z', '2026-03-01T12:00:00+05:30']) {
      assert.equal(InstantSchema.safeParse(text).success, true, text);
    }
  });
});

describe('JSON values', () => {
  const keysAndStrings = (value: unknown): { keys: string[]; strings: string[] } => {
    const keys: string[] = [];
    const strings: string[] = [];
    const stack = [value];
    while (stack.length) {
      const v = stack.pop();
      if (typeof v === 'string') strings.push(v);
      else if (Array.isArray(v)) stack.push(...v);
      else if (v && typeof v === 'object') {
        for (const [k, item] of Object.entries(v)) {
          keys.push(k);
          stack.push(item);
        }
      }
    }
    return { keys, strings };
  };
  const depthOf = (value: unknown): number =>
    Array.isArray(value)
      ? 1 + Math.max(0, ...value.map(depthOf))
      : value && typeof value === 'object'
        ? 1 + Math.max(0, ...Object.values(value).map(depthOf))
        : 0;

  test('a parsed JSON value is refused exactly when a key or string is unstorable, or it nests too deep', () => {
    const json = fc.jsonValue({ maxDepth: 6, depthSize: 'small' }).chain((v) => fc.tuple(fc.constant(v), fc.integer({ min: 1, max: 8 })));
    const withText = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: 'small' },
        anyText,
        fc.integer(),
        fc.array(tie('value'), { maxLength: 3 }),
        fc.dictionary(anyText, tie('value'), { maxKeys: 3 }),
      ),
    })).value;
    fc.assert(
      fc.property(
        fc.oneof(
          json.map(([v, d]) => [v, d] as const),
          withText.map((v) => [v, 8] as const),
        ),
        ([value, maxDepth]) => {
          // "__proto__" is refused as a key (zod would drop it), never as a string value.
          const { keys, strings } = keysAndStrings(value);
          const expected =
            keys.every((k) => postgresKeeps(k) && k !== '__proto__') && strings.every(postgresKeeps) && depthOf(value) <= maxDepth;
          assert.equal(jsonValueIssue(value, { maxDepth }) === undefined, expected);
        },
      ),
      { numRuns: 1000 },
    );
  });

  test('10,000 levels are refused without overflowing the stack, at the level where the limit is crossed', () => {
    const issue = jsonValueIssue(nested(10_000));
    assert.match(issue?.message ?? '', new RegExp(`deeper than ${MAX_JSON_DEPTH}`));
    assert.equal(issue?.path.length, MAX_JSON_DEPTH);
    assert.equal(jsonValueIssue(nested(MAX_JSON_DEPTH)), undefined);
  });

  test('numbers JSON.parse turned into Infinity are refused; __proto__ keys are refused, not dropped', () => {
    assert.match(jsonValueIssue(JSON.parse('{"a": [1e400]}'))?.message ?? '', /finite/);
    const parsed = jsonObject().safeParse(JSON.parse('{"ok": 1, "x": {"__proto__": {"polluted": true}}}'));
    assert.deepEqual(
      parsed.error?.issues.map((i) => i.path),
      [['x', '__proto__']],
    );
    const filter = record(z.string(), z.string()).safeParse(JSON.parse('{"__proto__": "x"}'));
    assert.deepEqual(
      filter.error?.issues.map((i) => i.path),
      [['__proto__']],
    );
  });

  test('an object passes through unchanged, with the path of the first offending key', () => {
    const value = { a: [1, 'two', { b: null, c: true }], 'emoji 😀': 'é' };
    assert.deepEqual(jsonObject().parse(value), value);
    const issues = jsonObject().safeParse({ a: [1, { 'bad\u0000key': 1 }] }).error?.issues;
    assert.deepEqual(
      issues?.map((i) => i.path),
      [['a', 1, 'bad\u0000key']],
    );
  });
});
