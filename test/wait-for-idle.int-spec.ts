/**
 * wait-for-idle.sh as the connections feature installs it, run under every shell it must
 * support: dash, busybox sh (with busybox's own date and sleep and nothing else on PATH)
 * and bash. The state file is written here the way the sidecar writes it; the end-to-end
 * run against the sidecar itself is in connections.int-spec.ts.
 *
 * Most cases run on a fixed clock (a `date` stub) with a timeout of 0, so the script
 * decides after one look and messages are exact; the "real clock" cases show it waiting.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { installScript, shellQuote } from '../src/common/shell-scripts';
import { renderWaitForIdleScript, WAIT_FOR_IDLE_SCRIPT } from '../src/connections/wait-for-idle-script';
import { SHELLS, shellBin } from './support/shells';

const NOW = 1_800_000_000;
const STALE_AFTER = 23;
const SETTLE = 5;

const base = mkdtempSync(join(tmpdir(), 'wait-for-idle-'));
/** Spaces in the volume and a quote in the state file's path test the script's quoting. */
const shared = join(base, 'shared vol');
const stateFile = join(shared, "it's here", 'connections.txt');
const otherFile = join(base, 'other', 'connections.txt');
const clockDir = join(base, 'clock');
const script = join(shared, WAIT_FOR_IDLE_SCRIPT);
/** A copy that calls its file stale after 1 s, for the real-clock stale case. */
const quickStaleDir = join(base, 'quick-stale');

beforeAll(async () => {
  mkdirSync(dirname(stateFile), { recursive: true });
  mkdirSync(dirname(otherFile), { recursive: true });
  mkdirSync(clockDir);
  writeFileSync(join(clockDir, 'date'), '#!/bin/sh\n[ "$1" = +%s ] || exit 64\necho "$FAKE_NOW"\n', { mode: 0o755 });
  await installScript(
    shared,
    WAIT_FOR_IDLE_SCRIPT,
    renderWaitForIdleScript({ stateFilePath: stateFile, settleSeconds: SETTLE, staleAfterSeconds: STALE_AFTER }),
  );
  await installScript(
    quickStaleDir,
    WAIT_FOR_IDLE_SCRIPT,
    renderWaitForIdleScript({ stateFilePath: stateFile, settleSeconds: SETTLE, staleAfterSeconds: 1 }),
  );
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A state file as the sidecar writes it; `updated`/`idle` are seconds before `now`, null for an empty idle_since. */
function state({
  active = 0,
  updated = 1,
  idle = 60,
  now = NOW,
}: { active?: number; updated?: number; idle?: number | null; now?: number } = {}): string {
  return (
    `status=ok\nupdated_at=${now - updated}\nports=8080\nactive_connections=${active}\nwaiting_connections=3\nlistening=true\n` +
    `idle_since=${idle === null ? '' : now - idle}\nquiet_since=\n`
  );
}

interface Case {
  name: string;
  args?: string[];
  /** The configured state file's content; absent: no file. */
  file?: string;
  /** Content of another file, which `{other}` in env values names. */
  other?: string;
  env?: Record<string, string>;
  code: 0 | 1 | 2 | 3;
  stdout?: string;
  stderr?: string;
}

const CASES: Case[] = [
  {
    name: 'idle for longer than the settle time',
    args: ['0'],
    file: state({ idle: 60 }),
    code: 0,
    stdout: 'Idle: no active connection for 60s (settle time 5s)\n',
    stderr: '',
  },
  {
    name: 'idle for exactly the settle time',
    args: ['0'],
    file: state({ idle: 5 }),
    code: 0,
    stdout: 'Idle: no active connection for 5s (settle time 5s)\n',
    stderr: '',
  },
  {
    name: 'idle for less than the settle time, at the timeout',
    args: ['0'],
    file: state({ idle: 4 }),
    code: 1,
    stdout: '',
    stderr: 'Timed out after 0s: idle for 4s only (settle time 5s)\n',
  },
  {
    name: 'connections active at the timeout',
    args: ['0'],
    file: state({ active: 2, idle: null }),
    code: 1,
    stdout: '',
    stderr: 'Timed out after 0s: 2 active connection(s)\n',
  },
  {
    name: 'TIME_WAIT sockets do not keep it waiting',
    args: ['0'],
    file: state({ active: 0, idle: 30 }),
    code: 0,
    stdout: 'Idle: no active connection for 30s (settle time 5s)\n',
  },
  {
    name: 'no idle_since is not idle',
    args: ['0'],
    file: state({ active: 0, idle: null }),
    code: 1,
    stderr: 'Timed out after 0s: idle for 0s only (settle time 5s)\n',
  },
  {
    name: 'IDLE_SETTLE_SECONDS in the calling container overrides the settle time',
    args: ['0'],
    file: state({ idle: 4 }),
    env: { IDLE_SETTLE_SECONDS: '3' },
    code: 0,
    stdout: 'Idle: no active connection for 4s (settle time 3s)\n',
  },
  {
    name: 'a settle time of 0 returns as soon as nothing is active',
    args: ['0'],
    file: state({ idle: 0 }),
    env: { IDLE_SETTLE_SECONDS: '0' },
    code: 0,
    stdout: 'Idle: no active connection for 0s (settle time 0s)\n',
  },
  {
    name: 'CONNECTIONS_FILE_PATH names the file read',
    args: ['0'],
    file: state({ active: 1, idle: null }),
    other: state({ idle: 60 }),
    env: { CONNECTIONS_FILE_PATH: '{other}' },
    code: 0,
    stdout: 'Idle: no active connection for 60s (settle time 5s)\n',
  },
  {
    name: 'CONNECTIONS_FILE_PATH to a missing file',
    args: ['600'],
    file: state({ idle: 60 }),
    env: { CONNECTIONS_FILE_PATH: '{other}' },
    code: 2,
    stderr: 'Connections state missing: {other} (is the sidecar running with MONITOR_PORT set?); not waiting\n',
  },
  {
    name: 'an empty CONNECTIONS_FILE_PATH keeps the default',
    args: ['0'],
    file: state({ active: 1, idle: null }),
    env: { CONNECTIONS_FILE_PATH: '' },
    code: 1,
    stderr: 'Timed out after 0s: 1 active connection(s)\n',
  },

  // No usable state: give up at once, whatever the timeout.
  {
    name: 'missing file',
    args: ['600'],
    code: 2,
    stdout: '',
    stderr: 'Connections state missing: {file} (is the sidecar running with MONITOR_PORT set?); not waiting\n',
  },
  {
    name: 'stale file (the sidecar stopped)',
    args: ['600'],
    file: state({ active: 3, idle: null, updated: STALE_AFTER + 1 }),
    code: 2,
    stdout: '',
    stderr: `Connections state stale: ${STALE_AFTER + 1}s old (max: ${STALE_AFTER}s), the sidecar is not updating it; not waiting\n`,
  },
  {
    name: 'stale wins over idle',
    args: ['600'],
    file: state({ updated: 300, idle: 600 }),
    code: 2,
    stderr: `Connections state stale: 300s old (max: ${STALE_AFTER}s), the sidecar is not updating it; not waiting\n`,
  },
  {
    name: 'exactly the stale age is still fresh',
    args: ['0'],
    file: state({ updated: STALE_AFTER }),
    code: 0,
    stdout: 'Idle: no active connection for 60s (settle time 5s)\n',
  },
  {
    name: 'the sidecar cannot read the tables',
    args: ['600'],
    file: 'status=error\nupdated_at=1800000000\nports=8080\nerror=cannot read the socket tables in /proc/net: EACCES \\c\n',
    code: 2,
    stdout: '',
    stderr: 'The sidecar cannot read the socket tables: cannot read the socket tables in /proc/net: EACCES \\c; not waiting\n',
  },
  { name: 'empty file', args: ['600'], file: '', code: 2, stderr: 'Connections state unreadable: {file}; not waiting\n' },
  {
    name: 'no counts',
    args: ['600'],
    file: `status=ok\nupdated_at=${NOW}\n`,
    code: 2,
    stderr: 'Connections state unreadable: {file}; not waiting\n',
  },
  {
    name: 'a count that is not a number',
    args: ['600'],
    file: state().replace('active_connections=0', 'active_connections=zero'),
    code: 2,
    stderr: 'Connections state unreadable: {file}; not waiting\n',
  },
  {
    name: 'an idle_since that is not a number',
    args: ['600'],
    file: state().replace(/idle_since=\d+/, 'idle_since=$(reboot)'),
    code: 2,
    stderr: 'Connections state unreadable: {file}; not waiting\n',
  },
  {
    name: 'a directory in place of the file',
    args: ['600'],
    env: { CONNECTIONS_FILE_PATH: base },
    code: 2,
    stderr: `Connections state missing: ${base} (is the sidecar running with MONITOR_PORT set?); not waiting\n`,
  },
  {
    name: 'no trailing newline',
    args: ['0'],
    file: state().trimEnd(),
    code: 0,
    stdout: 'Idle: no active connection for 60s (settle time 5s)\n',
  },

  // Invalid arguments.
  ...['abc', '-1', '1.5', '1234567890'].map((bad): Case => ({
    name: `invalid timeout ${bad}`,
    args: [bad],
    file: state(),
    code: 3,
    stdout: '',
    stderr: `Invalid timeout: ${bad} (expected whole seconds)\n`,
  })),
  {
    name: 'invalid IDLE_SETTLE_SECONDS',
    args: ['0'],
    file: state(),
    env: { IDLE_SETTLE_SECONDS: 'soon' },
    code: 3,
    stderr: 'Invalid settle time: soon (expected whole seconds)\n',
  },
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runSync(argv: string[], path: string, env: Record<string, string> = {}): Run {
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd: base,
    env: { PATH: path, FAKE_NOW: String(NOW), ...env },
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runAsync(argv: string[], path: string, env: Record<string, string> = {}): Promise<Run & { ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: base, env: { PATH: path, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: performance.now() - started }));
  });
}

const fill = (text: string) => text.replaceAll('{file}', stateFile).replaceAll('{other}', otherFile);

describe.each(SHELLS)('wait-for-idle.sh under $name', (shell) => {
  const binDir = join(base, `bin-${shell.name.replace(/\W/g, '-')}`);
  let sh: string;
  let path: string;

  beforeAll(() => {
    ({ sh, path } = shellBin(shell, binDir, ['sh', 'date', 'sleep']));
  });

  beforeEach(() => {
    rmSync(stateFile, { force: true });
    rmSync(otherFile, { force: true });
  });

  it('parses', () => {
    expect(runSync([sh, '-n', script], path)).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it.each(CASES)('$name', (c) => {
    if (c.file !== undefined) writeFileSync(stateFile, c.file);
    if (c.other !== undefined) writeFileSync(otherFile, c.other);
    const env = Object.fromEntries(Object.entries(c.env ?? {}).map(([k, v]) => [k, fill(v)]));

    const r = runSync([sh, script, ...(c.args ?? [])], `${clockDir}${delimiter}${path}`, env);

    expect(r.code).toBe(c.code);
    if (c.stdout !== undefined) expect(r.stdout).toBe(fill(c.stdout));
    if (c.stderr !== undefined) expect(r.stderr).toBe(fill(c.stderr));
  });

  it('waits the whole timeout even when the clock turns a second between its first two readings', async () => {
    // date(1) has whole seconds: a script that compared two readings alone would time out at once.
    const turning = join(base, `turning-clock-${shell.name.replace(/\W/g, '-')}`);
    mkdirSync(turning, { recursive: true });
    const marker = join(turning, 'turned');
    rmSync(marker, { force: true });
    writeFileSync(
      join(turning, 'date'),
      '#!/bin/sh\n[ "$1" = +%s ] || exit 64\nif [ -e "$CLOCK_TURNED" ]; then echo $((FAKE_NOW + 1)); else : >"$CLOCK_TURNED"; echo "$FAKE_NOW"; fi\n',
      { mode: 0o755 },
    );
    writeFileSync(stateFile, state({ active: 1, idle: null }));
    const r = await runAsync([sh, script, '1'], `${turning}${delimiter}${path}`, { FAKE_NOW: String(NOW), CLOCK_TURNED: marker });
    expect(r).toMatchObject({ code: 1, stderr: 'Timed out after 1s: 1 active connection(s)\n' });
    expect(r.ms).toBeGreaterThan(900);
  });

  it('on the real clock: waits while busy and returns once idle; times out; gives up when the file goes stale', async () => {
    const now = () => Math.floor(Date.now() / 1000);
    const files = {
      settles: join(base, `settles-${shell.name}.txt`),
      busy: join(base, `busy-${shell.name}.txt`),
      dies: join(base, `dies-${shell.name}.txt`),
    };
    writeFileSync(files.settles, state({ active: 1, idle: null, updated: 0, now: now() }));
    writeFileSync(files.busy, state({ active: 1, idle: null, updated: 0, now: now() }));
    writeFileSync(files.dies, state({ active: 1, idle: null, updated: 0, now: now() }));

    const settles = runAsync([sh, script, '20'], path, { CONNECTIONS_FILE_PATH: files.settles });
    const busy = runAsync([sh, script, '1'], path, { CONNECTIONS_FILE_PATH: files.busy });
    const dies = runAsync([sh, join(quickStaleDir, WAIT_FOR_IDLE_SCRIPT), '20'], path, { CONNECTIONS_FILE_PATH: files.dies });
    // The "sidecar" sees the connection end and writes an idle state whose settle time has passed.
    await new Promise((r) => setTimeout(r, 1200));
    writeFileSync(files.settles, state({ active: 0, idle: SETTLE, updated: 0, now: now() }));

    const [s, b, d] = await Promise.all([settles, busy, dies]);
    expect(s).toMatchObject({
      code: 0,
      stderr: '',
      stdout: expect.stringMatching(/^Idle: no active connection for [56]s \(settle time 5s\)\n$/),
    });
    expect(s.ms).toBeGreaterThan(1200);
    expect(s.ms).toBeLessThan(4000);
    expect(b).toMatchObject({ code: 1, stdout: '', stderr: expect.stringMatching(/^Timed out after [12]s: 1 active connection\(s\)\n$/) });
    expect(b.ms).toBeGreaterThan(900);
    expect(d).toMatchObject({
      code: 2,
      stdout: '',
      stderr: expect.stringMatching(/^Connections state stale: [23]s old \(max: 1s\), the sidecar is not updating it; not waiting\n$/),
    });
    expect(d.ms).toBeLessThan(5000);
  });
});

describe('wait-for-idle.sh as installed', () => {
  it('is read-only and executable, with the configured defaults baked in and nothing left to fill', () => {
    expect(statSync(script).mode & 0o777).toBe(0o555);
    const text = readFileSync(script, 'utf8');
    expect(text.startsWith('#!/bin/sh\n')).toBe(true);
    expect(text).not.toMatch(/@[A-Z_]+@/);
    expect(text).toContain(`STATE_FILE=\${CONNECTIONS_FILE_PATH:-${shellQuote(stateFile)}}\n`);
    expect(text).toContain(`SETTLE=\${IDLE_SETTLE_SECONDS:-${SETTLE}}\n`);
    expect(text).toContain(`STALE_AFTER=${STALE_AFTER}\n`);
  });

  it('runs through its exec bit and shebang from another directory', () => {
    writeFileSync(stateFile, state({ now: Math.floor(Date.now() / 1000) }));
    const r = spawnSync(script, ['0'], { cwd: '/', env: { PATH: process.env.PATH }, encoding: 'utf8' });
    // On the real clock: a second may turn between writing the file and the script's date.
    expect({ code: r.status, stdout: r.stdout }).toEqual({
      code: 0,
      stdout: expect.stringMatching(/^Idle: no active connection for 6[01]s \(settle time 5s\)\n$/),
    });
  });

  it('replaces a read-only copy an earlier container left', async () => {
    const dir = join(base, 'reinstall');
    await installScript(dir, WAIT_FOR_IDLE_SCRIPT, '#!/bin/sh\necho stale copy\n');
    const before = statSync(join(dir, WAIT_FOR_IDLE_SCRIPT)).ino;

    await installScript(
      dir,
      WAIT_FOR_IDLE_SCRIPT,
      renderWaitForIdleScript({ stateFilePath: stateFile, settleSeconds: 1, staleAfterSeconds: 5 }),
    );

    expect(readFileSync(join(dir, WAIT_FOR_IDLE_SCRIPT), 'utf8')).toContain('STALE_AFTER=5\n');
    expect(statSync(join(dir, WAIT_FOR_IDLE_SCRIPT)).ino).not.toBe(before);
  });
});
