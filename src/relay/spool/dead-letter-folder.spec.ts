import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeadLetterFolder } from './dead-letter-folder';
import { EventMeta, recordBytes } from './spool-record';

const id = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
function meta(n: number): EventMeta {
  return {
    id: id(n),
    seq: n,
    method: 'POST',
    url: '/',
    headers: [],
    client: null,
    receivedAt: n,
    queuedAt: n,
    route: 'default',
    deliveryId: `d${n}`,
  };
}
const dead = { at: 100, attempts: 4, lastStatus: 422, lastError: null };

describe('DeadLetterFolder', () => {
  let dir: string;
  beforeEach(() => {
    dir = join(mkdtempSync(join(tmpdir(), 'dead-letters-')), 'dead-letters');
  });
  afterEach(() => rmSync(join(dir, '..'), { recursive: true, force: true }));

  it('keeps each letter in its own file, lists them in arrival order, reads and removes them', async () => {
    const folder = new DeadLetterFolder(dir);
    await folder.open();
    await folder.put({ ...meta(2), dead }, Buffer.from('two'));
    await folder.put({ ...meta(1), dead }, Buffer.from('one'));
    expect(readdirSync(dir).sort()).toEqual([`${id(1)}.dead`, `${id(2)}.dead`]);
    expect(folder.list().map((l) => [l.id, l.dead.lastStatus])).toEqual([
      [id(1), 422],
      [id(2), 422],
    ]);
    expect((await folder.read(id(2))).body.toString()).toBe('two');
    const bytes = folder.diskBytes;
    await folder.remove(id(2));
    expect(folder.count).toBe(1);
    expect(folder.diskBytes).toBeLessThan(bytes);
    await folder.close();

    const again = new DeadLetterFolder(dir);
    await again.open();
    expect(again.list().map((l) => l.id)).toEqual([id(1)]);
    expect(again.diskBytes).toBe(folder.diskBytes);
    await again.close();
  });

  it('removes leftovers of an interrupted write and sets damaged letters aside', async () => {
    const folder = new DeadLetterFolder(dir);
    await folder.open();
    await folder.put({ ...meta(1), dead }, Buffer.from('one'));
    await folder.close();
    writeFileSync(join(dir, `.${id(2)}.dead.abc123.tmp`), recordBytes({ ...meta(2), dead }, Buffer.from('half')).subarray(0, 20));
    const torn = recordBytes({ ...meta(3), dead }, Buffer.from('three'));
    writeFileSync(join(dir, `${id(3)}.dead`), torn.subarray(0, torn.length - 1));
    writeFileSync(join(dir, `${id(4)}.dead`), recordBytes(meta(4), Buffer.from('no reason recorded')));

    const again = new DeadLetterFolder(dir);
    const { damaged } = await again.open();
    expect(again.list().map((l) => l.id)).toEqual([id(1)]);
    expect(damaged.sort()).toEqual([`${id(3)}.dead`, `${id(4)}.dead`]);
    expect(readdirSync(dir).sort()).toEqual([`${id(1)}.dead`, `${id(3)}.dead.damaged`, `${id(4)}.dead.damaged`]);
    await again.close();
  });
});
