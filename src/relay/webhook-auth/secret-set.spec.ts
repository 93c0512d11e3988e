import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { SecretSet, SecretSource } from './secret-set';

const text = (k: KeyObject) => k.export().toString('utf8');

describe('SecretSet', () => {
  it('keeps every line (trimmed, blank lines skipped) as an HMAC key, and the first as the signing key', () => {
    const set = SecretSet.fromText('new-secret\r\n\n  old-secret  \n')!;
    expect(set.hmacKeys.map(text)).toEqual(['new-secret', 'old-secret']);
    expect(text(set.signingKey)).toBe('new-secret');
    expect(set.tokenDigests).toHaveLength(2);
  });

  it('decodes whsec_ lines for Standard Webhooks only', () => {
    const key = Buffer.from('0123456789abcdef');
    const set = SecretSet.fromText(`plain\nwhsec_${key.toString('base64')}\n`)!;
    expect(set.standardKeys.map((k) => k.export())).toEqual([key]);
    expect(set.hmacKeys).toHaveLength(2);
  });

  it('refuses text with no secret or a whsec_ line that is not base64', () => {
    expect(SecretSet.fromText('\n  \n')).toBeNull();
    expect(SecretSet.fromText('whsec_not*base64')).toBeNull();
  });
});

describe('SecretSource (a secrets file)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webhook-secrets-'));
  const file = join(dir, 'secrets');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the file again when it changes (a new file swapped in, as a Secret volume does), and keeps the last good secrets when it turns bad', async () => {
    writeFileSync(file, 'first-secret\n');
    const problems: string[] = [];
    let changes = 0;
    const source = new SecretSource(
      { file },
      'first-secret\n',
      (p) => problems.push(p),
      () => changes++,
    );
    await source.refresh();
    expect(text(source.current.signingKey)).toBe('first-secret');

    writeFileSync(join(dir, 'next'), 'second-secret\nfirst-secret\n');
    renameSync(join(dir, 'next'), file);
    await source.refresh();
    expect(source.current.hmacKeys.map(text)).toEqual(['second-secret', 'first-secret']);
    expect(changes).toBe(1);

    writeFileSync(join(dir, 'next'), '\n');
    renameSync(join(dir, 'next'), file);
    await source.refresh();
    await source.refresh();
    expect(source.current.hmacKeys.map(text)).toEqual(['second-secret', 'first-secret']);
    expect(problems).toEqual(['no secret in it (one secret per line)']);

    rmSync(file);
    await source.refresh();
    expect(problems[1]).toMatch(/cannot read it \(ENOENT\)/);
    expect(source.current.hmacKeys.map(text)).toEqual(['second-secret', 'first-secret']);
    expect(problems.join(' ')).not.toContain('secret-');
  });

  it('watches on a timer until stopped', async () => {
    writeFileSync(file, 'watched-a\n');
    const source = new SecretSource({ file }, 'watched-a\n');
    source.watch(20);
    try {
      writeFileSync(join(dir, 'next'), 'watched-b\n');
      renameSync(join(dir, 'next'), file);
      const deadline = Date.now() + 10_000;
      while (text(source.current.signingKey) !== 'watched-b' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(text(source.current.signingKey)).toBe('watched-b');
    } finally {
      source.stop();
    }
  });
});
