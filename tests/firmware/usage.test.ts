// The needle-time counter (src/usage.c) and its EEPROM ring built for this machine with ASan and UBSan over the fake
// board, driven by tests/firmware/usage_tests.c.
import { it } from 'vitest';
import { expectCTestsPass } from './c-tests.ts';

it('the needle-time counter passes its unit tests on the fake EEPROM', { tags: ['REQ-CALIBRATION-DUE'], timeout: 60_000 }, () => {
  expectCTestsPass('build/host/usage_tests', 'usage_tests', 16);
});
