import { loadConfig } from './load-config';

const files: Record<string, string> = {
  '/s/two-lines': 'new-secret\nold-secret\n',
  '/s/empty': '\n\n',
  '/s/bad-whsec': 'whsec_***\n',
  '/s/dispatch.yaml': 'dispatch:\n  header: X-Route\n  default: http://d/\n  rules:\n    a:\n      secretFile: /s/missing\n    b:\n      secret: rule-b-secret\n    c:\n      secret: x\n      secretFile: /s/two-lines\n',
};
const readFile = (p: string) => {
  if (p in files) return files[p];
  throw Object.assign(new Error(`ENOENT: no such file, open '${p}'`), { code: 'ENOENT' });
};
const load = (env: Record<string, string>) => loadConfig({ DOWNSTREAM_SERVICE_URL: 'http://d/', ...env }, readFile);

describe('webhook authenticity settings', () => {
  it('is off without a secret anywhere', () => {
    const r = load({});
    expect(r.ok && r.config.webhookAuth).toBeNull();
  });

  it('takes WEBHOOK_SECRET_FILE or WEBHOOK_SECRET, with a 300 s tolerance by default', () => {
    const a = load({ WEBHOOK_SECRET_FILE: '/s/two-lines' });
    expect(a.ok && a.config.webhookAuth).toEqual({ secret: { file: '/s/two-lines' }, toleranceMs: 300_000 });
    const b = load({ WEBHOOK_SECRET: 'local-secret', WEBHOOK_TOLERANCE_SECONDS: '60' });
    expect(b.ok && b.config.webhookAuth).toEqual({ secret: { value: 'local-secret' }, toleranceMs: 60_000 });
  });

  it('lists every problem, naming files and lines but never a secret', () => {
    const r = load({ WEBHOOK_SECRET_FILE: '/s/empty', WEBHOOK_SECRET: 'hidden-value', WEBHOOK_TOLERANCE_SECONDS: '0' });
    expect(r.ok).toBe(false);
    const problems = r.ok ? [] : r.problems;
    expect(problems).toEqual(expect.arrayContaining([
      expect.stringMatching(/^WEBHOOK_TOLERANCE_SECONDS="0": expected whole seconds from 1 to 86400/),
      'WEBHOOK_SECRET_FILE and WEBHOOK_SECRET are both set: set one (the file in a cluster, the variable for local use)',
      'WEBHOOK_SECRET_FILE="/s/empty": no secret in it (one secret per line)',
    ]));
    expect(problems.join('\n')).not.toContain('hidden-value');
    const bad = load({ WEBHOOK_SECRET_FILE: '/s/bad-whsec' });
    expect(bad.ok ? [] : bad.problems).toEqual(['WEBHOOK_SECRET_FILE="/s/bad-whsec": line 1: a whsec_ secret must be followed by its key in base64']);
    const missing = load({ WEBHOOK_SECRET_FILE: '/s/none' });
    expect(missing.ok ? [] : missing.problems).toEqual(['WEBHOOK_SECRET_FILE="/s/none": cannot read it (ENOENT)']);
  });

  it('reads a secret per dispatch rule, and reports a rule with both or an unreadable file', () => {
    const r = load({ SIDECAR_CONFIG: '/s/dispatch.yaml' });
    expect(r.ok ? [] : r.problems).toEqual([
      '/s/dispatch.yaml: dispatch.rules.c: expected at most one of secret and secretFile',
    ]);
    files['/s/dispatch2.yaml'] = files['/s/dispatch.yaml'].replace(/ {4}c:\n.*\n.*\n/, '');
    const r2 = load({ SIDECAR_CONFIG: '/s/dispatch2.yaml' });
    expect(r2.ok ? [] : r2.problems).toEqual(['/s/dispatch2.yaml: dispatch.rules["a"].secretFile ("/s/missing"): cannot read it (ENOENT)']);
    files['/s/dispatch3.yaml'] = files['/s/dispatch2.yaml'].replace('/s/missing', '/s/two-lines');
    const r3 = load({ SIDECAR_CONFIG: '/s/dispatch3.yaml' });
    expect(r3.ok).toBe(true);
    if (!r3.ok) return;
    expect(r3.config.webhookAuth).toEqual({ secret: null, toleranceMs: 300_000 });
    expect(r3.config.dispatch!.rules.map((x) => x.secret)).toEqual([{ file: '/s/two-lines' }, { value: 'rule-b-secret' }]);
  });
});
