// The parts logic (src/parts.c) and the 1-Wire CRCs built for this machine with ASan and UBSan over the fake board and
// fake ID chips, driven by tests/firmware/parts_tests.c.
import { it } from 'vitest';
import { expectCTestsPass } from './c-tests.ts';

it('the parts logic passes its unit tests on the fake chips', { tags: ['REQ-PART-CHIP-INTEGRITY', 'REQ-STERILIZATION-RECORD'], timeout: 60_000 }, () => {
  expectCTestsPass('build/host/parts_tests', 'parts_tests', 18);
});
