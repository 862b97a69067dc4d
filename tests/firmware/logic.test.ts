// The firmware's logic (safety, commands, calibration, storage, link) built for this machine with ASan and UBSan over
// the fake board, driven through the wire by tests/firmware/logic_tests.c.
import { it } from 'vitest';
import { expectCTestsPass } from './c-tests.ts';

it('the firmware logic passes its unit tests on the fake board', { tags: ['REQ-DEPTH-WINDOW', 'REQ-ARM-PRECONDITIONS', 'REQ-FAULT-LATCH', 'REQ-CALIBRATION-BOUNDS', 'REQ-CALIBRATION-STORAGE', 'REQ-RATE-LIMITS', 'REQ-HEARTBEAT', 'REQ-STOP', 'REQ-SENSOR-PLAUSIBILITY', 'REQ-CARTRIDGE-INTERLOCK', 'REQ-CARTRIDGE-SINGLE-USE', 'REQ-CARTRIDGE-EXPIRY', 'REQ-NOSECONE-CYCLE-LIMIT', 'REQ-ROLES', 'REQ-PROVISIONING', 'REQ-LINK-INTEGRITY', 'REQ-HOSTILE-HOST', 'REQ-IDENTITY'], timeout: 60_000 }, () => {
  expectCTestsPass('host-tests', 'logic_tests', 600);
});
