import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { currencyCodes, isCurrency, minorUnits } from '../../src/domain/currencies';
import {
  Decimal,
  formatExact,
  formatMoney,
  InvalidDecimalError,
  parseDecimal,
  fromMinorUnits,
  roundToMinor,
  toMinorUnits,
  type RoundingMode,
} from '../../src/domain/money';

describe('Decimal configuration', () => {
  test('never uses exponent notation, however small or large', () => {
    assert.equal(new Decimal('0.000000001').toString(), '0.000000001');
    assert.equal(new Decimal('1000000000000').times('1000000000000').toString(), '1000000000000000000000000');
    assert.equal(formatExact(parseDecimal('0.00000000000000000001')), '0.00000000000000000001');
  });

  test('keeps products of 20-digit inputs exact', () => {
    // (10^20 − 10^-20)² = 10^40 − 2 + 10^-40: 80 significant digits, none lost.
    const a = parseDecimal('99999999999999999999.99999999999999999999');
    assert.equal(formatExact(a.times(a)), '9999999999999999999999999999999999999998.0000000000000000000000000000000000000001');
  });
});

describe('parseDecimal', () => {
  for (const [input, expected] of [
    ['12.50', '12.5'],
    ['0', '0'],
    ['007', '7'],
    ['-3.25', '-3.25'],
    [42, '42'],
    [0, '0'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
  ] as const) {
    test(`accepts ${JSON.stringify(input)}`, () => assert.equal(formatExact(parseDecimal(input)), expected));
  }

  for (const input of [
    'NaN',
    'Infinity',
    '-Infinity',
    '1e3',
    '1E-9',
    '0x10',
    '1.',
    '.5',
    '+1',
    '',
    ' 1',
    '1 ',
    '1,5',
    '1_000',
    '123456789012345678901',
    '0.123456789012345678901',
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    2 ** 53,
  ]) {
    test(`refuses ${JSON.stringify(input) ?? String(input)}`, () => {
      assert.throws(
        () => parseDecimal(input),
        (err: unknown) => err instanceof InvalidDecimalError && /is not a decimal/.test(err.message),
      );
    });
  }
});

describe('roundToMinor', () => {
  const cases: { currency: 'USD' | 'JPY' | 'KWD'; amount: string; half_up: string; half_even: string }[] = [
    { currency: 'USD', amount: '2.345', half_up: '2.35', half_even: '2.34' },
    { currency: 'USD', amount: '2.355', half_up: '2.36', half_even: '2.36' },
    { currency: 'USD', amount: '2.3449999999', half_up: '2.34', half_even: '2.34' },
    { currency: 'USD', amount: '0.005', half_up: '0.01', half_even: '0.00' },
    { currency: 'USD', amount: '-2.345', half_up: '-2.35', half_even: '-2.34' },
    { currency: 'USD', amount: '72', half_up: '72.00', half_even: '72.00' },
    { currency: 'JPY', amount: '2.5', half_up: '3', half_even: '2' },
    { currency: 'JPY', amount: '3.5', half_up: '4', half_even: '4' },
    { currency: 'JPY', amount: '1499.4999', half_up: '1499', half_even: '1499' },
    { currency: 'KWD', amount: '1.0005', half_up: '1.001', half_even: '1.000' },
    { currency: 'KWD', amount: '1.0015', half_up: '1.002', half_even: '1.002' },
    { currency: 'KWD', amount: '0.1', half_up: '0.100', half_even: '0.100' },
  ];
  for (const c of cases) {
    for (const mode of ['half_up', 'half_even'] as RoundingMode[]) {
      test(`${c.amount} ${c.currency} ${mode} → ${c[mode]}`, () => {
        assert.equal(formatMoney(roundToMinor(parseDecimal(c.amount), c.currency, mode), c.currency), c[mode]);
      });
    }
  }

  test('defaults to half_up', () => {
    assert.equal(formatMoney(roundToMinor(parseDecimal('0.125'), 'EUR'), 'EUR'), '0.13');
  });
});

describe('formatMoney', () => {
  test('pads to exactly the minor digits', () => {
    assert.equal(formatMoney(parseDecimal('72'), 'USD'), '72.00');
    assert.equal(formatMoney(parseDecimal('1500'), 'JPY'), '1500');
    assert.equal(formatMoney(parseDecimal('0.1'), 'BHD'), '0.100');
    assert.equal(formatMoney(parseDecimal('-0'), 'USD'), '0.00');
  });

  test('refuses to round silently', () => {
    assert.throws(() => formatMoney(parseDecimal('0.125'), 'USD'), /round it with roundToMinor first/);
    assert.throws(() => formatMoney(parseDecimal('1.5'), 'JPY'), /more than 0 decimal places for JPY/);
  });
});

describe('currencies', () => {
  test('minor units of the common and the unusual', () => {
    assert.deepEqual(
      ['USD', 'EUR', 'GBP', 'JPY', 'KRW', 'CLP', 'ISK', 'KWD', 'BHD', 'OMR', 'TND'].map((c) => (isCurrency(c) ? minorUnits(c) : 'missing')),
      [2, 2, 2, 0, 0, 0, 0, 3, 3, 3, 3],
    );
  });

  test('refuses lower case, withdrawn and made-up codes', () => {
    for (const code of ['usd', 'HRK', 'ZWL', 'XYZ', '', 'USDT', 'toString', '__proto__']) assert.equal(isCurrency(code), false, code);
  });

  test('every code is three upper-case letters with 0, 2 or 3 minor digits', () => {
    assert.ok(currencyCodes.length > 150);
    for (const code of currencyCodes) {
      assert.match(code, /^[A-Z]{3}$/);
      assert.ok([0, 2, 3].includes(minorUnits(code)), code);
    }
  });
});

describe('minor units, as payment providers count money', () => {
  test('to and from the count of minor units, for currencies of 0, 2 and 3 decimals', () => {
    assert.equal(toMinorUnits('19.99', 'USD'), '1999');
    assert.equal(toMinorUnits('1500', 'JPY'), '1500');
    assert.equal(toMinorUnits('1.234', 'BHD'), '1234');
    assert.equal(fromMinorUnits('1999', 'USD').toFixed(), '19.99');
    assert.equal(fromMinorUnits('1500', 'JPY').toFixed(), '1500');
    assert.equal(fromMinorUnits('1234', 'BHD').toFixed(), '1.234');
  });
});
