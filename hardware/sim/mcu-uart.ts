// A simulated MCU's serial port as the host sees it: the Transport contract of hal/link/transport.ts (write, onData,
// onClose, close), and the serialport-style events ('data', 'close') that libraries written for node-serialport listen
// to, such as firmata-io. The virtual pen's and the virtual rig's UARTs are both this.
import { EventEmitter } from 'node:events';

type DataListener = (bytes: Uint8Array) => void;
type CloseListener = (error?: Error) => void;

export class McuUart extends EventEmitter {
  private readonly dataListeners: DataListener[] = [];
  private readonly closeListeners: CloseListener[] = [];
  private open = true;

  /** receive: hands the host's bytes to the MCU's receiver. */
  constructor(readonly description: string, private readonly receive: (bytes: Uint8Array) => void) {
    super();
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** callback: as serialport's, called once the bytes are handed over (firmata-io counts its pending writes by it). */
  write(bytes: Uint8Array, callback?: (error?: Error | null) => void): void {
    if (!this.open) throw new Error(`the ${this.description} port is closed`);
    this.receive(bytes);
    if (callback !== undefined) setImmediate(() => callback(null));
  }

  onData(listener: DataListener): void {
    this.dataListeners.push(listener);
  }

  onClose(listener: CloseListener): void {
    this.closeListeners.push(listener);
  }

  close(): Promise<void> {
    if (this.open) {
      this.open = false;
      for (const listener of this.closeListeners) listener();
      this.emit('close');
    }
    return Promise.resolve();
  }

  /** Called by the simulation with bytes the firmware transmitted. */
  deliver(bytes: Uint8Array): void {
    if (!this.open) return;
    for (const listener of this.dataListeners) listener(bytes);
    if (this.listenerCount('data') > 0) this.emit('data', Buffer.from(bytes));  // the copy only for serialport-style readers
  }
}
