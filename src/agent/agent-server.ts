import { Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import { InjectSettings } from '../config/settings';
import type { AgentConfig, ServerConfig } from '../config/sidecar-config';
import { AgentMetrics } from './agent-metrics';
import { AgentService } from './agent.service';

/** At most this many agent connections at once; HAProxy holds one per server and check. */
const MAX_CONNECTIONS = 256;

/**
 * HAProxy's agent-check on AGENT_PORT: on every connection, one line with the state as it
 * is at that moment, then a graceful close. The line is handed to `end()`, which sends it
 * and then the FIN; the socket is never destroyed while the line may still be in flight.
 * Whatever the peer sends (agent-send) is read and dropped. A peer that never closes its
 * side is cut after AgentConfig.connectionTimeoutMs.
 */
@Injectable()
export class AgentServer implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('AgentServer');
  private readonly listenHost: string;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    @InjectSettings('agent') private readonly config: AgentConfig,
    @InjectSettings('server') server: ServerConfig,
    private readonly agent: AgentService,
    private readonly metrics: AgentMetrics,
  ) {
    this.listenHost = server.listenHost;
    // allowHalfOpen false: once the peer has closed its side too, the socket closes by itself.
    this.server = createServer({ allowHalfOpen: false }, (socket) => this.reply(socket));
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.on('error', (e) => this.logger.error({ msg: 'agent listener error', reason: e.message }));
  }

  /**
   * Starts the agent once every module is up, and binds AGENT_PORT only after its first
   * round: HAProxy keeps a server's state while its agent cannot be reached, rather than
   * see it down for a moment.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.agent.start();
    await this.listen();
  }

  /** Binds AGENT_PORT; nothing to do when it is not set. */
  listen(): Promise<void> {
    if (this.config.port === null) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.port!, this.listenHost, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** The bound port, or null when the agent port is off. */
  get port(): number | null {
    const address = this.server.address() as AddressInfo | null;
    return address ? address.port : null;
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((r) => this.server.close(() => r()));
    // Replies in flight are one line each: a moment is enough for them to go out.
    const grace = new Promise<void>((r) => setTimeout(r, 500).unref());
    await Promise.race([closed, grace]);
    for (const socket of this.sockets) socket.destroy();
    await closed;
  }

  private reply(socket: Socket): void {
    this.sockets.add(socket);
    const cut = setTimeout(() => socket.destroy(), this.config.connectionTimeoutMs);
    socket.once('close', () => {
      clearTimeout(cut);
      this.sockets.delete(socket);
    });
    socket.on('error', (e: NodeJS.ErrnoException) => this.logger.debug({ msg: 'agent connection error', code: e.code, reason: e.message }));
    socket.resume();
    const line = this.agent.verdict().agentMessage;
    socket.end(line);
    this.metrics.reply();
  }
}
