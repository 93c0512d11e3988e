import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The code stands on Node's and its dependencies' supported APIs only: no internal
 * module of Node (`_http_common`, `_stream_*`, ...: deprecated, DEP0199 and others), no
 * process.binding or internalBinding. Checked on the sources, so that a new use fails CI.
 */
describe('supported APIs only', () => {
  const SRC = join(__dirname, '..', 'src');

  function sources(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const path = join(dir, e.name);
      if (e.isDirectory()) return sources(path);
      return e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts') ? [path] : [];
    });
  }

  const forbidden: Array<[string, RegExp]> = [
    ['an internal Node module', /(?:require\(|from |import\()\s*['"](?:node:)?_[a-z]/],
    ['process.binding', /process\s*\.\s*binding\b/],
    ['internalBinding', /\binternalBinding\b/],
  ];

  it('no source file loads a Node internal', () => {
    const files = sources(SRC);
    expect(files.length).toBeGreaterThan(50);
    const found: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const [what, pattern] of forbidden) if (pattern.test(text)) found.push(`${file.slice(SRC.length + 1)}: ${what}`);
    }
    expect(found).toEqual([]);
  });

  it('would see one (the patterns match what they are for)', () => {
    const samples = ["require('_http_common')", "import x from 'node:_stream_duplex'", 'process.binding("fs")', 'internalBinding(1)'];
    expect(samples.map((s) => forbidden.some(([, p]) => p.test(s)))).toEqual([true, true, true, true]);
  });
});
