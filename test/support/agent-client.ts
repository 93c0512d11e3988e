import { connect } from 'node:net';

export interface AgentAnswer {
  /** Everything the agent sent. */
  text: string;
  /** The agent closed its side gracefully (FIN) rather than resetting. */
  ended: boolean;
  /** ms from connect to the agent's FIN (or to the close when there was none). */
  ms: number;
}

/**
 * Connects to an agent-check port as HAProxy does: optionally sends `send` (agent-send),
 * reads until the agent closes its side, then closes. `keepOpen` never closes this side,
 * to see how long the agent waits for a peer that does not hang up: a half-closed peer
 * only learns that the agent closed when it writes, so it writes a byte every 20 ms.
 */
export function askAgent(
  port: number,
  opts: { send?: string | Buffer; keepOpen?: boolean } = {},
): Promise<AgentAnswer & { closedMs: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let ended = false;
    let endedMs = 0;
    socket.on('connect', () => {
      if (opts.send !== undefined) socket.write(opts.send);
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    let probe: NodeJS.Timeout | undefined;
    socket.on('end', () => {
      ended = true;
      endedMs = performance.now() - started;
      if (!opts.keepOpen) socket.end();
      else probe = setInterval(() => socket.write('.'), 20);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') return; // the agent closed; seen as 'close'
      clearInterval(probe);
      reject(e);
    });
    socket.on('close', () => {
      clearInterval(probe);
      const closedMs = performance.now() - started;
      resolve({ text: Buffer.concat(chunks).toString('latin1'), ended, ms: ended ? endedMs : closedMs, closedMs });
    });
  });
}

/** The agent's line now, e.g. "up ready 100%\n". */
export async function agentLine(port: number): Promise<string> {
  return (await askAgent(port)).text;
}
