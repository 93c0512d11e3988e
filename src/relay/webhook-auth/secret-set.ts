import { createHash, createSecretKey, type KeyObject } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { readSecrets, type SecretSourceConfig, STANDARD_SECRET_PREFIX, standardKey } from '../../config/webhook-auth.schema';

/**
 * The secrets an event may be signed with, prepared once per read of the file so that a
 * request only computes HMACs: each line's bytes as an HMAC key (GitHub, Bitbucket Cloud,
 * Gitea, Forgejo), its SHA-256 (GitLab's token is compared digest to digest, so that
 * neither its content nor its length shows in the time taken), and the decoded key of
 * every `whsec_` line (Standard Webhooks).
 */
export class SecretSet {
  /** As KeyObjects: an HMAC keyed with one costs about half as much as one keyed with a Buffer (measured on 8 KB). */
  readonly hmacKeys: readonly KeyObject[];
  readonly tokenDigests: readonly Buffer[];
  readonly standardKeys: readonly KeyObject[];

  constructor(secrets: readonly string[]) {
    this.hmacKeys = secrets.map((s) => createSecretKey(Buffer.from(s, 'utf8')));
    this.tokenDigests = secrets.map((s) => sha256(Buffer.from(s, 'utf8')));
    this.standardKeys = secrets.filter((s) => s.startsWith(STANDARD_SECRET_PREFIX)).map((s) => createSecretKey(standardKey(s)!));
  }

  /** The key the sidecar signs its own events with: the first line (the newest, in a rotation done as documented). */
  get signingKey(): KeyObject {
    return this.hmacKeys[0];
  }

  static fromText(text: string): SecretSet | null {
    const { secrets, problems } = readSecrets(text);
    return problems.length > 0 ? null : new SecretSet(secrets);
  }
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

/** How often a secrets file is looked at for a change (one stat; the file is read only when it changed). */
export const SECRET_FILE_POLL_MS = 2_000;

/**
 * The secrets of one source, readable synchronously on the hot path. A file is checked
 * every SECRET_FILE_POLL_MS (a Kubernetes Secret volume swaps its files on an update: a new
 * inode, size or modification time) and read again when it changed; a file that turns
 * unreadable or holds no valid secret keeps the last good set in force, and `onProblem`
 * is told the reason (never the content).
 */
export class SecretSource {
  private set: SecretSet;
  private seen = '';
  private timer: NodeJS.Timeout | null = null;
  private lastProblem: string | null = null;

  /** `initial`: the source's text as read at start-up (validated by the configuration). */
  constructor(
    readonly config: SecretSourceConfig,
    initial: string,
    private readonly onProblem: (reason: string) => void = () => undefined,
    private readonly onChange: () => void = () => undefined,
  ) {
    const set = SecretSet.fromText(initial);
    if (set === null) throw new Error('the secrets were validated at start-up');
    this.set = set;
  }

  get current(): SecretSet {
    return this.set;
  }

  /** Starts watching a file source (a value source never changes). */
  watch(pollMs = SECRET_FILE_POLL_MS): void {
    if (!('file' in this.config) || this.timer !== null) return;
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Looks at the file once; reads it again if it changed since the last good read. */
  async refresh(): Promise<void> {
    if (!('file' in this.config)) return;
    const path = this.config.file;
    try {
      const s = await stat(path);
      const key = `${s.ino}:${s.size}:${s.mtimeMs}`;
      if (key === this.seen) return;
      const { secrets, problems } = readSecrets(await readFile(path, 'utf8'));
      if (problems.length > 0) return this.problem(problems.join('; '));
      const first = this.seen === '';
      this.seen = key;
      this.lastProblem = null;
      this.set = new SecretSet(secrets);
      if (!first) this.onChange();
    } catch (e) {
      this.problem(`cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }

  /** Told once per distinct problem, not every poll. */
  private problem(reason: string): void {
    if (reason === this.lastProblem) return;
    this.lastProblem = reason;
    this.onProblem(reason);
  }
}
