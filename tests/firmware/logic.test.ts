// The firmware's logic (safety, commands, calibration, storage, link) built for this machine with ASan and UBSan over
// the fake board, driven through the wire by tests/firmware/logic_tests.c.
import { it } from 'vitest';
import { expectCTestsPass } from './c-tests.ts';

it('the firmware logic passes its unit tests on the fake board', () => {
  expectCTestsPass('host-tests', 'logic_tests', 600);
}, 60_000);
