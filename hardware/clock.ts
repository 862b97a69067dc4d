// The clock module: the only place that reads time or sets timers. Real time for hardware, virtual time for tests.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since an arbitrary origin, monotonic. */
  nowMs(): number;
  /** Calls fn once, delayMs from now. */
  after(delayMs: number, fn: () => void): Timer;
  /** Resolves after delayMs on this clock. */
  sleep(delayMs: number): Promise<void>;
  /** Wall-clock time for records (ms since 1970); virtual clocks count from a fixed origin. */
  epochMs(): number;
}

export class RealClock implements Clock {
  private readonly origin = performance.now();
  nowMs(): number {
    return performance.now() - this.origin;
  }
  after(delayMs: number, fn: () => void): Timer {
    // Node truncates a fractional delay to whole ms, which would fire early; round up so a timer is never early.
    const handle = setTimeout(fn, Math.max(0, Math.ceil(delayMs)));
    return { cancel: () => clearTimeout(handle) };
  }
  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.after(delayMs, resolve));
  }
  epochMs(): number {
    return Date.now();
  }
}

interface PendingTimer {
  readonly dueMs: number;
  readonly order: number;
  readonly fn: () => void;
  cancelled: boolean;
}

/** Time advanced by its owner (the virtual pen, from simulated CPU cycles); timers fire in due order. */
export class VirtualClock implements Clock {
  private now = 0;

  /** originEpochMs: the wall-clock time virtual time 0 stands for, so records replay identically. */
  constructor(private readonly originEpochMs = Date.UTC(2026, 0, 1)) {}

  epochMs(): number {
    return this.originEpochMs + this.now;
  }
  private order = 0;
  private timers: PendingTimer[] = [];

  nowMs(): number {
    return this.now;
  }

  after(delayMs: number, fn: () => void): Timer {
    const timer: PendingTimer = { dueMs: this.now + Math.max(0, delayMs), order: this.order++, fn, cancelled: false };
    this.timers.push(timer);
    return { cancel: () => { timer.cancelled = true; } };
  }

  sleep(delayMs: number): Promise<void> {
    return new Promise((resolve) => this.after(delayMs, resolve));
  }

  /** When the next live timer is due, or Infinity. */
  nextDueMs(): number {
    let next = Infinity;
    for (const timer of this.timers) if (!timer.cancelled && timer.dueMs < next) next = timer.dueMs;
    return next;
  }

  /**
   * Time passes with nothing running, as when the event loop is blocked: then every timer that came due fires,
   * late, at the new time.
   */
  stall(durationMs: number): void {
    this.now += durationMs;
    for (;;) {
      const due = this.timers.filter((t) => !t.cancelled && t.dueMs <= this.now).sort((a, b) => a.dueMs - b.dueMs || a.order - b.order)[0];
      if (due === undefined) break;
      due.cancelled = true;
      due.fn();
    }
    this.timers = this.timers.filter((t) => !t.cancelled);
  }

  /** Moves time forward to nowMs, firing every timer due by then in order. */
  advanceTo(nowMs: number): void {
    for (;;) {
      const due = this.timers
        .filter((t) => !t.cancelled && t.dueMs <= nowMs)
        .sort((a, b) => a.dueMs - b.dueMs || a.order - b.order)[0];
      if (due === undefined) break;
      this.now = Math.max(this.now, due.dueMs);
      due.cancelled = true;
      due.fn();
    }
    this.timers = this.timers.filter((t) => !t.cancelled);
    this.now = Math.max(this.now, nowMs);
  }
}
