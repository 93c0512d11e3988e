/**
 * k8s/examples/connections holds together: the objects validate against the Kubernetes
 * schemas, the sidecar's settings load, the preStop hook calls the script where the sidecar
 * writes it with a timeout that fits the grace period, and every container is hardened.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config/load-config';

const root = join(__dirname, '..');
const example = join(root, 'k8s', 'examples', 'connections');

type Doc = Record<string, any>;

const kustomization = parseYaml(readFileSync(join(example, 'kustomization.yaml'), 'utf8'));
const docs: Doc[] = (kustomization.resources as string[]).flatMap((f) =>
  parseAllDocuments(readFileSync(join(example, f), 'utf8')).map((d) => d.toJSON() as Doc),
);
const deployment = docs.find((d) => d.kind === 'Deployment')!;
const pod = deployment.spec.template.spec;
const sidecar = pod.initContainers.find((c: Doc) => c.image.startsWith('ghcr.io/example/pod-sidecar:'));
const app = pod.containers[0];
const env = Object.fromEntries(sidecar.env.map((e: Doc) => [e.name, e.value])) as Record<string, string>;

describe('k8s/examples/connections', () => {
  it('validates against the Kubernetes schemas', () => {
    const script = `
      import { Deployment } from 'kubernetes-models/apps/v1';
      import { Service } from 'kubernetes-models/v1';
      const docs = JSON.parse(process.argv[1]);
      const errors = [];
      for (const d of docs) {
        const Model = { Deployment, Service }[d.kind];
        if (!Model) { errors.push('no schema for ' + d.kind); continue; }
        try { new Model(d).validate(); } catch (e) { errors.push(d.kind + ': ' + e.message); }
      }
      process.stdout.write(JSON.stringify(errors));`;
    // kubernetes-models is ESM only: validated in a child process.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(docs)], { cwd: root, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([]);
    expect(docs.map((d) => d.kind).sort()).toEqual(['Deployment', 'Service']);
  });

  const kubectl = (process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'kubectl')).find((p) => existsSync(p));
  (kubectl ? it : it.skip)('builds with kustomize', () => {
    const r = spawnSync(kubectl!, ['kustomize', example], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('image: ghcr.io/example/pod-sidecar:0.1.0');
  });

  it("runs the sidecar as a native sidecar, with settings that load and monitor the server's port", () => {
    expect(sidecar.restartPolicy).toBe('Always');
    const loaded = loadConfig(env);
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    expect(loaded.config.connections!.ports).toEqual(app.ports.map((p: Doc) => p.containerPort));
    expect(loaded.config.relay).toBeNull();
    expect(sidecar.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'management' });
    expect(sidecar.ports).toEqual([{ name: 'management', containerPort: loaded.config.server.managementPort }]);
  });

  it("calls wait-for-idle.sh where the sidecar writes it, with a timeout that fits the grace period", () => {
    const shared = pod.volumes.find((v: Doc) => v.emptyDir !== undefined).name;
    const mountOf = (c: Doc) => c.volumeMounts.find((m: Doc) => m.name === shared).mountPath;
    expect(mountOf(sidecar)).toBe(env.SHARED_VOLUME_PATH);

    const command: string[] = app.lifecycle.preStop.exec.command;
    expect(command.slice(0, 2)).toEqual(['sh', `${mountOf(app)}/wait-for-idle.sh`]);
    const timeout = Number(command[2]);
    expect(Number.isInteger(timeout)).toBe(true);
    // The hook may overrun by a couple of seconds, and the server needs time after SIGTERM.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(timeout + 10);
    // The settle time is waited for within the timeout.
    expect(Number(env.IDLE_SETTLE_SECONDS)).toBeLessThan(timeout);
  });

  it.each(['sidecar', 'server'])('hardens the %s container and bounds its resources', (which) => {
    const c = which === 'sidecar' ? sidecar : app;
    expect(c.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(c.resources.limits).toEqual({ cpu: expect.anything(), memory: expect.any(String) });
    expect(c.resources.requests).toEqual({ cpu: expect.anything(), memory: expect.any(String) });
  });

  it('runs the pod as non-root with the default seccomp profile', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
  });
});
