import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MAX_JSON_DEPTH } from '../../src/domain/edge-schemas';
import { EventInputSchema } from '../../src/domain/metering/event-input';
import { validateEvent } from '../../src/domain/metering/event-validator';

/*
 * The hand-written validator of the ingest hot path against the zod schema it stands in for:
 * the same generated inputs, valid and invalid, must get the same decision, the same parsed
 * event, and the same issues (code, path, message) in the same order.
 */

/** What both say about one input, in one comparable shape. */
function zodVerdict(input: unknown) {
  const r = EventInputSchema.safeParse(input);
  return r.success
    ? { success: true, data: r.data }
    : { success: false, issues: r.error.issues.map((i) => ({ code: i.code, path: i.path, message: i.message })) };
}
function handVerdict(input: unknown) {
  const r = validateEvent(input);
  return r.success ? { success: true, data: r.data } : { success: false, issues: r.error.issues.map((i) => ({ ...i })) };
}
const agree = (input: unknown) => assert.deepStrictEqual(handVerdict(input), zodVerdict(input));

/** Every UTF-16 code unit: NUL and lone surrogates included. */
const codeUnits = (maxLength: number, minLength = 0) =>
  fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), minLength, maxLength });
const plainText = (min: number, max: number) => fc.string({ unit: 'grapheme-ascii', minLength: min, maxLength: max });

/** Strings around the identifier bounds (0, 1, 128, 129 code units) and with what PostgreSQL cannot store. */
const identifierLike = fc.oneof(
  plainText(1, 20),
  plainText(126, 130),
  fc.constantFrom(
    '',
    'a',
    'x'.repeat(128),
    'x'.repeat(129),
    '\u0000',
    'a\u0000b',
    '\ud800',
    'a\udc00',
    '\ud83d\ude00',
    '😀'.repeat(64),
    '😀'.repeat(65),
  ),
  codeUnits(10),
  fc.tuple(codeUnits(3), plainText(125, 130)).map(([a, b]) => a + b),
);

/** Any JavaScript value a JSON body or a caller could hand over, and a few beyond (NaN, Infinity, bigint, Date). */
const oddValue = fc.oneof(
  fc.constantFrom(null, undefined, true, false, 0, -0, NaN, Infinity, -Infinity, 1e308, Number.MAX_SAFE_INTEGER + 2, 10n, [], {}),
  fc.double(),
  fc.integer(),
  fc.constantFrom(new Date(0), new Map(), Object.create(null) as object),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.array(fc.constant(0), { minLength: 127, maxLength: 130 }),
  fc.oneof(fc.integer({ min: -1, max: 200 }), fc.constantFrom('3', 'x', null, NaN, [])).map((length) => ({ length })),
);

const pad = (n: number, width: number) => String(n).padStart(width, '0');
/** Instants as clients write them: valid, off by one field, out of range, with and without offsets and fractions. */
const timestampLike = fc.oneof(
  fc.date({ min: new Date(-62198755200000), max: new Date(253402300799999), noInvalidDate: true }).map((d) => d.toISOString()),
  fc
    .record({
      year: fc.integer({ min: 0, max: 9999 }),
      month: fc.integer({ min: 0, max: 13 }),
      day: fc.integer({ min: 0, max: 32 }),
      hour: fc.integer({ min: 0, max: 25 }),
      minute: fc.integer({ min: 0, max: 60 }),
      second: fc.integer({ min: 0, max: 61 }),
      fraction: fc.constantFrom('', '.', '.1', '.123', '.123456789', '.9999'),
      zone: fc.constantFrom('Z', 'z', '+00:00', '-23:59', '+24:00', '+14:00', '-01:30', '', '+0100', ' Z'),
      seconds: fc.boolean(),
    })
    .map(
      (t) =>
        `${pad(t.year, 4)}-${pad(t.month, 2)}-${pad(t.day, 2)}T${pad(t.hour, 2)}:${pad(t.minute, 2)}${t.seconds ? `:${pad(t.second, 2)}${t.fraction}` : ''}${t.zone}`,
    ),
  fc.constantFrom(
    '1970-01-01T00:00:00Z',
    '1969-12-31T23:59:59.999Z',
    '1970-01-01T00:59:59+01:00',
    '9999-12-31T23:59:59.999Z',
    '9999-12-31T23:59:59.9999Z',
    '9999-12-31T23:00:00-01:00',
    '0000-01-01T00:00:00Z',
    '2024-02-29T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2026-01-01',
    '2026-01-01T00:00Z',
    '2026-01-01T00:00:00\u0000Z',
    '2026-01-01 00:00:00Z',
    '',
  ),
  codeUnits(30),
);

/** A key as JSON.parse makes them, `__proto__` included as an own enumerable key. */
const keyLike = fc.oneof(
  { weight: 5, arbitrary: plainText(1, 8) },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', '', 'constructor', 'k'.repeat(128), 'k'.repeat(129), 'a\u0000', '\udfff', '~/') },
  { weight: 1, arbitrary: codeUnits(4) },
);
/** Sets each entry as JSON.parse does (defineProperty), so that `__proto__` stays an own key. */
function jsonObjectOf(entries: Array<[string, unknown]>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  return o;
}
const { json } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom(null, true, false, 0, -1.5, 1e308, Infinity, -Infinity),
    fc.double(),
    fc.oneof(plainText(0, 10), codeUnits(6)),
    fc.array(tie('json'), { maxLength: 4 }),
    fc.array(fc.tuple(keyLike, tie('json')), { maxLength: 4 }).map(jsonObjectOf),
  ),
}));
/** A value nested `depth` levels (objects and arrays alternating), around the limit. */
const nestedTo = fc.tuple(fc.integer({ min: MAX_JSON_DEPTH - 2, max: MAX_JSON_DEPTH + 2 }), fc.boolean()).map(([depth, objectFirst]) => {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = (i % 2 === 0) === objectFirst ? { k: value } : [value];
  return value;
});
const propertiesLike = fc.oneof(
  fc.array(fc.tuple(keyLike, json), { maxLength: 5 }).map(jsonObjectOf),
  nestedTo.map((v) => ({ deep: v })),
  nestedTo,
  fc.constant({ tokens: '12.5', model: 'small' }),
  oddValue,
  json,
);

const FIELDS = ['id', 'customer', 'type', 'timestamp', 'properties'] as const;
const fieldValue = {
  id: fc.oneof({ weight: 4, arbitrary: identifierLike }, { weight: 1, arbitrary: oddValue }),
  customer: fc.oneof({ weight: 4, arbitrary: identifierLike }, { weight: 1, arbitrary: oddValue }),
  type: fc.oneof({ weight: 4, arbitrary: identifierLike }, { weight: 1, arbitrary: oddValue }),
  timestamp: fc.oneof({ weight: 4, arbitrary: timestampLike }, { weight: 1, arbitrary: oddValue }),
  properties: propertiesLike,
};

/** An event object: each declared field absent, valid-looking or odd, plus sometimes extra keys. */
const eventLike = fc
  .tuple(
    fc.record(fieldValue, { requiredKeys: [] }),
    fc.array(fc.tuple(fc.oneof(keyLike, fc.constantFrom(...FIELDS)), json), { maxLength: 3 }),
    fc.nat(3),
  )
  .map(([fields, extra, extraChance]) => jsonObjectOf([...Object.entries(fields), ...(extraChance === 0 ? extra : [])]));

/** Mostly valid events, so that the accepting path is exercised as much as the refusing one. */
const validEvent = fc
  .record(
    {
      id: plainText(1, 128),
      customer: plainText(1, 128),
      type: plainText(1, 128),
      timestamp: fc.date({ min: new Date(0), max: new Date(253402300799999), noInvalidDate: true }).map((d) => d.toISOString()),
      properties: fc.dictionary(
        plainText(1, 128).filter((k) => k !== '__proto__'),
        fc.jsonValue({ maxDepth: 3 }),
        { maxKeys: 4 },
      ),
    },
    { requiredKeys: ['id', 'type'] },
  )
  .map((e) => JSON.parse(JSON.stringify(e)) as unknown);

describe('the hand-written event validator says what EventInputSchema says', () => {
  test('on events built field by field: absent, valid, odd, extra keys', () => {
    fc.assert(fc.property(eventLike, agree), { numRuns: 20_000 });
  });

  test('on valid events, parsed value included', () => {
    // (fast-check's JSON values may hold a "__proto__" key, refused by both: most, not all, are valid.)
    let accepted = 0;
    fc.assert(
      fc.property(validEvent, (e) => {
        agree(e);
        if (validateEvent(e).success) accepted++;
      }),
      { numRuns: 5_000 },
    );
    assert.ok(accepted > 4_000, `only ${accepted} of 5000 generated events were valid`);
  });

  test('on anything that is not an event object', () => {
    fc.assert(fc.property(fc.oneof(oddValue, json, fc.anything()), agree), { numRuns: 5_000 });
  });

  test('on events whose fields are each checked at their edge', () => {
    fc.assert(
      fc.property(fc.constantFrom(...FIELDS), fc.oneof(identifierLike, timestampLike, propertiesLike, oddValue), (field, value) =>
        agree(
          jsonObjectOf([
            ['id', 'evt-1'],
            ['type', 'tokens'],
            [field, value],
          ]),
        ),
      ),
      { numRuns: 10_000 },
    );
  });

  test('examples: the accepting and each refusing branch', () => {
    const samples: unknown[] = [
      { id: 'e', type: 't' },
      { id: 'e', type: 't', customer: undefined, timestamp: undefined, properties: undefined },
      JSON.parse('{"id":"e","type":"t","__proto__":{"id":"x"}}'),
      JSON.parse('{"id":"e","type":"t","properties":{"a":{"__proto__":1}}}'),
      JSON.parse('{"id":"e","type":"t","properties":{"n":1e999}}'),
      { id: 'x'.repeat(200) + '\u0000\ud800', type: 5, customer: null, timestamp: 'nope', properties: [], extra: 1, more: 2 },
      Object.assign(Object.create({ id: 'inherited', type: 't' }) as object, { properties: {} }),
      null,
      'event',
      [],
    ];
    for (const s of samples) agree(s);
  });
});
