// Link round trip: identify request to reply, in-process (virtual time) and over TCP (wall time).
import type { AddressInfo } from 'node:net';
import { RealClock } from '../hardware/clock.ts';
import { servePen } from '../hardware/sim/tcp-server.ts';
import { VirtualPen } from '../hardware/sim/virtual-pen.ts';
import { PROTOCOL_VERSION } from '../hardware/generated/protocol.ts';
import { PenLink } from '../hal/link/reliable-link.ts';
import { TcpTransport } from '../hal/link/transport.ts';
import { percentile, progress, round, type Figure } from './figure.ts';

const requestCount = 300;

/** Sends requestCount identify requests one after another, returning each one's duration on both clocks. */
async function timeIdentify(link: PenLink, simNowMs: () => number, label: string): Promise<{ simMs: number[]; wallMs: number[] }> {
  const simMs: number[] = [];
  const wallMs: number[] = [];
  for (let i = 1; i <= requestCount; i++) {
    const simStartMs = simNowMs();
    const wallStartMs = performance.now();
    await link.request('identify', { hostProtocolVersion: PROTOCOL_VERSION });
    wallMs.push(performance.now() - wallStartMs);
    simMs.push(simNowMs() - simStartMs);
    if (i % 100 === 0) progress(`${label}: ${i} of ${requestCount} requests`);
  }
  return { simMs, wallMs };
}

function p50p99(prefix: string, samples: readonly number[], note: string): Figure[] {
  return [
    { name: `${prefix}_p50_ms`, value: round(percentile(samples, 50)), unit: 'ms', note },
    { name: `${prefix}_p99_ms`, value: round(percentile(samples, 99)), unit: 'ms', note },
  ];
}

async function inProcess(): Promise<Figure[]> {
  const pen = new VirtualPen();
  pen.start();
  const link = await PenLink.open(pen.openPort(), { clock: pen.clock });
  const { simMs, wallMs } = await timeIdentify(link, () => pen.clock.nowMs(), 'in-process');
  await link.close();
  await pen.stop();
  return [
    ...p50p99('rtt_inprocess_sim', simMs, `identify, simulated time incl. 250 kbaud line time, n=${requestCount}`),
    ...p50p99('rtt_inprocess_wall', wallMs, `identify, wall time of the same requests, n=${requestCount}`),
  ];
}

async function overTcp(): Promise<Figure[]> {
  // Real time mode: over TCP the host uses the wall clock, so the pen must keep pace with it.
  const pen = new VirtualPen({ timeMode: 'real' });
  pen.start();
  const server = await servePen(pen, { host: '127.0.0.1', port: 0 });
  const { port } = server.address() as AddressInfo;
  const transport = await TcpTransport.open('127.0.0.1', port);
  const link = await PenLink.open(transport, { clock: new RealClock() });
  const { wallMs } = await timeIdentify(link, () => 0, 'tcp');
  await link.close();
  await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
  await pen.stop();
  return p50p99('rtt_tcp_wall', wallMs, `identify over TCP loopback to a real-time virtual pen, n=${requestCount}`);
}

export async function measure(): Promise<Figure[]> {
  return [...(await inProcess()), ...(await overTcp())];
}
