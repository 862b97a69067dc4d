// Bring-up commands as an engineer runs them: `pen ports` finds the pen among the ports (a `pen sim --listen` and a
// silent TCP server given with --probe), and `pen doctor` passes a healthy virtual pen and names the check a miswired one
// fails (`pen sim --fault …`), each within a time bound, leaving the pen stopped.
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pen as description } from '../../hardware/description.ts';
import { PROTOCOL_VERSION } from '../../hardware/generated/protocol.ts';
import type { CheckResult, DoctorReport } from '../../src/cli/doctor.ts';
import type { PortEntry } from '../../src/cli/ports.ts';
import { PenProcesses } from '../pen-process.ts';
import { sterileNoseconeStore } from './registered-parts.ts';

const pen = new PenProcesses();
const servers: Server[] = [];
afterEach(() => {
  pen.killAll();
  for (const server of servers.splice(0)) server.close();
});

/** A TCP server that accepts and never says a word; resolves with its address and, per connection, when it closed. */
async function silentServer(): Promise<{ address: string; closed: Promise<void>[] }> {
  const closed: Promise<void>[] = [];
  const server = createServer((socket: Socket) => {
    closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
    socket.resume();  // read (and drop) what comes, so that the far end's close is seen
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new Error('no TCP address');
  return { address: `tcp://127.0.0.1:${bound.port}`, closed };
}

const boundMs = 15_000;

describe('pen ports', () => {
  it('marks a `pen sim --listen` given with --probe as a pen with its identity and a silent server as no answer, closing both', async () => {
    const sim = await pen.startSim();
    const silent = await silentServer();
    const result = await pen.run(['ports', '--probe', sim.address, silent.address, '--json'], { timeoutMs: boundMs });
    expect(result.code, result.stderr).toBe(0);
    expect(result.ms).toBeLessThan(8000);
    const { ports } = JSON.parse(result.stdout) as { ports: PortEntry[] };
    const simEntry = ports.find((entry) => entry.path === sim.address);
    expect(simEntry?.listed).toBe(false);
    expect(simEntry?.probe).toMatchObject({
      kind: 'pen',
      pen: { boardName: description.board.name, protocolVersion: PROTOCOL_VERSION, firmwareVersion: description.board.firmwareVersion.join('.'), compatible: true },
    });
    const silentEntry = ports.find((entry) => entry.path === silent.address);
    expect(silentEntry?.probe?.kind).toBe('no answer');
    expect(silentEntry?.probe?.ms).toBeLessThan(3000);
    // Never left open: the silent server saw its connection closed, and the pen takes another host at once.
    expect(silent.closed.length).toBe(1);
    await expect(Promise.race([Promise.all(silent.closed).then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 2000, 'open'))])).resolves.toBe('closed');
    const info = await pen.run(['info', '--port', sim.address, '--json'], { timeoutMs: boundMs });
    expect(info.code, info.stderr).toBe(0);
  });

  it('--no-probe lists without opening anything (exit 0, saying so when there are none); with --probe it is a usage error', async () => {
    const listed = await pen.run(['ports', '--no-probe'], { timeoutMs: boundMs });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/no serial ports found|not probed/);
    expect(listed.stdout).not.toMatch(/PEN |no answer/);
    const both = await pen.run(['ports', '--no-probe', '--probe', 'tcp://127.0.0.1:1'], { timeoutMs: boundMs });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/contradict/);
  });
});

async function doctor(address: string, ...extra: string[]): Promise<{ code: number | null; report: DoctorReport; ms: number }> {
  const result = await pen.run(['doctor', '--port', address, '--json', ...extra], { timeoutMs: boundMs });
  expect(result.code, `pen doctor did not end within ${boundMs} ms:\n${result.stderr}`).not.toBeNull();
  return { code: result.code, report: JSON.parse(result.stdout) as DoctorReport, ms: result.ms };
}

const statuses = (checks: readonly CheckResult[], status: CheckResult['status']): string[] =>
  checks.filter((check) => check.status === status).map((check) => check.id);

describe('pen doctor', () => {
  it('passes every check of a healthy virtual pen, --spin included, and leaves it stopped; the spin uses the fitted parts', async () => {
    const sim = await pen.startSim();
    await sterileNoseconeStore(join(pen.dataDir, 'pen.db'));  // the store the doctor checks the sim's parts against
    const { code, report } = await doctor(sim.address, '--spin');
    expect(code).toBe(0);
    expect(statuses(report.checks, 'fail')).toEqual([]);
    expect(statuses(report.checks, 'skip')).toEqual([]);
    expect(statuses(report.checks, 'pass')).toEqual([
      'identity', 'calibration', 'estop', 'cartridge', 'footswitch', 'home-switch', 'supply', 'temperature', 'depth-sensor',
      'homing', 'jog-switch', 'jog-depth', 'parts', 'needle-tach', 'needle-current',
    ]);
    expect(report.checks.find((check) => check.id === 'parts')?.detail).toMatch(/^cartridge 2d[0-9a-f]{14} \(unused, .*\), nosecone 2d[0-9a-f]{14} \(sterile until .*\); the spin uses them$/);
    expect(report.notes).toEqual(expect.arrayContaining([
      expect.stringMatching(/^the spin used cartridge 2d[0-9a-f]{14} and nosecone 2d[0-9a-f]{14} \(session 1\): fit a new cartridge and reprocess the nosecone before a treatment$/),
    ]));
    expect(report.final).toMatchObject({ state: 'idle', needleOn: false, moving: false, fault: 'none' });
    // The spin used both parts, so a second one is refused on the host, naming each, and the needle stays still.
    const text = await pen.run(['doctor', '--port', sim.address, '--spin'], { timeoutMs: boundMs });
    expect(text.code, text.stdout + text.stderr).toBe(1);
    expect(text.stdout).toMatch(/FAIL {2}fitted parts for the spin +cartridge 2d[0-9a-f]{14}: used in session 1 .*: cartridges are single-use; fit a new one; nosecone 2d[0-9a-f]{14}: used in session 1 .* reprocess it \(pen sterilize --part/);
    expect(text.stdout).toMatch(/SKIP {2}needle spin-up: tach +not run: the fitted parts may not be used \(see the parts check\)/);
    expect(text.stdout).toMatch(/LOOK {2}status LED +look: the status LED blinks slowly \(1 Hz\)/);
    expect(text.stdout).toMatch(/1 check failed: fitted parts for the spin/);
  });

  it('without --spin skips the needle checks and still exits 0', async () => {
    const sim = await pen.startSim();
    const { code, report } = await doctor(sim.address);
    expect(code).toBe(0);
    expect(statuses(report.checks, 'skip')).toEqual(['needle-tach', 'needle-current']);
    expect(report.checks.find((check) => check.id === 'needle-tach')?.detail).toMatch(/add --spin/);
  });

  const miswired = [
    { fault: 'depth-sensor-open', failed: ['depth-sensor'], latched: 'depth_sensor', detail: /about 5\d{3} mV/ },
    { fault: 'home-switch-stuck', failed: ['homing'], latched: 'home_switch_stuck', detail: /home_switch_stuck/ },
    { fault: 'tach-broken', failed: ['needle-tach'], latched: 'motor_stall', detail: /motor_stall.*never within the tolerance/ },
  ] as const;
  it.each(miswired)('names the check a board with $fault fails, exits 1 in bounded time and leaves the pen stopped', async ({ fault, failed, latched, detail }) => {
    const sim = await pen.startSim(['--fault', fault]);
    await sterileNoseconeStore(join(pen.dataDir, 'pen.db'));
    const { code, report, ms } = await doctor(sim.address, '--spin');
    expect(code).toBe(1);
    expect(ms).toBeLessThan(12_000);
    expect(report.failed).toEqual(failed);
    expect(statuses(report.checks, 'fail')).toEqual(failed);
    const check = report.checks.find((c) => c.id === failed[0]);
    expect(check?.detail).toMatch(detail);
    expect(check?.expected).not.toBe('');
    expect(report.final).toMatchObject({ needleOn: false, moving: false, state: 'fault', fault: latched });
    // Seen by another host too: the motor is off and the fault latched.
    const info = await pen.run(['info', '--port', sim.address, '--json'], { timeoutMs: boundMs });
    expect(info.code, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout)).toMatchObject({ status: { needleOn: false, motorDuty: 0, state: 'fault', fault: latched } });
  });

  it('exits 3 within a bound when the port does not answer as a pen', async () => {
    const silent = await silentServer();
    const result = await pen.run(['doctor', '--port', silent.address], { timeoutMs: boundMs });
    expect(result.code).toBe(3);
    expect(result.ms).toBeLessThan(8000);
    expect(result.stderr).toMatch(/no answer from the pen/);
  });

  it('pen sim refuses a --fault it does not know, naming the ones it does', async () => {
    const result = await pen.run(['sim', '--listen', 'tcp://127.0.0.1:0', '--fault', 'loose-wire'], { timeoutMs: boundMs });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/depth-sensor-open, home-switch-stuck, tach-broken/);
  });
});
