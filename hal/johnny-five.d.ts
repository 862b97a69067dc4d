// The part of johnny-five and firmata-io that hal/rig.ts uses: neither package ships types. Only what is called is
// declared, as the packages' sources (node_modules/johnny-five/lib, node_modules/firmata-io/lib/firmata.js) define it.

declare module 'firmata-io' {
  import type { EventEmitter } from 'node:events';

  /** What firmata-io needs of a transport: a serialport-like emitter of 'open', 'data', 'close', 'error'. */
  export interface FirmataTransport {
    write(data: Buffer, callback?: (error?: Error | null) => void): unknown;
    on(event: 'open', listener: () => void): unknown;
    on(event: 'data', listener: (data: Buffer) => void): unknown;
    on(event: 'close', listener: (event?: { disconnect?: boolean; disconnected?: boolean }) => void): unknown;
    on(event: 'error', listener: (error: Error) => void): unknown;
  }

  export interface FirmataOptions {
    /** ms to wait for the board's unsolicited version before asking for it (default 5000). */
    readonly reportVersionTimeout?: number;
    /** Sent to the board once it is ready when given (default: not sent; the firmware's own, 19 ms). */
    readonly samplingInterval?: number;
    readonly skipCapabilities?: boolean;
  }

  export interface FirmataPin {
    readonly supportedModes: readonly number[];
    readonly analogChannel: number;
    mode?: number;
    value?: number;
    report?: number;
    state?: number;
  }

  export class Firmata extends EventEmitter {
    constructor(transport: FirmataTransport, options?: FirmataOptions);
    readonly isReady: boolean;
    readonly transport: FirmataTransport;
    readonly MODES: { readonly INPUT: number; readonly OUTPUT: number; readonly ANALOG: number; readonly PWM: number; readonly PULLUP: number };
    readonly HIGH: 1;
    readonly LOW: 0;
    readonly pins: readonly FirmataPin[];
    readonly analogPins: readonly number[];
    /** The Firmata protocol version the board reported. */
    readonly version: { readonly major?: number; readonly minor?: number };
    /** The firmware's name and version, from its QUERY_FIRMWARE reply. */
    readonly firmware: { readonly name?: string; readonly version?: { readonly major: number; readonly minor: number } };
    /** The timer that asks for the version when the board has not announced itself (reportVersionTimeout). */
    readonly reportVersionTimeoutId: ReturnType<typeof setTimeout> | undefined;
    /** Writes not yet handed to the transport's callback. */
    readonly pending: number;
    reset(): void;
    pinMode(pin: number, mode: number): void;
    reportVersion(callback: () => void): void;
    queryFirmware(callback: () => void): void;
    queryPinState(pin: number, callback: () => void): void;
    setSamplingInterval(intervalMs: number): void;
    getSamplingInterval(): number;
    reportDigitalPin(pin: number, value: 0 | 1): void;
    reportAnalogPin(pin: number, value: 0 | 1): void;
  }

  interface BindTransport {
    (transport: unknown): typeof Firmata;
    readonly Firmata: typeof Firmata;
  }
  const bindTransport: BindTransport;
  export default bindTransport;
}

declare module 'johnny-five' {
  import type { EventEmitter } from 'node:events';
  import type { Firmata } from 'firmata-io';

  interface BoardOptions {
    readonly io: Firmata;
    readonly id?: string;
    readonly repl?: boolean;
    readonly debug?: boolean;
    /** Installs a SIGINT handler that exits the process (default true). */
    readonly sigint?: boolean;
    /** ms from "connect" to "ready" before the board emits "error" (default 10 000). */
    readonly timeout?: number;
  }

  class Board extends EventEmitter {
    constructor(options: BoardOptions);
    readonly io: Firmata;
    readonly isReady: boolean;
    readonly isConnected: boolean;
    /** The timer from "connect" that emits "error" when "ready" does not follow within timeout. */
    readonly timer: ReturnType<typeof setTimeout> | null;
  }

  interface ComponentOptions {
    readonly board: Board;
    readonly pin: number | string;
  }

  class Pin extends EventEmitter {
    static readonly INPUT: 0;
    static readonly OUTPUT: 1;
    static readonly ANALOG: 2;
    constructor(options: ComponentOptions & { readonly mode?: number; readonly type?: 'digital' | 'analog' });
    readonly addr: number;
    readonly value: number;
    high(): this;
    low(): this;
  }

  class Button extends EventEmitter {
    constructor(options: ComponentOptions & { readonly invert?: boolean; readonly isPullup?: boolean; readonly holdtime?: number });
    /** The last level the board reported, through invert: high (not inverted) is down. */
    readonly isDown: boolean;
    readonly value: number;
  }

  class Sensor extends EventEmitter {
    constructor(options: ComponentOptions & { readonly freq?: number; readonly threshold?: number; readonly type?: 'analog' | 'digital' });
    /** The last reading the board reported, unfiltered (null before the first). */
    readonly raw: number | null;
    /** The median of the readings in the last freq window. */
    readonly value: number;
    /** Full scale: the board's ADC resolution (1023 on an ATmega328P). */
    readonly resolution: number;
    disable(): this;
    enable(): this;
  }

  const five: {
    readonly Board: typeof Board;
    readonly Pin: typeof Pin;
    readonly Button: typeof Button;
    readonly Sensor: typeof Sensor;
  };
  export default five;
  export type { Board, Pin, Button, Sensor, BoardOptions };
}
