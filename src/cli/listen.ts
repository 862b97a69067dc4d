// `pen sim --listen`: serving the virtual pen, with a plain reason when the address cannot be used.
import type { Server } from 'node:net';
import { servePen, type ListenAddress, type ServeOptions } from '../../hardware/sim/tcp-server.ts';
import type { VirtualPen } from '../../hardware/sim/virtual-pen.ts';

/** The address given to --listen cannot be used; the pen was stopped. Exit 1 (failure), as it is neither usage nor a link. */
export class ListenError extends Error {}

function explain(error: unknown, address: ListenAddress): string {
  const code = (error as { code?: unknown }).code;
  const detail = error instanceof Error ? error.message : String(error);
  const where = `tcp://${address.host}:${address.port}`;
  switch (code) {
    case 'EADDRINUSE':
      return `port ${address.port} is in use: another program (another \`pen sim\`?) already listens on ${where}; ` +
        `choose another port, or tcp://${address.host}:0 for any free one (${detail})`;
    case 'EACCES':
      return `port ${address.port} needs privileges on this machine: choose a port above 1023 (${detail})`;
    case 'EADDRNOTAVAIL':
      return `${address.host} is not an address of this machine: use 127.0.0.1, 0.0.0.0 or one of its addresses (${detail})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host ${address.host} cannot be resolved (${detail})`;
    default:
      return `cannot listen on ${where}: ${detail}`;
  }
}

/** Serves pen on address; if that fails, stops the pen (so nothing keeps the process alive) and throws a ListenError. */
export async function serveOrExplain(
  pen: VirtualPen, address: ListenAddress, log: (line: string) => void, options: ServeOptions = {},
): Promise<Server> {
  try {
    return await servePen(pen, address, log, options);
  } catch (error) {
    await pen.stop();
    throw new ListenError(explain(error, address));
  }
}
