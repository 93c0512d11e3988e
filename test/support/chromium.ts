import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'undici';

export const CHROMIUM_BIN = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';

/** What the page said on its console or threw, and what the browser logged about it (CSP violations, failed loads). */
export interface PageProblem {
  source: 'console' | 'exception' | 'log';
  level: string;
  text: string;
}

type Listener = (params: Record<string, unknown>) => void;

/**
 * Debian's chromium, headless, driven over the DevTools protocol (one WebSocket to the
 * browser, pages as flattened sessions). Just what the status page test needs: open a URL
 * at a viewport size, collect console errors and exceptions, evaluate, screenshot.
 */
export class HeadlessChromium {
  private readonly pending = new Map<
    number,
    { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void; method: string }
  >();
  private readonly listeners: Array<{ session: string; method: string; listener: Listener }> = [];
  private nextId = 1;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly socket: WebSocket,
    private readonly profile: string,
  ) {
    socket.addEventListener('message', (e) => {
      const msg = JSON.parse(String(e.data)) as {
        id?: number;
        method?: string;
        params?: Record<string, unknown>;
        sessionId?: string;
        result?: Record<string, unknown>;
        error?: { message: string };
      };
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${p.method}: ${msg.error.message}`));
        else p?.resolve(msg.result ?? {});
        return;
      }
      for (const l of this.listeners) if (l.method === msg.method && l.session === (msg.sessionId ?? '')) l.listener(msg.params ?? {});
    });
  }

  static async launch(): Promise<HeadlessChromium> {
    const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
    const proc = spawn(
      CHROMIUM_BIN,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--no-first-run',
        '--no-default-browser-check',
        '--disable-extensions',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--mute-audio',
        '--remote-debugging-port=0',
        '--remote-debugging-address=127.0.0.1',
        `--user-data-dir=${profile}`,
        'about:blank',
      ],
      // its own process group, so that close() also ends the helpers (crashpad, utility
      // processes) that can outlive the browser process and keep writing to the profile
      { stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`chromium did not open its DevTools port within 20 s: ${err.slice(-2000)}`)), 20_000);
      proc.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      proc.once('exit', (code) => reject(new Error(`chromium exited with ${code}: ${err.slice(-2000)}`)));
    });
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.addEventListener('open', () => resolve());
      socket.addEventListener('error', () => reject(new Error(`cannot connect to ${url}`)));
    });
    return new HeadlessChromium(proc, socket, profile);
  }

  send(method: string, params: Record<string, unknown> = {}, session = ''): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.socket.send(JSON.stringify({ id, method, params, ...(session ? { sessionId: session } : {}) }));
    });
  }

  on(session: string, method: string, listener: Listener): void {
    this.listeners.push({ session, method, listener });
  }

  /** A new tab at this viewport, its problems collected from the start, then `url` loaded. */
  async open(url: string, viewport: { width: number; height: number; mobile?: boolean }): Promise<ChromiumPage> {
    const { targetId } = (await this.send('Target.createTarget', { url: 'about:blank' })) as { targetId: string };
    const { sessionId } = (await this.send('Target.attachToTarget', { targetId, flatten: true })) as { sessionId: string };
    const page = new ChromiumPage(this, sessionId);
    this.on(sessionId, 'Runtime.consoleAPICalled', (p) => {
      const args = (p.args as Array<{ value?: unknown; description?: string }>)
        .map((a) => (a.value !== undefined ? JSON.stringify(a.value) : (a.description ?? '')))
        .join(' ');
      page.console.push({ source: 'console', level: String(p.type), text: args });
    });
    this.on(sessionId, 'Runtime.exceptionThrown', (p) => {
      const d = p.exceptionDetails as { text: string; exception?: { description?: string } };
      page.console.push({ source: 'exception', level: 'error', text: `${d.text} ${d.exception?.description ?? ''}` });
    });
    this.on(sessionId, 'Log.entryAdded', (p) => {
      const e = p.entry as { level: string; text: string; url?: string };
      page.console.push({ source: 'log', level: e.level, text: `${e.text}${e.url ? ` (${e.url})` : ''}` });
    });
    this.on(sessionId, 'Network.responseReceived', (p) => {
      const r = p.response as { url: string };
      page.responses.push({ requestId: String(p.requestId), url: r.url });
    });
    await Promise.all(['Runtime.enable', 'Log.enable', 'Page.enable', 'Network.enable'].map((m) => this.send(m, {}, sessionId)));
    await this.send(
      'Emulation.setDeviceMetricsOverride',
      { width: viewport.width, height: viewport.height, deviceScaleFactor: 1, mobile: viewport.mobile ?? false },
      sessionId,
    );
    const loaded = new Promise<void>((r) => this.on(sessionId, 'Page.loadEventFired', () => r()));
    await this.send('Page.navigate', { url }, sessionId);
    await loaded;
    return page;
  }

  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([this.send('Browser.close'), new Promise((r) => (timer = setTimeout(r, 3000)))]);
    } catch {
      // already gone
    } finally {
      clearTimeout(timer);
    }
    this.socket.close();
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      const exited = new Promise((r) => this.proc.once('exit', r));
      this.proc.kill('SIGKILL');
      await exited;
    }
    if (this.proc.pid !== undefined) {
      try {
        process.kill(-this.proc.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    }
    // a helper killed a moment ago may still have had a write in flight: retry on ENOTEMPTY
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}

export class ChromiumPage {
  readonly console: PageProblem[] = [];
  readonly responses: Array<{ requestId: string; url: string }> = [];

  constructor(
    private readonly browser: HeadlessChromium,
    readonly session: string,
  ) {}

  /** The value of a JavaScript expression in the page (awaited if it is a promise), as JSON. */
  async evaluate<T>(expression: string): Promise<T> {
    const r = (await this.browser.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, this.session)) as {
      result: { value: T };
      exceptionDetails?: { text: string };
    };
    if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.text}`);
    return r.result.value;
  }

  /** The body of a response the page received, by request id. */
  async responseBody(requestId: string): Promise<string> {
    const r = (await this.browser.send('Network.getResponseBody', { requestId }, this.session)) as { body: string; base64Encoded: boolean };
    return r.base64Encoded ? Buffer.from(r.body, 'base64').toString('utf8') : r.body;
  }

  /** A PNG of the whole page, beyond the viewport's height. */
  async screenshot(): Promise<Buffer> {
    const r = (await this.browser.send('Page.captureScreenshot', { format: 'png', captureBeyondViewport: true }, this.session)) as {
      data: string;
    };
    return Buffer.from(r.data, 'base64');
  }
}
