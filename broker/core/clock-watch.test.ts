import { describe, expect, test } from 'vitest';
import { ClockWatch } from './clock-watch.js';

const T0 = 1_800_000_000;

/** A wall clock and a monotonic clock the test moves: `pass` moves both, `step` the wall clock alone. */
function clocks(opts = { skew: 30, hold: 3600 }) {
  let wall = T0;
  let monoMs = 5_000;
  const watch = new ClockWatch(opts, wall, monoMs);
  return {
    pass(s: number) {
      wall += s;
      monoMs += s * 1000;
    },
    step(s: number) {
      wall += s;
    },
    check: () => watch.check(wall, monoMs),
  };
}

describe('ClockWatch', () => {
  test('time passing normally is never a jump, however long', () => {
    const c = clocks();
    for (let i = 0; i < 100; i++) {
      c.pass(30);
      expect(c.check()).toMatchObject({ event: null, hold: false, drift: 0 });
    }
  });

  test('steps within the skew are tolerated and do not add up across checks', () => {
    const c = clocks();
    for (let i = 0; i < 10; i++) {
      c.pass(10);
      c.step(25);
      expect(c.check()).toMatchObject({ event: null, hold: false });
    }
  });

  test('a forward jump holds upkeep until the clock returns', () => {
    const c = clocks();
    c.pass(10);
    c.step(7200);
    expect(c.check()).toMatchObject({
      event: 'jumped',
      hold: true,
      drift: 7200,
      wallElapsed: 7210,
      monotonicElapsed: 10,
    });
    c.pass(30);
    expect(c.check()).toMatchObject({ event: null, hold: true, drift: 7200, disagreeingFor: 30 });
    c.step(-7200);
    expect(c.check()).toMatchObject({ event: 'returned', hold: false, disagreeingFor: 0 });
    c.pass(30);
    expect(c.check()).toMatchObject({ event: null, hold: false });
  });

  test('a forward jump that lasts the whole hold is accepted as the right time', () => {
    const c = clocks({ skew: 30, hold: 60 });
    c.step(7200);
    expect(c.check()).toMatchObject({ event: 'jumped', hold: true });
    c.pass(59);
    expect(c.check()).toMatchObject({ event: null, hold: true });
    c.pass(1);
    expect(c.check()).toMatchObject({ event: 'accepted', hold: false, disagreeingFor: 60 });
    // From then on the new time is the reference.
    c.pass(30);
    expect(c.check()).toMatchObject({ event: null, hold: false, drift: 0 });
  });

  test('with no hold a jump is reported and accepted at once', () => {
    const c = clocks({ skew: 30, hold: 0 });
    c.step(7200);
    expect(c.check()).toMatchObject({ event: 'jumped', hold: false });
    c.pass(30);
    expect(c.check()).toMatchObject({ event: null, hold: false });
  });

  test('a backward step is reported but holds nothing: upkeep can only run late', () => {
    const c = clocks();
    c.step(-3600);
    expect(c.check()).toMatchObject({ event: 'jumped', hold: false, drift: -3600 });
    c.pass(30);
    expect(c.check()).toMatchObject({ event: null, hold: false });
    // Stepping forward again is the return, not a new forward jump.
    c.step(3600);
    expect(c.check()).toMatchObject({ event: 'returned', hold: false });
  });

  test('a skew of 0 still allows for the wall clock reading whole seconds', () => {
    let monoMs = 999;
    const watch = new ClockWatch({ skew: 0, hold: 60 }, T0, monoMs);
    monoMs += 1998; // 1.998 s passed; the wall clock, read in whole seconds, says 1 s
    expect(watch.check(T0 + 1, monoMs)).toMatchObject({ event: null, hold: false });
    expect(() => new ClockWatch({ skew: -1, hold: 0 }, T0, 0)).toThrow(RangeError);
  });
});
