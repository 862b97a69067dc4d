// The supervisory loop on virtual time: drift-free ticks, skipped ticks instead of bursts, and overrun detection.
import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../hardware/clock.ts';
import { SupervisoryLoop } from '../../src/control/loop.ts';

describe('the supervisory loop', () => {
  it('ticks at exact multiples of its period, however late each tick was served', { tags: ['REQ-HOST-SUPERVISION'] }, () => {
    const clock = new VirtualClock();
    const loop = new SupervisoryLoop({ clock, rateHz: 100 });
    const scheduled: number[] = [];
    loop.onTick((tick) => scheduled.push(tick.scheduledMs));
    loop.start();
    // Serve the clock in uneven steps, each a little late: the schedule must not drift.
    for (let t = 0; t <= 1000; t += 3.7) clock.stall(3.7);
    expect(scheduled.slice(0, 5)).toEqual([0, 10, 20, 30, 40]);
    expect(scheduled).toHaveLength(101);
    expect(scheduled.at(-1)).toBe(1000);
    expect(loop.stats().maxMs).toBeLessThanOrEqual(3.7 + 1e-9);
    expect(loop.stats().skippedTicks).toBe(0);
    loop.stop();
  });

  it('skips the ticks it missed during a stall and reports the stall as an overrun', { tags: ['REQ-HOST-SUPERVISION'] }, () => {
    const clock = new VirtualClock();
    const loop = new SupervisoryLoop({ clock, rateHz: 100, latenessBudgetMs: 125 });
    const overruns: string[] = [];
    const ticks: number[] = [];
    loop.onTick((tick) => ticks.push(tick.index));
    loop.onOverrun((reason) => overruns.push(reason));
    loop.start();
    clock.advanceTo(50);
    clock.stall(300);  // the event loop blocked for 300 ms: the tick due at 60 ms runs at 350 ms
    clock.advanceTo(400);
    expect(overruns).toHaveLength(1);
    expect(overruns[0]).toMatch(/the host loop ran 290 ms late \(budget 125 ms\): the host stalled/);
    expect(loop.stats().skippedTicks).toBe(29);
    expect(ticks.filter((index) => index > 6 && index < 36)).toEqual([]);  // no burst of catch-up ticks
  });

  it('reports sustained lateness', { tags: ['REQ-HOST-SUPERVISION'] }, () => {
    const clock = new VirtualClock();
    const loop = new SupervisoryLoop({ clock, rateHz: 100, sustainedLateTicks: 10 });
    const overruns: string[] = [];
    loop.onOverrun((reason) => overruns.push(reason));
    loop.start();
    clock.stall(6);
    for (let i = 0; i < 20; i++) clock.stall(10);  // every tick served 6 ms late, more than half a period
    expect(overruns[0]).toMatch(/late on 10 ticks in a row/);
  });

  it('refuses rates outside 1–500 Hz', { tags: ['REQ-HOST-SUPERVISION'] }, () => {
    expect(() => new SupervisoryLoop({ clock: new VirtualClock(), rateHz: 1000 })).toThrow('loop rate 1000 Hz is outside 1–500 Hz');
  });
});
