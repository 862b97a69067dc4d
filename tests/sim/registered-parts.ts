// Parts on record for tests: the virtual pen's nosecone, sterilized once by its chip, given the passed cycle its tally
// counts, so that a session may use it; for a pen in this process, or for the in-process pen a `pen` command starts.
import { RealClock } from '../../hardware/clock.ts';
import { VirtualPen } from '../../hardware/sim/virtual-pen.ts';
import { PenDevice } from '../../hal/device.ts';
import { PenStore } from '../../src/store/store.ts';
import { noseconeReport, SterilizationRegistry } from '../../src/sterilization/registry.ts';

export const testActor = { pen: null, operator: 'test' } as const;

/** Registers the fitted nosecone and records the passed cycle its chip's tally shows; returns its ROM id. */
export async function recordSterileNosecone(device: PenDevice, store: PenStore): Promise<string> {
  const { nosecone } = await device.settledParts();
  const registry = new SterilizationRegistry(store);
  registry.checkFitted(noseconeReport(nosecone), testActor);
  registry.recordCycle({ partIds: [nosecone.rom], cycle: '134C-3min-prevac', sterilizerId: 'TEST-AC', loadNumber: 1, chemicalIndicator: 'pass' }, testActor);
  return nosecone.rom;
}

/**
 * The same in the store file a `pen` command will use, for the nosecone of its in-process pen (whose chips start fresh,
 * with the same ids, in every process). Boots a pen of that seed to read its chip.
 */
export async function sterileNoseconeStore(dbPath: string, seed = 1): Promise<string> {
  const pen = new VirtualPen({ seed });
  pen.start();
  const device = await PenDevice.connect(pen.openPort(), { clock: pen.clock });
  const store = PenStore.open(dbPath, new RealClock());
  try {
    return await recordSterileNosecone(device, store);
  } finally {
    store.close();
    await device.close();
    await pen.stop();
  }
}
