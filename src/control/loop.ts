// The supervisory loop: fixed rate on the injected clock, drift-free, with a deadline monitor.
import type { Clock, Timer } from '../../hardware/clock.ts';

export const maxLoopRateHz = 500;

export interface LoopOptions {
  readonly clock: Clock;
  /** Ticks per second: 1–500 (default 100). */
  readonly rateHz?: number;
  /** A single tick later than this is an overrun (default: 3 periods). */
  readonly latenessBudgetMs?: number;
  /** This many consecutive ticks each later than half a period is an overrun too (default 10). */
  readonly sustainedLateTicks?: number;
}

export interface TickInfo {
  readonly index: number;
  readonly scheduledMs: number;
  readonly latenessMs: number;
}

export interface LatenessStats {
  readonly ticks: number;
  readonly skippedTicks: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

const keptSamples = 10_000;

export class SupervisoryLoop {
  readonly periodMs: number;
  private readonly latenessBudgetMs: number;
  private readonly sustainedLateTicks: number;
  private readonly tickListeners: ((tick: TickInfo) => void)[] = [];
  private readonly overrunListeners: ((reason: string, tick: TickInfo) => void)[] = [];
  private readonly lateness: number[] = [];
  private timer: Timer | null = null;
  private originMs = 0;
  private index = 0;
  private ticks = 0;
  private skipped = 0;
  private lateInARow = 0;
  private maxLatenessMs = 0;

  constructor(private readonly options: LoopOptions) {
    const rateHz = options.rateHz ?? 100;
    if (!Number.isFinite(rateHz) || rateHz < 1 || rateHz > maxLoopRateHz) {
      throw new RangeError(`loop rate ${String(rateHz)} Hz is outside 1–${maxLoopRateHz} Hz`);
    }
    this.periodMs = 1000 / rateHz;
    this.latenessBudgetMs = options.latenessBudgetMs ?? 3 * this.periodMs;
    this.sustainedLateTicks = options.sustainedLateTicks ?? 10;
  }

  onTick(listener: (tick: TickInfo) => void): void {
    this.tickListeners.push(listener);
  }

  /** Called when the loop falls behind its deadlines; the listener decides what is safe (stop the pen). */
  onOverrun(listener: (reason: string, tick: TickInfo) => void): void {
    this.overrunListeners.push(listener);
  }

  start(): void {
    if (this.timer !== null) return;
    this.originMs = this.options.clock.nowMs();
    this.index = 0;
    this.schedule();
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
  }

  get running(): boolean {
    return this.timer !== null;
  }

  stats(): LatenessStats {
    const sorted = [...this.lateness].sort((a, b) => a - b);
    const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
    return { ticks: this.ticks, skippedTicks: this.skipped, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: this.maxLatenessMs };
  }

  // Tick n is due at origin + n * period, whenever the previous one ran: errors do not accumulate.
  private schedule(): void {
    const dueMs = this.originMs + this.index * this.periodMs;
    this.timer = this.options.clock.after(dueMs - this.options.clock.nowMs(), () => this.fire(dueMs));
  }

  private fire(scheduledMs: number): void {
    const latenessMs = Math.max(0, this.options.clock.nowMs() - scheduledMs);
    const tick: TickInfo = { index: this.index, scheduledMs, latenessMs };
    this.record(latenessMs);
    // A tick that missed whole periods is not replayed in a burst: skip to the next one still ahead.
    const behind = Math.floor(latenessMs / this.periodMs);
    this.skipped += behind;
    this.index += 1 + behind;
    this.schedule();
    // Overruns first: a tick that comes after a stall must not act on the world as if on time.
    const reason = this.overrunReason(latenessMs);
    if (reason !== null) for (const listener of this.overrunListeners) listener(reason, tick);
    for (const listener of this.tickListeners) listener(tick);
  }

  private record(latenessMs: number): void {
    this.lateness[this.ticks % keptSamples] = latenessMs;  // a ring: the newest keptSamples ticks
    this.ticks++;
    this.maxLatenessMs = Math.max(this.maxLatenessMs, latenessMs);
  }

  private overrunReason(latenessMs: number): string | null {
    if (latenessMs > this.latenessBudgetMs) {
      return `the host loop ran ${latenessMs.toFixed(0)} ms late (budget ${this.latenessBudgetMs.toFixed(0)} ms): the host stalled`;
    }
    this.lateInARow = latenessMs > this.periodMs / 2 ? this.lateInARow + 1 : 0;
    if (this.lateInARow >= this.sustainedLateTicks) {
      return `the host loop was late on ${this.lateInARow} ticks in a row: the host cannot keep ${(1000 / this.periodMs).toFixed(0)} Hz`;
    }
    return null;
  }
}
