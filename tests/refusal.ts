// Test helper: the error code of a command the pen must refuse (fails the test if it was accepted or failed otherwise).
import { expect } from 'vitest';
import { PenRefusedError } from '../hal/device.ts';

export async function refusal(attempt: Promise<unknown>): Promise<string> {
  const error = await attempt.then(() => null, (e: unknown) => e);
  expect(error).toBeInstanceOf(PenRefusedError);
  return (error as PenRefusedError).code;
}
