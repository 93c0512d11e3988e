import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { SETTING_NAMES } from '../src/config/config.schema';

/**
 * The documentation is the product's contract, so it must stay whole: every link inside the
 * repository leads to a file (and heading) that exists, no link leaves the repository except
 * to a public URL, and the configuration page lists exactly the settings the schema accepts.
 */

const ROOT = resolve(__dirname, '..');

function markdownFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : name.endsWith('.md') ? [path] : [];
    });
  return [join(ROOT, 'README.md'), join(ROOT, 'k8s', 'README.md'), ...walk(join(ROOT, 'docs'))];
}

/** The text outside fenced code blocks and inline code, where links and headings live. */
function prose(text: string): string {
  return text.replace(/^```[\s\S]*?^```/gm, '').replace(/`[^`\n]*`/g, '``');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchor(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}_\- ]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/^```[\s\S]*?^```/gm, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1])));
}

function linksOf(file: string): string[] {
  return [...prose(readFileSync(file, 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]);
}

describe('documentation', () => {
  const files = markdownFiles();

  it('has a page for every feature and reference topic the front page promises', () => {
    for (const page of ['configuration', 'endpoints', 'metrics', 'operations', 'performance', 'relay', 'spool', 'agent']) {
      expect(existsSync(join(ROOT, 'docs', `${page}.md`))).toBe(true);
    }
  });

  it('links only to files and headings that exist, and outside the repository only to public URLs', () => {
    const broken: string[] = [];
    for (const file of files) {
      for (const link of linksOf(file)) {
        const where = `${relative(ROOT, file)}: ${link}`;
        if (/^https:\/\//.test(link)) continue;
        if (/^[a-z]+:/i.test(link)) {
          broken.push(`${where} (only https:// links may leave the repository)`);
          continue;
        }
        const [path, hash] = link.split('#');
        const target = path === '' ? file : resolve(dirname(file), path);
        if (!target.startsWith(ROOT + '/') && target !== ROOT) broken.push(`${where} (outside the repository)`);
        else if (!existsSync(target)) broken.push(`${where} (no such file)`);
        else if (hash !== undefined && target.endsWith('.md') && !anchorsOf(target).has(hash)) broken.push(`${where} (no such heading)`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('never sends a reader to the files the project was planned from', () => {
    const mentions = files
      .filter((f) => /\.\.\/shared|SPEC\.md|ARCHITECTURE\.md/.test(readFileSync(f, 'utf8')))
      .map((f) => relative(ROOT, f));
    expect(mentions).toEqual([]);
  });

  it('lists every setting in configuration.md, and nothing that is not a setting', () => {
    const text = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
    const documented = new Set<string>();
    for (const row of text.matchAll(/^\| ([^|]+) \|/gm)) {
      for (const name of row[1].matchAll(/`([A-Z][A-Z0-9_]+)`/g)) documented.add(name[1]);
    }
    const known = new Set<string>(SETTING_NAMES);
    expect([...known].filter((n) => !documented.has(n)).sort()).toEqual([]);
    expect([...documented].filter((n) => !known.has(n)).sort()).toEqual([]);
  });

  it('documents every metric the code declares, in metrics.md by name or by its family', () => {
    const declared = new Set<string>();
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? walk(join(dir, name)) : [join(dir, name)]));
    for (const file of walk(join(ROOT, 'src')).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'))) {
      for (const m of readFileSync(file, 'utf8').matchAll(/name: '((?:sidecar|smee)_[a-z_]+|health_check)'/g)) declared.add(m[1]);
    }
    expect(declared.size).toBeGreaterThan(30);
    const page = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
    const families = [...page.matchAll(/`([a-z_]+_)\*`/g)].map((m) => m[1]);
    const everywhere = files.map((f) => readFileSync(f, 'utf8')).join('\n');
    const missing = [...declared].filter((name) => {
      const listed = new RegExp(`\`${name}[{\`]`).test(page) || families.some((f) => name.startsWith(f));
      return !listed || !everywhere.includes(name);
    });
    expect(missing.sort()).toEqual([]);
  });
});
