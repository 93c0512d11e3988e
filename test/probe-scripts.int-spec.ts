/**
 * The probe scripts as the sidecar installs them, run under every shell they must
 * support: dash (Debian's sh), busybox sh (alpine and busybox images, with busybox's
 * own stat/date/sed/head/dirname and nothing else on PATH) and bash. Exit codes and
 * messages are those of konflux-ci/smee-sidecar's scripts.
 *
 * The nested `sh check-file-age.sh` call resolves through PATH, so each shell gets a
 * bin dir where `sh` is that shell: the helper runs under the shell under test too.
 * Most cases run on a fixed clock (a `date` stub first on PATH) so ages, and so
 * messages, are exact; the "real clock" cases prove `date +%s` works in each setting.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { shellQuote } from '../src/common/shell-scripts';
import { PROBE_SCRIPTS, renderProbeScript } from '../src/health-check/probe-scripts';
import { HealthStatusFile } from '../src/health-check/health-status-file';
import { SHELLS, shellBin } from './support/shells';

type Probe = (typeof PROBE_SCRIPTS)[number];

/** The fixed "now" of the `date` stub, in epoch seconds. */
const NOW = 1_800_000_000;

const BUSYBOX_APPLETS = ['sh', 'stat', 'date', 'sed', 'head', 'dirname'];

const base = mkdtempSync(join(tmpdir(), 'probe-scripts-'));
/** Spaces in the volume's path test the scripts' own quoting of $0 and $SCRIPT_DIR. */
const shared = join(base, 'shared vol');
/** The sidecar's configured status file: spaces and a single quote test the rendered default. */
const defaultFile = join(shared, "it's here", 'health status.txt');
const overrideFile = join(base, 'other', 'health-status.txt');
/** Cases run from here, not from the scripts' directory. */
const elsewhere = join(base, 'elsewhere');
const clockDir = join(base, 'clock');

const scriptPath = (name: Probe) => join(shared, name);

function fakeConfig(path: string, healthFilePath: string): ConstructorParameters<typeof HealthStatusFile>[0] {
  return { path, healthFilePath };
}

beforeAll(async () => {
  mkdirSync(dirname(defaultFile), { recursive: true });
  mkdirSync(dirname(overrideFile), { recursive: true });
  mkdirSync(elsewhere);
  mkdirSync(clockDir);
  writeFileSync(join(clockDir, 'date'), '#!/bin/sh\n[ "$1" = +%s ] || exit 64\necho "$FAKE_NOW"\n', { mode: 0o755 });
  await new HealthStatusFile(fakeConfig(shared, defaultFile)).installProbes();
});

afterAll(() => {
  rmSync(base, { recursive: true, force: true });
});

/** Writes a status file whose mtime is `age` seconds before `now`. */
function writeStatus(file: string, content: string | Buffer, age: number, now = NOW): void {
  writeFileSync(file, content);
  utimesSync(file, now - age, now - age);
}

function clearFiles(): void {
  rmSync(defaultFile, { force: true });
  rmSync(overrideFile, { force: true });
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], opts: { path: string; cwd?: string; env?: Record<string, string> }): Run {
  // A clean environment: a HEALTH_FILE_PATH of the machine running the tests must not leak in.
  const r = spawnSync(argv[0], argv.slice(1), {
    cwd: opts.cwd ?? elsewhere,
    env: { PATH: opts.path, FAKE_NOW: String(NOW), ...opts.env },
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const OK = 'status=success\nmessage=Health check completed successfully\n';
const OURS = `${OK}checked_at=2027-01-15T08:00:00.000Z\nround_trip_ms=42\n`;
const TIMED_OUT = 'status=failure\nmessage=Health check timed out waiting for event round-trip\n';

interface Case {
  name: string;
  script: Probe;
  args?: string[];
  /** The default (configured) status file; absent: no file. */
  file?: { content: string | Buffer; age: number };
  /** HEALTH_FILE_PATH in the calling container, and the file it names. */
  override?: { value: string; file?: { content: string | Buffer; age: number } };
  code: 0 | 1;
  /** Whole expected output; {default}, {override} and {script} stand for those paths. */
  stdout: string;
  stderr: string;
}

const CASES: Case[] = [
  // check-smee-health.sh: fresh and status=success.
  {
    name: 'smee: fresh success file',
    script: 'check-smee-health.sh',
    file: { content: OK, age: 5 },
    code: 0,
    stdout: 'Health check passed (5s old)\n',
    stderr: '',
  },
  {
    name: 'smee: extra lines after the two of smee-sidecar',
    script: 'check-smee-health.sh',
    file: { content: OURS, age: 5 },
    code: 0,
    stdout: 'Health check passed (5s old)\n',
    stderr: '',
  },
  {
    name: 'smee: exactly max age still passes',
    script: 'check-smee-health.sh',
    file: { content: OK, age: 60 },
    code: 0,
    stdout: 'Health check passed (60s old)\n',
    stderr: '',
  },
  {
    name: 'smee: stale at the default 60 s',
    script: 'check-smee-health.sh',
    file: { content: OK, age: 61 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 61s old (max: 60s)\n',
  },
  {
    name: 'smee: stale by minutes',
    script: 'check-smee-health.sh',
    file: { content: OK, age: 120 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 120s old (max: 60s)\n',
  },
  { name: 'smee: missing file', script: 'check-smee-health.sh', code: 1, stdout: '', stderr: 'Health file missing: {default}\n' },
  {
    name: 'smee: failed check',
    script: 'check-smee-health.sh',
    file: { content: TIMED_OUT, age: 5 },
    code: 1,
    stdout: 'Health check failed: failure - Health check timed out waiting for event round-trip\n',
    stderr: '',
  },
  {
    name: 'smee: status other than success',
    script: 'check-smee-health.sh',
    file: { content: 'status=successful\nmessage=nearly\n', age: 5 },
    code: 1,
    stdout: 'Health check failed: successful - nearly\n',
    stderr: '',
  },
  {
    name: 'smee: no status line',
    script: 'check-smee-health.sh',
    file: { content: 'message=test message\n', age: 5 },
    code: 1,
    stdout: 'Health check failed: unknown - test message\n',
    stderr: '',
  },
  {
    name: 'smee: empty file',
    script: 'check-smee-health.sh',
    file: { content: '', age: 5 },
    code: 1,
    stdout: 'Health check failed: unknown - no message\n',
    stderr: '',
  },
  {
    name: 'smee: garbage',
    script: 'check-smee-health.sh',
    file: { content: Buffer.from('invalid content\n\x01\xff\xfe status=success\n\n', 'latin1'), age: 5 },
    code: 1,
    stdout: 'Health check failed: unknown - no message\n',
    stderr: '',
  },
  {
    // dash's echo would turn \c into "stop here" and \n into a newline.
    name: 'smee: backslashes in the message are printed as they are',
    script: 'check-smee-health.sh',
    file: { content: 'status=failure\nmessage=POST failed: C:\\new\\cache \\c done\n', age: 5 },
    code: 1,
    stdout: 'Health check failed: failure - POST failed: C:\\new\\cache \\c done\n',
    stderr: '',
  },
  {
    name: 'smee: custom max age passes an older file',
    script: 'check-smee-health.sh',
    args: ['100'],
    file: { content: OK, age: 75 },
    code: 0,
    stdout: 'Health check passed (75s old)\n',
    stderr: '',
  },
  {
    name: 'smee: custom max age fails a younger file',
    script: 'check-smee-health.sh',
    args: ['30'],
    file: { content: OK, age: 45 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 45s old (max: 30s)\n',
  },
  {
    name: 'smee: stale wins over a failed status',
    script: 'check-smee-health.sh',
    file: { content: TIMED_OUT, age: 61 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 61s old (max: 60s)\n',
  },

  // check-sidecar-health.sh: fresh, whatever the status.
  {
    name: 'sidecar: fresh success file',
    script: 'check-sidecar-health.sh',
    file: { content: OK, age: 5 },
    code: 0,
    stdout: 'Health checker active (5s ago)\n',
    stderr: '',
  },
  {
    name: 'sidecar: failed check still passes',
    script: 'check-sidecar-health.sh',
    file: { content: TIMED_OUT, age: 5 },
    code: 0,
    stdout: 'Health checker active (5s ago)\n',
    stderr: '',
  },
  {
    name: 'sidecar: empty file still passes',
    script: 'check-sidecar-health.sh',
    file: { content: '', age: 5 },
    code: 0,
    stdout: 'Health checker active (5s ago)\n',
    stderr: '',
  },
  {
    name: 'sidecar: default max age is 90, not 60',
    script: 'check-sidecar-health.sh',
    file: { content: OK, age: 75 },
    code: 0,
    stdout: 'Health checker active (75s ago)\n',
    stderr: '',
  },
  {
    name: 'sidecar: exactly max age still passes',
    script: 'check-sidecar-health.sh',
    file: { content: OK, age: 90 },
    code: 0,
    stdout: 'Health checker active (90s ago)\n',
    stderr: '',
  },
  {
    name: 'sidecar: stale at the default 90 s',
    script: 'check-sidecar-health.sh',
    file: { content: OK, age: 91 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 91s old (max: 90s)\n',
  },
  { name: 'sidecar: missing file', script: 'check-sidecar-health.sh', code: 1, stdout: '', stderr: 'Health file missing: {default}\n' },
  {
    name: 'sidecar: custom max age',
    script: 'check-sidecar-health.sh',
    args: ['30'],
    file: { content: OK, age: 45 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 45s old (max: 30s)\n',
  },

  // HEALTH_FILE_PATH in the calling container overrides the configured file.
  {
    name: 'smee: HEALTH_FILE_PATH names the file read',
    script: 'check-smee-health.sh',
    override: { value: '{override}', file: { content: OK, age: 7 } },
    code: 0,
    stdout: 'Health check passed (7s old)\n',
    stderr: '',
  },
  {
    name: 'smee: HEALTH_FILE_PATH status is the one read',
    script: 'check-smee-health.sh',
    file: { content: OK, age: 5 },
    override: { value: '{override}', file: { content: TIMED_OUT, age: 5 } },
    code: 1,
    stdout: 'Health check failed: failure - Health check timed out waiting for event round-trip\n',
    stderr: '',
  },
  {
    name: 'smee: HEALTH_FILE_PATH to a missing file',
    script: 'check-smee-health.sh',
    file: { content: OK, age: 5 },
    override: { value: '{override}' },
    code: 1,
    stdout: '',
    stderr: 'Health file missing: {override}\n',
  },
  {
    name: 'smee: empty HEALTH_FILE_PATH keeps the default',
    script: 'check-smee-health.sh',
    file: { content: OK, age: 5 },
    override: { value: '' },
    code: 0,
    stdout: 'Health check passed (5s old)\n',
    stderr: '',
  },
  {
    name: 'sidecar: HEALTH_FILE_PATH names the file read',
    script: 'check-sidecar-health.sh',
    override: { value: '{override}', file: { content: OK, age: 7 } },
    code: 0,
    stdout: 'Health checker active (7s ago)\n',
    stderr: '',
  },
  {
    name: 'sidecar: HEALTH_FILE_PATH to a missing file',
    script: 'check-sidecar-health.sh',
    file: { content: OK, age: 5 },
    override: { value: '{override}' },
    code: 1,
    stdout: '',
    stderr: 'Health file missing: {override}\n',
  },

  // Invalid max ages fail the probe rather than pass it.
  ...(['abc', '-5', '1e3', '12345678901'] as const).flatMap((bad): Case[] => [
    {
      name: `smee: invalid max age ${bad}`,
      script: 'check-smee-health.sh',
      args: [bad],
      file: { content: OK, age: 5 },
      code: 1,
      stdout: '',
      stderr: `Invalid max age: ${bad} (expected whole seconds)\n`,
    },
    {
      name: `sidecar: invalid max age ${bad}`,
      script: 'check-sidecar-health.sh',
      args: [bad],
      file: { content: OK, age: 5 },
      code: 1,
      stdout: '',
      stderr: `Invalid max age: ${bad} (expected whole seconds)\n`,
    },
  ]),

  // check-file-age.sh: the shared helper; the path is always its first argument.
  {
    name: 'file-age: no arguments',
    script: 'check-file-age.sh',
    code: 1,
    stdout: '',
    stderr: 'Usage: {script} <file_path> [max_age_seconds]\n',
  },
  {
    name: 'file-age: ignores HEALTH_FILE_PATH',
    script: 'check-file-age.sh',
    override: { value: '{override}', file: { content: OK, age: 5 } },
    code: 1,
    stdout: '',
    stderr: 'Usage: {script} <file_path> [max_age_seconds]\n',
  },
  {
    name: 'file-age: prints the age',
    script: 'check-file-age.sh',
    args: ['{default}'],
    file: { content: '', age: 5 },
    code: 0,
    stdout: '5\n',
    stderr: '',
  },
  {
    name: 'file-age: default max age is 60',
    script: 'check-file-age.sh',
    args: ['{default}'],
    file: { content: OK, age: 61 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 61s old (max: 60s)\n',
  },
  {
    name: 'file-age: custom max age passes',
    script: 'check-file-age.sh',
    args: ['{default}', '100'],
    file: { content: OK, age: 75 },
    code: 0,
    stdout: '75\n',
    stderr: '',
  },
  {
    name: 'file-age: custom max age fails',
    script: 'check-file-age.sh',
    args: ['{default}', '30'],
    file: { content: OK, age: 75 },
    code: 1,
    stdout: '',
    stderr: 'Health file stale: 75s old (max: 30s)\n',
  },
  {
    name: 'file-age: missing file',
    script: 'check-file-age.sh',
    args: ['{override}'],
    code: 1,
    stdout: '',
    stderr: 'Health file missing: {override}\n',
  },
  {
    name: 'file-age: a directory is no health file',
    script: 'check-file-age.sh',
    args: [elsewhere],
    code: 1,
    stdout: '',
    stderr: `Health file missing: ${elsewhere}\n`,
  },
  {
    name: 'file-age: invalid max age',
    script: 'check-file-age.sh',
    args: ['{default}', 'soon'],
    file: { content: OK, age: 5 },
    code: 1,
    stdout: '',
    stderr: 'Invalid max age: soon (expected whole seconds)\n',
  },
];

function fill(text: string, script: Probe): string {
  return text.replaceAll('{default}', defaultFile).replaceAll('{override}', overrideFile).replaceAll('{script}', scriptPath(script));
}

describe.each(SHELLS)('probe scripts under $name', (shell) => {
  const binDir = join(base, `bin-${shell.name.replace(/\W/g, '-')}`);
  /** The interpreter to run scripts with, and PATH for it and the scripts' nested `sh`. */
  let sh: string;
  let path: string;

  beforeAll(() => {
    ({ sh, path } = shellBin(shell, binDir, BUSYBOX_APPLETS));
  });

  beforeEach(clearFiles);

  it('runs the nested helper under the same shell', () => {
    expect(run([sh, '-c', 'command -v sh'], { path })).toEqual({ code: 0, stdout: `${join(binDir, 'sh')}\n`, stderr: '' });
  });

  it('parses every script', () => {
    for (const name of PROBE_SCRIPTS) expect(run([sh, '-n', scriptPath(name)], { path })).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it.each(CASES)('$name', (c) => {
    if (c.file) writeStatus(defaultFile, c.file.content, c.file.age);
    if (c.override?.file) writeStatus(overrideFile, c.override.file.content, c.override.file.age);
    const env = c.override ? { HEALTH_FILE_PATH: fill(c.override.value, c.script) } : undefined;
    const args = (c.args ?? []).map((a) => fill(a, c.script));

    const r = run([sh, scriptPath(c.script), ...args], { path: `${clockDir}${delimiter}${path}`, env });

    expect(r).toEqual({ code: c.code, stdout: fill(c.stdout, c.script), stderr: fill(c.stderr, c.script) });
  });

  describe('on the real clock', () => {
    const now = () => Math.floor(Date.now() / 1000);

    it('passes a file written just now', () => {
      writeFileSync(defaultFile, OK);
      const r = run([sh, scriptPath('check-smee-health.sh')], { path });
      expect(r).toMatchObject({ code: 0, stderr: '' });
      const age = Number(/^Health check passed \((\d+)s old\)\n$/.exec(r.stdout)?.[1]);
      expect(age).toBeGreaterThanOrEqual(0);
      expect(age).toBeLessThanOrEqual(5);
    });

    it('fails a file two minutes old', () => {
      writeStatus(defaultFile, OK, 120, now());
      const r = run([sh, scriptPath('check-sidecar-health.sh')], { path });
      expect(r).toMatchObject({ code: 1, stdout: '' });
      const age = Number(/^Health file stale: (\d+)s old \(max: 90s\)\n$/.exec(r.stderr)?.[1]);
      expect(age).toBeGreaterThanOrEqual(120);
      expect(age).toBeLessThanOrEqual(125);
    });
  });

  describe('invocation', () => {
    beforeEach(() => writeStatus(defaultFile, OK, 0, Math.floor(Date.now() / 1000)));

    it('by a path relative to another working directory', () => {
      const rel = relative(elsewhere, scriptPath('check-smee-health.sh'));
      expect(rel.startsWith('..')).toBe(true);
      expect(run([sh, rel], { path }).code).toBe(0);
    });

    it('by a bare name from the scripts directory', () => {
      expect(run([sh, 'check-sidecar-health.sh'], { path, cwd: shared }).code).toBe(0);
    });

    it('through `sh -c` with the volume on PATH, as an exec probe may be written', () => {
      const r = run([sh, '-c', 'check-smee-health.sh 30'], { path: `${shared}${delimiter}${path}`, cwd: '/' });
      expect(r).toMatchObject({ code: 0, stderr: '' });
    });
  });
});

describe('probe scripts as the sidecar installs them', () => {
  beforeEach(clearFiles);

  it('are read-only and executable, with the configured file quoted as their default', () => {
    for (const name of PROBE_SCRIPTS) {
      expect(statSync(scriptPath(name)).mode & 0o777).toBe(0o555);
      const text = readFileSync(scriptPath(name), 'utf8');
      expect(text).toBe(renderProbeScript(name, defaultFile));
      expect(text.startsWith('#!/bin/sh\n')).toBe(true);
      expect(text).not.toContain('@HEALTH_FILE@');
    }
    expect(readFileSync(scriptPath('check-smee-health.sh'), 'utf8')).toContain(
      `HEALTH_FILE=\${HEALTH_FILE_PATH:-${shellQuote(defaultFile)}}\n`,
    );
  });

  it('run by their absolute path through the exec bit and shebang, from another directory', () => {
    writeStatus(defaultFile, TIMED_OUT, 0, Math.floor(Date.now() / 1000));
    const env = { path: process.env.PATH ?? '/usr/bin:/bin', cwd: '/' };
    expect(run([scriptPath('check-sidecar-health.sh'), '60'], env)).toMatchObject({
      code: 0,
      stdout: expect.stringMatching(/^Health checker active \(\d+s ago\)\n$/),
    });
    expect(run([scriptPath('check-smee-health.sh')], env)).toEqual({
      code: 1,
      stdout: 'Health check failed: failure - Health check timed out waiting for event round-trip\n',
      stderr: '',
    });
    expect(run([scriptPath('check-file-age.sh')], env)).toEqual({
      code: 1,
      stdout: '',
      stderr: `Usage: ${scriptPath('check-file-age.sh')} <file_path> [max_age_seconds]\n`,
    });
  });

  describe.each(SHELLS)('a default path with shell metacharacters, under $name', (shell) => {
    const odd = join(base, 'odd " \\c `x` ${HOME} }{ dir', "it's \\ here", 'status\tfile');
    const vol = join(base, `odd-vol-${shell.name.replace(/\W/g, '-')}`);

    beforeAll(async () => {
      if (!shell.binary) throw new Error(`${shell.name} is not installed: run scripts/install-test-peers.sh`);
      mkdirSync(dirname(odd), { recursive: true });
      await new HealthStatusFile(fakeConfig(vol, odd)).installProbes();
    });

    it('is read verbatim', () => {
      const argv = shell.busybox ? [shell.binary!, 'sh'] : [shell.binary!];
      const path = process.env.PATH ?? '/usr/bin:/bin';
      rmSync(odd, { force: true });
      expect(run([...argv, join(vol, 'check-smee-health.sh')], { path })).toEqual({
        code: 1,
        stdout: '',
        stderr: `Health file missing: ${odd}\n`,
      });
      writeStatus(odd, OK, 0, Math.floor(Date.now() / 1000));
      expect(run([...argv, join(vol, 'check-smee-health.sh')], { path })).toMatchObject({ code: 0, stderr: '' });
    });
  });

  // A replacement string would expand `$&`, `$'`, `` $` `` and `$$`: the path must go in literally.
  it("keeps `$&` and `$'` in the configured path", () => {
    for (const p of ['/vol/a$&b', "/vol/a$'b"]) {
      expect(renderProbeScript('check-smee-health.sh', p)).toContain(`HEALTH_FILE=\${HEALTH_FILE_PATH:-${shellQuote(p)}}\n`);
    }
  });
});
