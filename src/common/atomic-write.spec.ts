import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic-write';

describe('writeFileAtomic', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'atomic-write-'));
    file = join(dir, 'health-status.txt');
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  const mode = (p: string) => statSync(p).mode & 0o777;

  it('creates the file, mode 0644 by default, and leaves nothing else', async () => {
    await writeFileAtomic(file, 'status=success\n');

    expect(readFileSync(file, 'utf8')).toBe('status=success\n');
    expect(mode(file)).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['health-status.txt']);
  });

  it('replaces the content, from a string or a Buffer', async () => {
    writeFileSync(file, 'a much longer previous content that must not linger\n');

    await writeFileAtomic(file, 'short\n');
    expect(readFileSync(file, 'utf8')).toBe('short\n');

    await writeFileAtomic(file, Buffer.from([0, 1, 2, 255]));
    expect(readFileSync(file)).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(readdirSync(dir)).toEqual(['health-status.txt']);
  });

  it('applies the mode whatever the umask', async () => {
    const previous = process.umask(0o077);
    try {
      await writeFileAtomic(file, 'x', 0o644);
      expect(mode(file)).toBe(0o644);
      await writeFileAtomic(join(dir, 'probe.sh'), '#!/bin/sh\n', 0o555);
      expect(mode(join(dir, 'probe.sh'))).toBe(0o555);
    } finally {
      process.umask(previous);
    }
  });

  it('replaces a read-only file by rename (a new inode), without writing into it', async () => {
    writeFileSync(file, 'old', { mode: 0o444 });
    const before = statSync(file).ino;

    await writeFileAtomic(file, 'new', 0o555);

    expect(readFileSync(file, 'utf8')).toBe('new');
    expect(mode(file)).toBe(0o555);
    expect(statSync(file).ino).not.toBe(before);
  });

  it('fails when the directory is missing, creating nothing', async () => {
    await expect(writeFileAtomic(join(dir, 'absent', 'f.txt'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
    expect(readdirSync(dir)).toEqual([]);
  });

  it('removes its temporary file when the rename fails', async () => {
    mkdirSync(file); // a directory in the way: rename(2) of a file over it fails

    await expect(writeFileAtomic(file, 'x')).rejects.toMatchObject({ code: 'EISDIR' });
    expect(readdirSync(dir)).toEqual(['health-status.txt']);
    expect(statSync(file).isDirectory()).toBe(true);
  });

  it('removes its temporary file and keeps the old content when the write fails', async () => {
    writeFileSync(file, 'old');
    // The module object itself, which atomic-write.ts calls through (not an import-star copy).
    const fsModule: typeof fsp = jest.requireActual('node:fs/promises');
    const realOpen = fsModule.open;
    jest.spyOn(fsModule, 'open').mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
      const handle = await realOpen(...args);
      handle.writeFile = () => Promise.reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
      return handle;
    });

    await expect(writeFileAtomic(file, 'new')).rejects.toThrow('no space left on device');
    expect(readdirSync(dir)).toEqual(['health-status.txt']);
    expect(readFileSync(file, 'utf8')).toBe('old');
  });

  it('lets concurrent writers race to a whole file, with no temporary file left', async () => {
    const versions = Array.from({ length: 8 }, (_, i) => `version ${i}\n`.repeat(1000 + i));

    await Promise.all(versions.map((v) => writeFileAtomic(file, v)));

    expect(versions).toContain(readFileSync(file, 'utf8'));
    expect(readdirSync(dir)).toEqual(['health-status.txt']);
  });

  it('never shows a concurrent reader a partial file', async () => {
    // Two versions of different lengths and bytes: a torn or truncated read matches neither.
    const a = Buffer.alloc(3 << 20, 'a');
    const b = Buffer.alloc(2 << 20, 'b');
    await writeFileAtomic(file, a);

    let writing = true;
    const writer = (async () => {
      try {
        for (let i = 0; i < 20; i++) await writeFileAtomic(file, i % 2 ? a : b);
      } finally {
        writing = false;
      }
    })();
    let reads = 0;
    let torn = 0;
    const seen = new Set<string>();
    while (writing) {
      const got = await fsp.readFile(file);
      reads++;
      if (got.equals(a)) seen.add('a');
      else if (got.equals(b)) seen.add('b');
      else torn++;
    }
    await writer;

    expect(torn).toBe(0);
    expect(reads).toBeGreaterThan(1);
    expect(seen.size).toBeGreaterThan(0);
    expect(readdirSync(dir)).toEqual(['health-status.txt']);
  });
});
