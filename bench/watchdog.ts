// Watchdog bite: the main loop hung (VirtualPen.hangFirmware) while the needle runs at the deepest working depth; from the
// hang, and from the last WDR executed, to the motor drive off and the needle home, in simulated time.
import { pen as penDescription } from '../hardware/description.ts';
import { PenDevice } from '../hal/device.ts';
import { progress, round, type Figure } from './figure.ts';
import { closeSession, cyclesPerMs, pauseAfterHeartbeat, startSession } from './running-pen.ts';

// Deepest working depth: the longest way home.
const workingDepthMm = penDescription.depthWindowMm.max;
const strokesPerSecond = 100;
const limitMs = 200;  // beyond any watchdog period the firmware uses, short of the heartbeat timeout's 250 ms

export async function measure(): Promise<Figure[]> {
  const session = await startSession({ seed: 1, depthMm: workingDepthMm, strokesPerSecond });
  const { pen } = session;
  // A fresh heartbeat, then the MCU runs alone: host silence cannot trip before the watchdog does.
  await pauseAfterHeartbeat(session);
  if (pen.plant.motorDrive() === 0) throw new Error('watchdog: the motor was off before the hang');
  const bitesBefore = pen.watchdogBites;
  const hangCycle = pen.totalCycles;
  const kicks = pen.hangFirmware();
  if (pen.runUntil(() => kicks.includes(pen.mcu.pc), 5) === null) throw new Error('watchdog: the firmware did not reach a patched kick');
  const lastKickMs = pen.lastWatchdogKickMs ?? Number.NaN;
  const lastKickCycle = lastKickMs * cyclesPerMs;

  const off = pen.runUntil(() => pen.plant.motorDrive() === 0, limitMs) !== null;
  const offCycle = pen.totalCycles;
  const home = off && pen.runUntil(() => pen.plant.carriageMm <= 0, 1000) !== null;
  const homeCycle = pen.totalCycles;
  const bit = pen.watchdogBites === bitesBefore + 1;

  pen.start();
  const again = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  const status = await again.status();
  await again.close();
  await closeSession(session);
  const reported = `reset cause ${again.identity.resetCause}, fault ${status.fault}`;
  if (!off || !home || !bit || again.identity.resetCause !== 'watchdog' || status.fault !== 'watchdog_reset') {
    progress(`SURPRISE watchdog: motor off ${String(off)}, needle home ${String(home)}, bites ${pen.watchdogBites - bitesBefore}, ${reported}`);
  }

  const ms = (cycles: number, done: boolean): number => (done ? round(cycles / cyclesPerMs, 3) : Number.NaN);
  const note = `needle at ${strokesPerSecond} strokes/s, ${workingDepthMm} mm; the pen then reported ${reported}`;
  const homeNote = `${note}; home: carriage back at 0 mm (home switch)`;
  return [
    { name: 'watchdog_bite_motor_off_ms', value: ms(offCycle - hangCycle, off), unit: 'ms', note: `from the hang; ${note}` },
    { name: 'watchdog_bite_motor_off_from_last_wdr_ms', value: ms(offCycle - lastKickCycle, off), unit: 'ms', note: `from the last WDR executed; ${note}` },
    { name: 'watchdog_bite_needle_home_ms', value: ms(homeCycle - hangCycle, home), unit: 'ms', note: `from the hang; ${homeNote}` },
    { name: 'watchdog_bite_needle_home_from_last_wdr_ms', value: ms(homeCycle - lastKickCycle, home), unit: 'ms', note: `from the last WDR executed; ${homeNote}` },
  ];
}
