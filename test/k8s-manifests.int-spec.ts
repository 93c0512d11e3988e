import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, relative, resolve } from 'node:path';
import * as ts from 'typescript';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/load-config';
import type { SidecarConfig, SpoolConfig } from '../src/config/sidecar-config';
import { WAIT_FOR_IDLE_SCRIPT } from '../src/connections/wait-for-idle-script';
import { PROBE_SCRIPTS } from '../src/health-check/probe-scripts';

/**
 * Every kustomization under k8s/ is built with `kubectl kustomize` (missing kubectl fails
 * this suite: CI must not skip it), every object is validated against the Kubernetes
 * OpenAPI schemas (kubernetes-models), and the pods are checked against what the sidecar
 * really does: the probe scripts it writes and where, the ports it listens on (from its
 * configuration as loadConfig reads the container's environment), and the hardening and
 * resources every container must have.
 */

const ROOT = resolve(__dirname, '..');
const K8S = join(ROOT, 'k8s');
const KUBECTL = process.env.KUBECTL ?? 'kubectl';
/** Our image, whatever its tag: the container running it is the sidecar. */
const SIDECAR_IMAGE = 'ghcr.io/example/pod-sidecar';
const RUN_AS = 65532;
/** The kustomizations this suite must find; more are checked as they appear. */
const EXPECTED = [
  'base',
  'examples/connections',
  'examples/haproxy-agent',
  'examples/native-sidecar',
  'examples/smee-client-pod',
  'examples/smee-server-monitor',
  'examples/spool',
  'examples/redis-ha',
];

/** Which argument of a probe script is its max age, and its default: read off the script (`MAX_AGE=${1:-60}`). */
function maxAgeParameter(script: string): { index: number; defaultSeconds: number } {
  const text = readFileSync(join(ROOT, 'scripts', 'probes', script), 'utf8');
  const m = /^\s*MAX_AGE\w*=\$\{(\d+):-(\d+)\}/m.exec(text);
  if (!m) throw new Error(`cannot find the max-age parameter (MAX_AGE=\${N:-seconds}) in scripts/probes/${script}`);
  return { index: Number(m[1]) - 1, defaultSeconds: Number(m[2]) };
}

/** wait-for-idle.sh's default timeout, read off the script (`TIMEOUT=${1:-25}`). */
function waitForIdleDefaultTimeout(): number {
  const m = /^TIMEOUT=\$\{1:-(\d+)\}/m.exec(readFileSync(join(ROOT, 'scripts', 'probes', WAIT_FOR_IDLE_SCRIPT), 'utf8'));
  if (!m) throw new Error(`cannot find the timeout parameter (TIMEOUT=\${1:-seconds}) in scripts/probes/${WAIT_FOR_IDLE_SCRIPT}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------
// Kubernetes object shapes, as far as these checks read them.

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; namespace?: string };
  [key: string]: unknown;
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { configMapKeyRef?: { name: string; key: string; optional?: boolean }; [k: string]: unknown };
}
interface EnvFrom {
  prefix?: string;
  configMapRef?: { name: string; optional?: boolean };
  secretRef?: { name: string };
}
interface Probe {
  exec?: { command?: string[] };
  httpGet?: { path?: string; port: number | string };
  tcpSocket?: { port: number | string };
  grpc?: { port: number };
  timeoutSeconds?: number;
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  envFrom?: EnvFrom[];
  ports?: Array<{ name?: string; containerPort: number }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] } } };
  restartPolicy?: string;
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  securityContext?: SecurityContext;
  volumeMounts?: Array<{ name: string; mountPath: string; readOnly?: boolean; subPath?: string; subPathExpr?: string }>;
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  fsGroup?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type?: string };
  privileged?: boolean;
}
interface ClaimSpec {
  accessModes?: string[];
  resources?: { requests?: Record<string, string | number> };
}
/** A PersistentVolumeClaim, or an entry of a StatefulSet's volumeClaimTemplates. */
interface Claim {
  metadata?: { name?: string };
  spec?: ClaimSpec;
}
interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string | number };
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  ephemeral?: { volumeClaimTemplate?: { spec?: ClaimSpec } };
  secret?: { secretName?: string; optional?: boolean; defaultMode?: number; items?: Array<{ key: string; path: string; mode?: number }> };
  [k: string]: unknown;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext;
  enableServiceLinks?: boolean;
  terminationGracePeriodSeconds?: number;
}
/** The parts of a workload's spec that hold its pod template. */
interface WorkloadSpec {
  template?: { spec: PodSpec };
  volumeClaimTemplates?: Claim[];
  jobTemplate?: { spec: { template: { spec: PodSpec } } };
}
interface PodTemplate {
  where: string;
  spec: PodSpec;
  /** A StatefulSet's volumeClaimTemplates: each pod gets a claim of its own for each, mounted by its name. */
  claimTemplates?: Claim[];
  /** The whole build, for the PersistentVolumeClaims the pod's volumes name. */
  objects: K8sObject[];
}

// ---------------------------------------------------------------------------------------
// Finding and building the kustomizations.

function findKustomizations(dir: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) found.push(...findKustomizations(join(dir, entry.name)));
    else if (['kustomization.yaml', 'kustomization.yml', 'Kustomization'].includes(entry.name)) found.push(dir);
  }
  return found.sort();
}

function kustomizationFile(dir: string): Record<string, unknown> {
  for (const name of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
    try {
      return parseYaml(readFileSync(join(dir, name), 'utf8')) as Record<string, unknown>;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  throw new Error(`no kustomization file in ${dir}`);
}

function kubectlMissing(): string | null {
  const r = spawnSync(KUBECTL, ['version', '--client'], { encoding: 'utf8' });
  if (r.error) {
    return (
      `kubectl is needed to build the kustomizations under k8s/ and was not found (${r.error.message}). ` +
      'Install kubectl (it builds kustomizations offline) or point KUBECTL at it; this suite must not be skipped.'
    );
  }
  if (r.status !== 0) return `"${KUBECTL} version --client" failed: ${r.stderr}`;
  return null;
}

const builds = new Map<string, K8sObject[]>();

/** `kubectl kustomize <dir>`, parsed; memoised, so each directory is built once. */
function build(dir: string): K8sObject[] {
  const cached = builds.get(dir);
  if (cached) return cached;
  const missing = kubectlMissing();
  if (missing) throw new Error(missing);
  const r = spawnSync(KUBECTL, ['kustomize', dir], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${relative(ROOT, dir)} failed:\n${r.stderr}`);
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(r.stdout)) {
    if (doc.errors.length > 0)
      throw new Error(`kubectl kustomize ${relative(ROOT, dir)} wrote YAML that does not parse: ${doc.errors[0].message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value !== null) objects.push(value);
  }
  builds.set(dir, objects);
  return objects;
}

// ---------------------------------------------------------------------------------------
// Schema validation with kubernetes-models. Its packages are ESM only, which jest (CJS
// here) cannot load, so the validation runs in a child Node process.

const VALIDATOR = `
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const results = [];
for (const object of JSON.parse(Buffer.concat(chunks).toString('utf8'))) {
  const where = object.kind + '/' + (object.metadata?.name ?? '(no name)');
  const [group, version] = String(object.apiVersion).includes('/') ? object.apiVersion.split('/') : [null, object.apiVersion];
  let Model;
  try {
    Model = (await import('kubernetes-models/' + (group ? group + '/' : '') + version + '/' + object.kind))[object.kind];
  } catch (e) {
    results.push({ where, error: 'kubernetes-models has no schema for ' + object.apiVersion + ' ' + object.kind + ': ' + e.message });
    continue;
  }
  try {
    new Model(object).validate();
    results.push({ where });
  } catch (e) {
    results.push({ where, error: e.message });
  }
}
process.stdout.write(JSON.stringify(results));
`;

function schemaProblems(objects: K8sObject[]): string[] {
  if (objects.length === 0) return [];
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', VALIDATOR], {
    cwd: ROOT,
    input: JSON.stringify(objects),
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`the kubernetes-models validator failed to run:\n${r.stderr}`);
  const results = JSON.parse(r.stdout) as Array<{ where: string; error?: string }>;
  if (results.length !== objects.length) throw new Error(`the validator answered for ${results.length} of ${objects.length} objects`);
  return results.filter((x) => x.error).map((x) => `${x.where}: ${x.error}`);
}

/**
 * Fields the API server would reject as unknown. The OpenAPI schemas leave objects open
 * (no additionalProperties: false), so a misspelt field such as `readinesProbe` passes
 * them and is dropped, or refused by `kubectl apply`'s strict field validation. The
 * TypeScript types of the same models are closed: each object is type-checked as an
 * object literal of its model's interface, whose excess-property check finds them.
 */
const sourceFiles = new Map<string, ts.SourceFile | undefined>();
function unknownFieldProblems(objects: K8sObject[]): string[] {
  if (objects.length === 0) return [];
  const file = join(ROOT, '__k8s_manifests__.ts');
  const ranges: Array<{ start: number; end: number; where: string }> = [];
  let source = '';
  objects.forEach((o, i) => {
    const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : [null, o.apiVersion];
    source += `import type { I${o.kind} as T${i} } from 'kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}';\n`;
  });
  objects.forEach((o, i) => {
    const start = source.length;
    source += `export const o${i}: T${i} = ${JSON.stringify(o, null, 2)};\n`;
    ranges.push({ start, end: source.length, where: `${o.kind}/${o.metadata?.name}` });
  });
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2022,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  // The library's declarations are parsed once for all the builds.
  host.getSourceFile = (name, language, ...rest) => {
    if (name === file) return ts.createSourceFile(name, source, language);
    if (!sourceFiles.has(name)) sourceFiles.set(name, getSourceFile(name, language, ...rest));
    return sourceFiles.get(name);
  };
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, ' ');
    const at = d.file?.fileName === file && d.start !== undefined ? ranges.find((r) => d.start! >= r.start && d.start! < r.end) : undefined;
    if (!at) return `type-check of the built objects failed: ${message}`;
    const line = source.slice(0, d.start).split('\n').length - source.slice(0, at.start).split('\n').length + 1;
    return `${at.where} (line ${line} of its JSON): ${message}`;
  });
}

// ---------------------------------------------------------------------------------------
// Pods.

function podTemplates(objects: K8sObject[], dir: string): PodTemplate[] {
  const pods: PodTemplate[] = [];
  for (const o of objects) {
    const where = `${relative(K8S, dir)}: ${o.kind}/${o.metadata?.name}`;
    const spec = o.spec as WorkloadSpec | undefined;
    if (o.kind === 'Pod') pods.push({ where, spec: o.spec as PodSpec, objects });
    else if (o.kind === 'StatefulSet')
      pods.push({ where, spec: spec?.template?.spec as PodSpec, claimTemplates: spec?.volumeClaimTemplates ?? [], objects });
    else if (['Deployment', 'DaemonSet', 'ReplicaSet', 'Job'].includes(o.kind))
      pods.push({ where, spec: spec?.template?.spec as PodSpec, objects });
    else if (o.kind === 'CronJob') pods.push({ where, spec: spec?.jobTemplate?.spec.template.spec as PodSpec, objects });
  }
  return pods;
}

function allContainers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

function configMaps(objects: K8sObject[]): Map<string, Record<string, string>> {
  const maps = new Map<string, Record<string, string>>();
  for (const o of objects) if (o.kind === 'ConfigMap') maps.set(o.metadata!.name!, (o.data as Record<string, string>) ?? {});
  return maps;
}

/** Kubernetes' $(VAR) expansion in env values, command and args; $$ escapes. */
function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) =>
    name === undefined ? '$' : (env[name] ?? m),
  );
}

/** The container's environment as the kubelet would build it, from literal values and ConfigMaps of the build. */
function containerEnv(c: Container, maps: Map<string, Record<string, string>>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const data = maps.get(from.configMapRef.name);
      if (!data) {
        if (from.configMapRef.optional) continue;
        throw new Error(`container ${c.name}: envFrom ConfigMap ${from.configMapRef.name} is not part of the build`);
      }
      for (const [k, v] of Object.entries(data)) env[(from.prefix ?? '') + k] = v;
    } else {
      throw new Error(`container ${c.name}: envFrom ${JSON.stringify(from)} cannot be resolved by this test`);
    }
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value, env);
    else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const v = maps.get(ref.name)?.[ref.key];
      if (v === undefined) {
        if (ref.optional) continue;
        throw new Error(`container ${c.name}: env ${e.name} refers to ConfigMap ${ref.name} key ${ref.key}, which is not in the build`);
      }
      env[e.name] = v;
    } else if (e.valueFrom) {
      throw new Error(
        `container ${c.name}: env ${e.name} comes from ${Object.keys(e.valueFrom).join(', ')}, which this test cannot resolve`,
      );
    } else {
      env[e.name] = '';
    }
  }
  return env;
}

function isSidecar(c: Container): boolean {
  return c.image === SIDECAR_IMAGE || (c.image ?? '').startsWith(`${SIDECAR_IMAGE}:`) || (c.image ?? '').startsWith(`${SIDECAR_IMAGE}@`);
}

// ---------------------------------------------------------------------------------------
// Quantities, for requests <= limits and the spool's volume.

function cpuMillis(q: string | number): number {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) : Number(s) * 1000;
}

const BINARY_SUFFIXES: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
const DECIMAL_SUFFIXES: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/**
 * A Kubernetes quantity (resource.Quantity) as a number: a decimal number with a binary
 * suffix (Ki … Ei, powers of 1024), a decimal one (n u m k M G T P E, powers of 1000: "K"
 * is not one) or a decimal exponent ("1e9"); NaN for anything else, such as "1GB".
 */
function bytes(q: string | number): number {
  const m = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([KMGTPE]i)|([numkMGTPE])|[eE]([+-]?\d+))?$/.exec(String(q));
  if (!m) return Number.NaN;
  const [, number, binary, decimal, exponent] = m;
  if (binary) return Number(number) * 2 ** BINARY_SUFFIXES[binary];
  // Through the number's own text, so that 1.6G is exactly 1600000000 (1.6 * 1e9 need not be).
  return Number(`${number}e${decimal ? DECIMAL_SUFFIXES[decimal] : (exponent ?? 0)}`);
}

/** Bytes for a message: "1.5 GiB", "64 MiB", "900 bytes". */
function humanBytes(n: number): string {
  for (const [unit, bits] of [
    ['EiB', 60],
    ['PiB', 50],
    ['TiB', 40],
    ['GiB', 30],
    ['MiB', 20],
    ['KiB', 10],
  ] as const) {
    if (Math.abs(n) >= 2 ** bits) return `${Number((n / 2 ** bits).toFixed(2))} ${unit}`;
  }
  return `${n} bytes`;
}

// ---------------------------------------------------------------------------------------
// The checks. Each returns its problems, one sentence each, so that a failure says what
// to fix and the checks themselves can be tried on broken pods (at the end).

/** Resource requests and limits, and the hardened securityContext, on every container. */
function hardeningProblems(pod: PodTemplate): string[] {
  const problems: string[] = [];
  const podSc = pod.spec.securityContext ?? {};
  for (const c of allContainers(pod.spec)) {
    const at = `${pod.where} container ${c.name}`;
    const { requests = {}, limits = {} } = c.resources ?? {};
    for (const r of ['cpu', 'memory']) {
      if (requests[r] === undefined) problems.push(`${at}: no ${r} request`);
      if (limits[r] === undefined) problems.push(`${at}: no ${r} limit`);
    }
    if (requests.cpu !== undefined && limits.cpu !== undefined && cpuMillis(requests.cpu) > cpuMillis(limits.cpu)) {
      problems.push(`${at}: cpu request ${requests.cpu} is above its limit ${limits.cpu}`);
    }
    if (requests.memory !== undefined && limits.memory !== undefined && !(bytes(requests.memory) <= bytes(limits.memory))) {
      problems.push(`${at}: memory request ${requests.memory} is above its limit ${limits.memory}`);
    }
    const sc = c.securityContext;
    if (!sc) {
      problems.push(`${at}: no securityContext`);
      continue;
    }
    // runAsNonRoot, runAsUser and seccompProfile are inherited from the pod's context.
    if ((sc.runAsNonRoot ?? podSc.runAsNonRoot) !== true) problems.push(`${at}: runAsNonRoot is not true`);
    if ((sc.runAsUser ?? podSc.runAsUser) !== RUN_AS) problems.push(`${at}: runAsUser is not ${RUN_AS}`);
    if ((sc.seccompProfile ?? podSc.seccompProfile)?.type !== 'RuntimeDefault')
      problems.push(`${at}: seccompProfile is not RuntimeDefault`);
    if (sc.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${at}: capabilities do not drop ALL`);
    if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${at}: capabilities add ${sc.capabilities!.add!.join(', ')}`);
    if (sc.privileged) problems.push(`${at}: privileged`);
    const image = c.image ?? '';
    if (!/[:@]/.test(image.slice(image.lastIndexOf('/') + 1)) || image.endsWith(':latest')) {
      problems.push(`${at}: image ${image} is not pinned to a tag or digest`);
    }
  }
  return problems;
}

interface ScriptCall {
  script: string;
  dir: string;
  args: string[];
}

/** The probe script an exec probe runs: `sh <script> [args]` or `<script> [args]`. */
function scriptCall(command: string[]): ScriptCall | null {
  const [first, ...rest] = command;
  const [path, ...args] = ['sh', '/bin/sh', '/usr/bin/sh'].includes(first) ? rest : command;
  if (path === undefined || !path.endsWith('.sh')) return null;
  return { script: posix.basename(path), dir: posix.dirname(path), args };
}

function resolvePort(c: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * Room a spool's volume must keep beyond SPOOL_MAX_BYTES, which counts segments, acks and
 * dead letters only: a fifth of the volume, and at least 32 MiB. It holds the filesystem's
 * own share (ext4's defaults leave uid 65532 about 90% of a 2 GiB volume: journal, inode
 * tables and 5% reserved for root), delivery-ids.json (up to 100 000 ids, about 10 MB,
 * written beside the old copy) and the other files on the volume.
 */
const SPOOL_HEADROOM = { fraction: 0.2, minBytes: 32 * 2 ** 20 };

/** The size of the volume `name` of the pod, and what happens when it is full; or why it cannot be told. */
function spoolVolume(pod: PodTemplate, name: string): { bytes: number; what: string; whenFull: string } | { problem: string } {
  const whenDiskFull = 'the disk fills before the spool does, and writes fail (503) where new events should get 507';
  const fromClaim = (spec: ClaimSpec | undefined, what: string) => {
    const storage = spec?.resources?.requests?.storage;
    if (storage === undefined) return { problem: `${what} requests no storage` };
    const n = bytes(storage);
    if (!Number.isFinite(n)) return { problem: `${what} requests storage ${JSON.stringify(storage)}, which is not a Kubernetes quantity` };
    return { bytes: n, what: `${what} (requests ${storage})`, whenFull: whenDiskFull };
  };
  // A StatefulSet's claim template replaces a pod volume of the same name.
  const template = pod.claimTemplates?.find((c) => c.metadata?.name === name);
  if (template) return fromClaim(template.spec, `the claim template ${name}`);
  const volume = pod.spec.volumes?.find((v) => v.name === name);
  if (!volume) return { problem: `no volume or claim template is named ${name}` };
  if (volume.emptyDir) {
    const { medium, sizeLimit } = volume.emptyDir;
    if (medium === 'Memory')
      return {
        problem: `the emptyDir ${name} is in memory (medium: Memory): the spool's files would count against the memory limit and a synced write would be on no disk`,
      };
    if (sizeLimit === undefined)
      return { problem: `the emptyDir ${name} has no sizeLimit, so SPOOL_MAX_BYTES cannot be checked against the space it may take` };
    const n = bytes(sizeLimit);
    if (!Number.isFinite(n))
      return { problem: `the emptyDir ${name} has sizeLimit ${JSON.stringify(sizeLimit)}, which is not a Kubernetes quantity` };
    return {
      bytes: n,
      what: `the emptyDir ${name} (sizeLimit ${sizeLimit})`,
      whenFull: 'the kubelet evicts a pod whose emptyDir grows past its sizeLimit, and the spool is lost with the pod',
    };
  }
  if (volume.persistentVolumeClaim) {
    const { claimName, readOnly } = volume.persistentVolumeClaim;
    if (readOnly) return { problem: `the volume ${name} (PersistentVolumeClaim ${claimName}) is readOnly` };
    const claim = pod.objects.find((o): o is K8sObject & Claim => o.kind === 'PersistentVolumeClaim' && o.metadata?.name === claimName);
    if (!claim)
      return {
        problem: `the PersistentVolumeClaim ${claimName} of volume ${name} is not part of the build, so its size cannot be checked`,
      };
    return fromClaim(claim.spec, `the PersistentVolumeClaim ${claimName}`);
  }
  if (volume.ephemeral) {
    return fromClaim(volume.ephemeral.volumeClaimTemplate?.spec, `the ephemeral volume ${name}`);
  }
  const kind = Object.keys(volume)
    .filter((k) => k !== 'name')
    .join(', ');
  return {
    problem: `the volume ${name} is ${kind || 'of no kind'}: the spool needs an emptyDir with a sizeLimit or a PersistentVolumeClaim, whose size SPOOL_MAX_BYTES can be checked against`,
  };
}

/**
 * In spool mode: SPOOL_PATH on a writable volume mounted in the sidecar, and SPOOL_MAX_BYTES
 * set, below that volume's size with SPOOL_HEADROOM to spare.
 */
function spoolProblems(pod: PodTemplate, sidecar: Container, env: Record<string, string>, spool: SpoolConfig): string[] {
  const at = `${pod.where} container ${sidecar.name}`;
  const problems: string[] = [];
  // As loadConfig reads it: an empty value is no value, and the default (1 GiB) fits no volume in particular.
  if ((env.SPOOL_MAX_BYTES ?? '').trim() === '') {
    problems.push(
      `${at}: RELAY_MODE=spool without SPOOL_MAX_BYTES: the default ${spool.maxBytes} (${humanBytes(spool.maxBytes)}) is sized to no volume; set it below the size of the volume at SPOOL_PATH`,
    );
  }
  if (!posix.isAbsolute(spool.path))
    return [...problems, `${at}: SPOOL_PATH ${spool.path} is relative, to a working directory on the container's root filesystem`];
  const path = posix.normalize(spool.path);
  const within = (dir: string) => path === dir || path.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
  const mount = (sidecar.volumeMounts ?? [])
    .filter((m) => within(posix.normalize(m.mountPath)))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) {
    return [
      ...problems,
      `${at}: SPOOL_PATH ${spool.path} is on no mounted volume: ${
        sidecar.securityContext?.readOnlyRootFilesystem
          ? 'the root filesystem is read-only, the spool cannot be written'
          : "on the container's root filesystem the spool is lost with the container"
      }`,
    ];
  }
  if (mount.readOnly)
    problems.push(`${at}: SPOOL_PATH ${spool.path} is on the volume ${mount.name}, mounted read-only at ${mount.mountPath}`);
  const volume = spoolVolume(pod, mount.name);
  if ('problem' in volume) return [...problems, `${at}: SPOOL_PATH ${spool.path}: ${volume.problem}`];
  const limit = `SPOOL_MAX_BYTES ${spool.maxBytes} (${humanBytes(spool.maxBytes)})`;
  const headroom = Math.max(volume.bytes * SPOOL_HEADROOM.fraction, SPOOL_HEADROOM.minBytes);
  if (spool.maxBytes >= volume.bytes) {
    problems.push(
      `${at}: ${limit} is not below the size of ${volume.what}, ${volume.bytes} bytes (${humanBytes(volume.bytes)}), where SPOOL_PATH is: ${volume.whenFull}`,
    );
  } else if (volume.bytes - spool.maxBytes < headroom) {
    problems.push(
      `${at}: ${limit} leaves ${humanBytes(volume.bytes - spool.maxBytes)} of ${volume.what} for what it does not count ` +
        `(the filesystem's share, delivery-ids.json, other files); keep at least ${humanBytes(headroom)} (a fifth of the volume, at least 32 MiB): ${volume.whenFull}`,
    );
  }
  return problems;
}

/** What the test reads for MANAGEMENT_TOKEN_FILE: the file is in a Secret the cluster holds (its mount is checked). */
const STAND_IN_TOKEN = 'stand-in-token-of-the-manifest-test';

/** The sidecar's configuration from a container's environment, as it would load it in the pod. */
function loadPodConfig(env: Record<string, string>): ReturnType<typeof loadConfig> {
  const tokenFile = env.MANAGEMENT_TOKEN_FILE?.trim();
  const redisPasswordFile = env.REDIS_PASSWORD_FILE?.trim();
  return loadConfig(env, (p) => {
    if (p === tokenFile) return STAND_IN_TOKEN;
    if (p === redisPasswordFile) return 'stand-in-redis-password';
    throw new Error(`${p} is a file in the pod, which this test cannot read`);
  });
}

/**
 * MANAGEMENT_TOKEN_FILE, when set: a file of a Secret volume, mounted whole (a subPath
 * mount never sees a rotated Secret), the Secret not optional (the sidecar refuses to
 * start without its token), and the file readable by the sidecar's user.
 */
function managementTokenProblems(pod: PodTemplate, sidecar: Container, tokenFile: string | null): string[] {
  if (tokenFile === null) return [];
  const at = `${pod.where} container ${sidecar.name}: MANAGEMENT_TOKEN_FILE ${tokenFile}`;
  const mount = (sidecar.volumeMounts ?? [])
    .filter((m) => tokenFile === m.mountPath || tokenFile.startsWith(`${m.mountPath.replace(/\/$/, '')}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) return [`${at} is on no volume: mount the Secret that holds the token`];
  const problems: string[] = [];
  if (mount.subPath !== undefined || mount.subPathExpr !== undefined) {
    problems.push(
      `${at} is mounted with subPath: the kubelet never updates such a mount, so a rotated Secret would need a restart; mount the Secret's folder`,
    );
  }
  const secret = pod.spec.volumes?.find((v) => v.name === mount.name)?.secret;
  if (!secret) return [...problems, `${at} is on the volume ${mount.name}, which is no Secret`];
  if (secret.optional)
    problems.push(
      `${at}: the Secret ${secret.secretName} is optional; without it the sidecar refuses to start (exit 78), so let the pod wait for it`,
    );
  const file = tokenFile === mount.mountPath ? (mount.subPath ?? '') : tokenFile.slice(mount.mountPath.replace(/\/$/, '').length + 1);
  const item = secret.items?.find((i) => i.path === file);
  if (secret.items && !item) problems.push(`${at}: no item of the Secret ${secret.secretName} is written as ${file}`);
  const mode = item?.mode ?? secret.defaultMode ?? 0o644;
  const fsGroup = pod.spec.securityContext?.fsGroup;
  if ((mode & 0o004) === 0 && ((mode & 0o040) === 0 || fsGroup === undefined)) {
    problems.push(
      `${at}: mode 0${mode.toString(8)} without a pod fsGroup lets uid ${RUN_AS} not read it (give group read and set fsGroup, as examples/spool does)`,
    );
  }
  return problems;
}

/**
 * The pod against the sidecar's configuration: its ports, the probe scripts it writes and
 * where they live, the clients that must reach its relay port on its channel, the spool's volume.
 */
function sidecarProblems(pod: PodTemplate, maps: Map<string, Record<string, string>>): string[] {
  const problems: string[] = [];
  const sidecars = allContainers(pod.spec).filter(isSidecar);
  if (sidecars.length === 0) return problems;
  if (sidecars.length > 1) return [`${pod.where}: ${sidecars.length} pod-sidecar containers, expected one`];
  const sidecar = sidecars[0];
  const at = `${pod.where} container ${sidecar.name}`;

  const sidecarEnv = containerEnv(sidecar, maps);
  const loaded = loadPodConfig(sidecarEnv);
  if (!loaded.ok) return [`${at}: the sidecar would not start with this environment: ${loaded.problems.join('; ')}`];
  const config: SidecarConfig = loaded.config;
  const { relayPort, managementPort } = config.server;

  if ((pod.spec.initContainers ?? []).includes(sidecar) && sidecar.restartPolicy !== 'Always') {
    problems.push(`${at}: an init container without restartPolicy: Always would have to exit before the pod starts`);
  }
  if (pod.spec.enableServiceLinks !== false) {
    problems.push(
      `${pod.where}: enableServiceLinks is not false: a Service named "relay" or "management" would set RELAY_PORT or MANAGEMENT_PORT to tcp://... and stop the sidecar`,
    );
  }
  const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
  if (grace * 1000 <= config.server.shutdownTimeoutMs) {
    problems.push(
      `${pod.where}: terminationGracePeriodSeconds ${grace} does not leave the sidecar its ${config.server.shutdownTimeoutMs / 1000} s to drain`,
    );
  }

  // Ports: what it declares is what it listens on.
  const listens = new Map<number | null, string>([[managementPort, 'management']]);
  if (config.relay) listens.set(relayPort, 'relay');
  const agentPort = config.agent?.port ?? null;
  if (agentPort !== null) listens.set(agentPort, 'agent');
  for (const p of sidecar.ports ?? []) {
    const role = listens.get(p.containerPort);
    if (!role)
      problems.push(
        `${at}: containerPort ${p.containerPort} is not a port the sidecar listens on (relay ${config.relay ? relayPort : 'off'}, management ${managementPort}, agent ${agentPort ?? 'off'})`,
      );
    else if (p.name && p.name !== role)
      problems.push(`${at}: containerPort ${p.containerPort} is named ${p.name}, but it is the ${role} port`);
    if (p.name === 'relay' && p.containerPort !== relayPort)
      problems.push(`${at}: port "relay" is ${p.containerPort}, the sidecar relays on ${relayPort}`);
    if (p.name === 'management' && p.containerPort !== managementPort)
      problems.push(`${at}: port "management" is ${p.containerPort}, the sidecar manages on ${managementPort}`);
    if (p.name === 'agent' && p.containerPort !== agentPort)
      problems.push(`${at}: port "agent" is ${p.containerPort}, the sidecar's AGENT_PORT is ${agentPort ?? 'not set'}`);
  }
  if (agentPort !== null && !(sidecar.ports ?? []).some((p) => p.containerPort === agentPort))
    problems.push(`${at}: the agent port ${agentPort} is not declared`);
  if (!(sidecar.ports ?? []).some((p) => p.containerPort === managementPort))
    problems.push(`${at}: the management port ${managementPort} is not declared`);
  for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
    const probe = sidecar[kind];
    if (!probe) continue;
    for (const target of [probe.httpGet, probe.tcpSocket]) {
      if (!target) continue;
      const port = resolvePort(sidecar, target.port);
      if (port !== managementPort)
        problems.push(
          `${at}: ${kind} goes to port ${target.port} (${port ?? 'no such port'}), the sidecar serves its probes on ${managementPort}`,
        );
    }
    const path = probe.httpGet?.path;
    if (path !== undefined && !['/healthz', '/readyz'].includes(path))
      problems.push(`${at}: ${kind} asks ${path}, which the sidecar does not serve`);
  }
  if (sidecar.readinessProbe?.httpGet && sidecar.readinessProbe.httpGet.path !== '/readyz')
    problems.push(`${at}: readinessProbe is not /readyz`);
  // The file probe needs the status file, which only the health check writes.
  const liveness = sidecar.livenessProbe?.exec?.command;
  if (config.healthCheck && (!liveness || scriptCall(liveness)?.script !== 'check-sidecar-health.sh')) {
    problems.push(`${at}: livenessProbe does not run check-sidecar-health.sh (SPEC 6)`);
  }
  if (!config.healthCheck && sidecar.livenessProbe?.httpGet?.path !== '/healthz') {
    problems.push(`${at}: livenessProbe is not /healthz (with the health check off there is no status file for check-sidecar-health.sh)`);
  }

  // The shared volume: an emptyDir the sidecar can write, mounted where it writes.
  const sharedPath = config.sharedVolume.path;
  const sharedMount = (sidecar.volumeMounts ?? []).find((m) => m.mountPath === sharedPath);
  const sharedVolume = pod.spec.volumes?.find((v) => v.name === sharedMount?.name);
  if (!sharedMount)
    problems.push(
      `${at}: nothing is mounted at SHARED_VOLUME_PATH ${sharedPath}; on a read-only root the sidecar cannot write its scripts`,
    );
  else if (sharedMount.readOnly) problems.push(`${at}: the shared volume at ${sharedPath} is mounted read-only`);
  else if (!sharedVolume?.emptyDir)
    problems.push(`${at}: the volume ${sharedMount.name} at ${sharedPath} is not an emptyDir shared by the pod`);
  if (!config.sharedVolume.healthFilePath.startsWith(`${sharedPath}/`)) {
    problems.push(`${at}: HEALTH_FILE_PATH ${config.sharedVolume.healthFilePath} is outside the shared volume ${sharedPath}`);
  }
  if (sidecar.securityContext?.readOnlyRootFilesystem && !(sidecar.volumeMounts ?? []).some((m) => m.mountPath === '/tmp')) {
    problems.push(`${at}: no volume at /tmp, the only other place the sidecar may write on a read-only root`);
  }

  // The spool, in RELAY_MODE=spool: on a volume it can write, and smaller than it.
  if (config.spool) problems.push(...spoolProblems(pod, sidecar, sidecarEnv, config.spool));
  problems.push(...managementTokenProblems(pod, sidecar, config.management.tokenFile));

  // The probe scripts, in every container of the pod.
  const rewriteEverySeconds = config.healthCheck ? (config.healthCheck.intervalMs + config.healthCheck.timeoutMs) / 1000 : null;
  for (const c of allContainers(pod.spec)) {
    for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe'] as const) {
      const command = c[kind]?.exec?.command;
      if (!command) continue;
      const where = `${pod.where} container ${c.name} ${kind}`;
      const call = scriptCall(command);
      if (!call) {
        if (command.some((a) => a.startsWith(`${sharedPath}/`)))
          problems.push(`${where}: ${command.join(' ')} names no probe script the sidecar writes`);
        continue;
      }
      if (!(PROBE_SCRIPTS as readonly string[]).includes(call.script)) {
        problems.push(`${where}: ${call.script} is not a script the sidecar writes (${PROBE_SCRIPTS.join(', ')})`);
        continue;
      }
      if (call.dir !== sharedPath)
        problems.push(`${where}: runs ${call.dir}/${call.script}, but the sidecar writes its scripts into ${sharedPath}`);
      const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === call.dir);
      if (!mount) problems.push(`${where}: ${call.dir} is not mounted in this container`);
      else if (sharedMount && mount.name !== sharedMount.name)
        problems.push(`${where}: ${call.dir} is volume ${mount.name}, the sidecar writes into ${sharedMount.name}`);
      if (!config.healthCheck) {
        problems.push(`${where}: ${call.script} reads the health status file, but the sidecar's health check is off (no SMEE_CHANNEL_URL)`);
        continue;
      }
      const { index, defaultSeconds } = maxAgeParameter(call.script);
      if (call.args.length < index) problems.push(`${where}: ${call.script} needs ${index} argument(s) before the max age`);
      const ageArg = call.args[index];
      const maxAge = ageArg === undefined ? defaultSeconds : Number(ageArg);
      if (!(maxAge >= rewriteEverySeconds!)) {
        problems.push(
          `${where}: max age ${ageArg ?? `${maxAge} (default)`} s is below interval + timeout = ${rewriteEverySeconds} s, the longest the status file may go unchanged between checks`,
        );
      }
      if ((c[kind]?.timeoutSeconds ?? 1) < 2) problems.push(`${where}: timeoutSeconds below 2 s kills the script under CPU throttling`);
    }
  }

  // preStop hooks waiting for the monitored port to go idle.
  for (const c of allContainers(pod.spec)) {
    const command = c.lifecycle?.preStop?.exec?.command;
    const call = command ? scriptCall(command) : null;
    if (!call) continue;
    const where = `${pod.where} container ${c.name} preStop`;
    if (call.script !== WAIT_FOR_IDLE_SCRIPT) {
      if (call.dir === sharedPath)
        problems.push(`${where}: ${call.script} is not the script the sidecar writes for preStop (${WAIT_FOR_IDLE_SCRIPT})`);
      continue;
    }
    if (call.dir !== sharedPath)
      problems.push(`${where}: runs ${call.dir}/${call.script}, but the sidecar writes its scripts into ${sharedPath}`);
    const mount = (c.volumeMounts ?? []).find((m) => m.mountPath === call.dir);
    if (!mount) problems.push(`${where}: ${call.dir} is not mounted in this container`);
    else if (sharedMount && mount.name !== sharedMount.name)
      problems.push(`${where}: ${call.dir} is volume ${mount.name}, the sidecar writes into ${sharedMount.name}`);
    if (!config.connections) {
      problems.push(`${where}: ${call.script} reads the connections state, but the connection monitor is off (no MONITOR_PORT)`);
      continue;
    }
    const timeout = call.args[0] === undefined ? waitForIdleDefaultTimeout() : Number(call.args[0]);
    if (!/^\d+$/.test(String(timeout))) {
      problems.push(`${where}: timeout ${call.args[0]} is not whole seconds`);
    } else {
      if (timeout < config.connections.idleSettleSeconds) {
        problems.push(
          `${where}: timeout ${timeout} s is below the settle time ${config.connections.idleSettleSeconds} s, so it never returns idle`,
        );
      }
      // The script looks once a second and may overrun by a second or two; after it, the
      // kubelet sends SIGTERM and the server needs time of its own to stop.
      if (grace < timeout + 10) {
        problems.push(
          `${where}: terminationGracePeriodSeconds ${grace} does not cover the ${timeout} s wait, its overrun and the server's own shutdown (at least ${timeout + 10})`,
        );
      }
    }
    if (!(pod.spec.initContainers ?? []).includes(sidecar)) {
      problems.push(
        `${where}: the sidecar is an ordinary container, stopped as the hook starts: the state goes stale and the script gives up; run it as a native sidecar`,
      );
    }
  }
  if (config.connections) {
    const declared = new Set(
      allContainers(pod.spec)
        .filter((c) => c !== sidecar)
        .flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)),
    );
    for (const port of config.connections.ports) {
      if (!declared.has(port)) problems.push(`${at}: MONITOR_PORT ${port} is no containerPort of the pod's other containers`);
    }
  }

  // gosmee clients in the pod deliver the sidecar's channel to its relay port.
  for (const c of allContainers(pod.spec)) {
    if (!(c.image ?? '').includes('gosmee') || c.args?.[0] !== 'client') continue;
    const where = `${pod.where} container ${c.name}`;
    const env = containerEnv(c, maps);
    const positional = c.args
      .slice(1)
      .filter((a) => !a.startsWith('-'))
      .map((a) => expand(a, env));
    const [channel, target] = positional.slice(-2);
    if (config.healthCheck && channel !== config.healthCheck.channelUrl) {
      problems.push(`${where}: subscribes to ${channel}, but the sidecar's health check posts to ${config.healthCheck.channelUrl}`);
    }
    const t = URL.canParse(target ?? '') ? new URL(target) : null;
    if (!t || !['localhost', '127.0.0.1', '[::1]'].includes(t.hostname) || Number(t.port || 80) !== relayPort) {
      problems.push(`${where}: forwards to ${target}, not to the sidecar's relay port http://localhost:${relayPort}`);
    }
    const probe = c.livenessProbe?.exec?.command;
    if (!probe || scriptCall(probe)?.script !== 'check-smee-health.sh')
      problems.push(`${where}: the smee client's livenessProbe does not run check-smee-health.sh (SPEC 6)`);
  }

  const downstream = config.relay?.downstreamUrl;
  if (downstream && ['localhost', '127.0.0.1', '[::1]'].includes(downstream.hostname) && Number(downstream.port || 80) === relayPort) {
    problems.push(`${at}: DOWNSTREAM_SERVICE_URL ${downstream.href} is the sidecar's own relay port`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------

const DIRS = findKustomizations(K8S);
const isComponent = (dir: string) => kustomizationFile(dir).kind === 'Component';

describe('Kubernetes manifests under k8s/', () => {
  it('can run kubectl', () => {
    const missing = kubectlMissing();
    if (missing) throw new Error(missing);
  });

  it('has the base component and the examples', () => {
    expect(DIRS.map((d) => relative(K8S, d))).toEqual(expect.arrayContaining(EXPECTED));
  });

  it('includes every component in some kustomization that builds a pod from it', () => {
    const users = new Set<string>();
    for (const dir of DIRS) {
      for (const c of (kustomizationFile(dir).components as string[] | undefined) ?? []) users.add(resolve(dir, c));
    }
    const unused = DIRS.filter((d) => isComponent(d) && !users.has(d)).map((d) => relative(K8S, d));
    expect(unused).toEqual([]);
  });

  describe.each(DIRS.map((d) => [relative(K8S, d), d]))('%s', (_name, dir) => {
    it('builds with kubectl kustomize', () => {
      const objects = build(dir);
      if (!isComponent(dir)) {
        expect(podTemplates(objects, dir).length).toBeGreaterThan(0);
      }
    });

    it('validates against the Kubernetes schemas (kubernetes-models)', () => {
      expect(schemaProblems(build(dir))).toEqual([]);
    });

    it('has no field the API server does not know', () => {
      expect(unknownFieldProblems(build(dir))).toEqual([]);
    });

    it('gives every container requests, limits and the hardened securityContext', () => {
      expect(podTemplates(build(dir), dir).flatMap(hardeningProblems)).toEqual([]);
    });

    it("matches the sidecar's probe scripts, shared volume, spool volume, ports and channel", () => {
      const objects = build(dir);
      const maps = configMaps(objects);
      const pods = podTemplates(objects, dir);
      if (!isComponent(dir)) expect(pods.some((p) => allContainers(p.spec).some(isSidecar))).toBe(true);
      expect(pods.flatMap((p) => sidecarProblems(p, maps))).toEqual([]);
    });
  });

  it('runs the sidecar as a native sidecar (init container, restartPolicy Always) in examples/native-sidecar', () => {
    const [pod] = podTemplates(build(join(K8S, 'examples/native-sidecar')), join(K8S, 'examples/native-sidecar'));
    expect(pod.spec.containers.filter(isSidecar)).toEqual([]);
    const init = (pod.spec.initContainers ?? []).filter(isSidecar);
    expect(init).toHaveLength(1);
    expect(init[0].restartPolicy).toBe('Always');
    expect(init[0].startupProbe?.httpGet?.path).toBe('/healthz');
  });

  it('relays nowhere but watches the channel in examples/smee-server-monitor', () => {
    const dir = join(K8S, 'examples/smee-server-monitor');
    const objects = build(dir);
    const [pod] = podTemplates(objects, dir);
    const sidecar = allContainers(pod.spec).find(isSidecar)!;
    const loaded = loadPodConfig(containerEnv(sidecar, configMaps(objects)));
    expect(loaded.ok && loaded.config.relay?.downstreamUrl).toBeNull();
    expect(loaded.ok && loaded.config.healthCheck?.channelUrl).toMatch(/^http:\/\/localhost:3333\//);
    expect(pod.spec.containers.map((c) => c.name)).toEqual(expect.arrayContaining(['smee-server', 'health-check-client']));
  });

  it('answers HAProxy in examples/haproxy-agent: agent port declared and exposed, drained by preStop', () => {
    const dir = join(K8S, 'examples/haproxy-agent');
    const objects = build(dir);
    const [pod] = podTemplates(objects, dir);
    const sidecar = allContainers(pod.spec).find(isSidecar)!;
    const loaded = loadPodConfig(containerEnv(sidecar, configMaps(objects)));
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const { agent, relay, healthCheck } = loaded.config;
    expect(relay).toBeNull();
    expect(healthCheck).toBeNull();
    expect(agent).toMatchObject({ port: 6060, statusInitial: 'ready', statusPath: '/shared/shard-status' });
    expect(agent!.upstreams.map((u) => u.url.href)).toEqual(['http://localhost:3000/healthz']);
    const service = objects.find((o) => o.kind === 'Service') as K8sObject & {
      spec: { ports: Array<{ name: string; port: number; targetPort: string | number }> };
    };
    expect(service.spec.ports).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: 'agent', port: 6060, targetPort: 'agent' })]),
    );
    // The hook writes "drain" where the agent reads, by rename (a poll never sees half a file).
    const hook = (sidecar.lifecycle?.preStop?.exec?.command ?? []).join(' ');
    expect(hook).toContain(`mv /shared/.shard-status.tmp ${agent!.statusPath}`);
    expect(hook).toMatch(/printf 'drain\\n' > \/shared\/\.shard-status\.tmp/);
  });

  it('waits for idle connections before the server stops, in examples/connections', () => {
    const dir = join(K8S, 'examples/connections');
    const objects = build(dir);
    const [pod] = podTemplates(objects, dir);
    const [sidecar] = (pod.spec.initContainers ?? []).filter(isSidecar);
    expect(sidecar.restartPolicy).toBe('Always');
    const loaded = loadPodConfig(containerEnv(sidecar, configMaps(objects)));
    expect(loaded.ok && loaded.config).toMatchObject({ relay: null, healthCheck: null, connections: { ports: [8080] } });
    const preStops = pod.spec.containers.map((c) => c.lifecycle?.preStop?.exec?.command);
    expect(preStops).toEqual([['sh', '/shared/wait-for-idle.sh', expect.stringMatching(/^\d+$/)]]);
  });

  it("keeps each pod's spool on a claim of its own, below its size, in examples/spool", () => {
    const dir = join(K8S, 'examples/spool');
    const objects = build(dir);
    const [pod] = podTemplates(objects, dir);
    expect(objects.find((o) => o.kind === 'StatefulSet')).toBeDefined();
    const [sidecar] = (pod.spec.initContainers ?? []).filter(isSidecar);
    expect(sidecar.restartPolicy).toBe('Always');
    const loaded = loadPodConfig(containerEnv(sidecar, configMaps(objects)));
    if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
    const { spool } = loaded.config;
    expect(spool).toMatchObject({ path: '/var/spool/pod-sidecar', maxBytes: 1.5 * 2 ** 30 });
    const mount = sidecar.volumeMounts!.find((m) => m.mountPath === spool!.path)!;
    expect(pod.spec.volumes!.map((v) => v.name)).not.toContain(mount.name);
    const claim = pod.claimTemplates!.find((c) => c.metadata?.name === mount.name)!;
    expect(claim.spec).toMatchObject({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '2Gi' } } });
    expect(pod.spec.securityContext).toMatchObject({ runAsUser: RUN_AS, fsGroup: RUN_AS });
    // Its management port serves writes (dead letters): they take a token from a Secret.
    expect(loaded.config.management.tokenFile).toBe('/var/run/secrets/pod-sidecar/token');
    expect(pod.spec.volumes!.find((v) => v.name === 'management-token')!.secret).toMatchObject({ secretName: 'pod-sidecar-management' });
  });

  it('reads Kubernetes quantities as Kubernetes does (Mi and M, exponents; no K)', () => {
    expect(['64Mi', '2Gi', '1.5Gi', '.5Ki', '500M', '1600M', '2G', '2e9', '1E3', '100k', '128974848', '+1', '250m'].map(bytes)).toEqual([
      64 * 2 ** 20,
      2 * 2 ** 30,
      1.5 * 2 ** 30,
      512,
      5e8,
      1.6e9,
      2e9,
      2e9,
      1000,
      1e5,
      128974848,
      1,
      0.25,
    ]);
    expect(['1E', '1Ei'].map(bytes)).toEqual([1e18, 2 ** 60]);
    for (const bad of ['1K', '1GB', '1gi', 'Gi', '1 Gi', '', '1e', '0x10']) expect(bytes(bad)).toBeNaN();
  });

  describe('the checks themselves catch', () => {
    const dir = join(K8S, 'examples/smee-client-pod');
    const broken = (change: (pod: PodTemplate, objects: K8sObject[]) => void) => {
      const objects = structuredClone(build(dir));
      const [pod] = podTemplates(objects, dir);
      change(pod, objects);
      return { pod, objects, maps: configMaps(objects) };
    };
    const sidecarOf = (pod: PodTemplate) => allContainers(pod.spec).find(isSidecar)!;
    const client = (pod: PodTemplate) => pod.spec.containers.find((c) => c.name === 'smee-client')!;

    it('a probe script the sidecar does not write', () => {
      const { pod, maps } = broken((p) => (client(p).livenessProbe!.exec!.command = ['/bin/sh', '/shared/check-health.sh']));
      expect(sidecarProblems(pod, maps).join('\n')).toMatch(/check-health\.sh is not a script the sidecar writes/);
    });

    it('a probe script outside the shared volume', () => {
      const { pod, maps } = broken((p) => (client(p).livenessProbe!.exec!.command = ['/bin/sh', '/health/check-smee-health.sh']));
      expect(sidecarProblems(pod, maps).join('\n')).toMatch(/the sidecar writes its scripts into \/shared/);
    });

    it('a max age shorter than the check interval and timeout', () => {
      const { pod, maps } = broken((p) => (client(p).livenessProbe!.exec!.command = ['/bin/sh', '/shared/check-smee-health.sh', '40']));
      expect(sidecarProblems(pod, maps).join('\n')).toMatch(/max age 40 s is below interval \+ timeout = 50 s/);
    });

    it('a management port the sidecar does not listen on', () => {
      const { pod, maps } = broken((p) => (sidecarOf(p).ports!.find((x) => x.name === 'management')!.containerPort = 9090));
      expect(sidecarProblems(pod, maps).join('\n')).toMatch(/port "management" is 9090, the sidecar manages on 9100/);
    });

    it('ports moved by MANAGEMENT_PORT in the environment but not in the manifest', () => {
      const { pod, maps } = broken((_p, objects) => {
        const cm = objects.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> };
        cm.data.MANAGEMENT_PORT = '9200';
      });
      expect(sidecarProblems(pod, maps).join('\n')).toMatch(/the sidecar serves its probes on 9200/);
    });

    it('an agent port left undeclared, and a script liveness probe without the health check', () => {
      const agentDir = join(K8S, 'examples/haproxy-agent');
      const objects = structuredClone(build(agentDir));
      const [pod] = podTemplates(objects, agentDir);
      const sc = sidecarOf(pod);
      sc.ports = sc.ports!.filter((p) => p.name !== 'agent');
      sc.livenessProbe = { exec: { command: ['/bin/sh', '/shared/check-sidecar-health.sh'] }, timeoutSeconds: 5 };
      const text = sidecarProblems(pod, configMaps(objects)).join('\n');
      expect(text).toMatch(/the agent port 6060 is not declared/);
      expect(text).toMatch(/livenessProbe is not \/healthz \(with the health check off/);
      expect(text).toMatch(/check-sidecar-health\.sh reads the health status file, but the sidecar's health check is off/);
    });

    it('a client on another channel than the health check', () => {
      const { pod, maps } = broken((p) => (client(p).args = ['client', 'https://smee.io/other', 'http://localhost:8080']));
      expect(sidecarProblems(pod, maps).join('\n')).toMatch(/subscribes to https:\/\/smee\.io\/other/);
    });

    it('a configuration the sidecar refuses', () => {
      const { pod, maps } = broken((_p, objects) => {
        const cm = objects.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> };
        cm.data.RELAY_PORT = 'tcp://10.0.0.1:8080';
      });
      expect(sidecarProblems(pod, maps).join('\n')).toMatch(/would not start with this environment: RELAY_PORT=/);
    });

    it('a container without limits or with a writable root filesystem', () => {
      const { pod } = broken((p) => {
        delete client(p).resources!.limits;
        client(p).securityContext!.readOnlyRootFilesystem = false;
      });
      const text = hardeningProblems(pod).join('\n');
      expect(text).toMatch(/smee-client: no memory limit/);
      expect(text).toMatch(/smee-client: readOnlyRootFilesystem is not true/);
    });

    it('a misspelt field', () => {
      const { objects } = broken((p) => {
        const c = client(p) as Container & Record<string, unknown>;
        c.livenesProbe = c.livenessProbe;
        delete c.livenessProbe;
      });
      expect(unknownFieldProblems(objects).join('\n')).toMatch(/'"?livenesProbe"?' does not exist in type/);
    });

    describe('in a pod that waits for idle connections', () => {
      const connectionsDir = join(K8S, 'examples/connections');
      const brokenConnections = (change: (pod: PodTemplate) => void) => {
        const objects = structuredClone(build(connectionsDir));
        const [pod] = podTemplates(objects, connectionsDir);
        change(pod);
        return sidecarProblems(pod, configMaps(objects)).join('\n');
      };
      const server = (pod: PodTemplate) => pod.spec.containers[0];
      const preStop = (pod: PodTemplate) => server(pod).lifecycle!.preStop!.exec!;
      const env = (pod: PodTemplate) => pod.spec.initContainers!.find(isSidecar)!.env!;

      it('is clean as it is', () => {
        expect(brokenConnections(() => undefined)).toBe('');
      });

      it('a preStop wait the grace period does not cover', () => {
        expect(brokenConnections((p) => (preStop(p).command = ['sh', '/shared/wait-for-idle.sh', '55']))).toMatch(
          /terminationGracePeriodSeconds 60 does not cover the 55 s wait/,
        );
        expect(brokenConnections((p) => (preStop(p).command = ['sh', '/shared/wait-for-idle.sh']))).toBe(''); // default 25 s
        expect(brokenConnections((p) => (p.spec.terminationGracePeriodSeconds = 30))).toMatch(
          /terminationGracePeriodSeconds 30 does not cover the 45 s wait/,
        );
      });

      it('a timeout below the settle time', () => {
        expect(brokenConnections((p) => (preStop(p).command = ['sh', '/shared/wait-for-idle.sh', '3']))).toMatch(
          /timeout 3 s is below the settle time 5 s/,
        );
      });

      it('wait-for-idle.sh outside the shared volume, or the volume not mounted', () => {
        expect(brokenConnections((p) => (preStop(p).command = ['sh', '/scripts/wait-for-idle.sh', '45']))).toMatch(
          /the sidecar writes its scripts into \/shared/,
        );
        expect(brokenConnections((p) => (server(p).volumeMounts = []))).toMatch(/preStop: \/shared is not mounted in this container/);
      });

      it('wait-for-idle.sh with the connection monitor off', () => {
        const text = brokenConnections((p) => {
          env(p).splice(
            env(p).findIndex((e) => e.name === 'MONITOR_PORT'),
            1,
            { name: 'DOWNSTREAM_SERVICE_URL', value: 'http://localhost:8080' },
          );
        });
        expect(text).toMatch(/reads the connections state, but the connection monitor is off/);
      });

      it('the sidecar as an ordinary container', () => {
        const text = brokenConnections((p) => {
          const [sidecar] = p.spec.initContainers!.splice(0, 1);
          delete sidecar.restartPolicy;
          p.spec.containers.push(sidecar);
        });
        expect(text).toMatch(/the sidecar is an ordinary container, stopped as the hook starts/);
      });

      it('a monitored port no container declares', () => {
        expect(brokenConnections((p) => (env(p).find((e) => e.name === 'MONITOR_PORT')!.value = '8081'))).toMatch(
          /MONITOR_PORT 8081 is no containerPort/,
        );
      });

      it('a file liveness probe with the health check off', () => {
        const text = brokenConnections(
          (p) =>
            (p.spec.initContainers!.find(isSidecar)!.livenessProbe = { exec: { command: ['/bin/sh', '/shared/check-sidecar-health.sh'] } }),
        );
        expect(text).toMatch(/livenessProbe is not \/healthz/);
      });
    });

    describe('in a pod that spools', () => {
      const spoolDir = join(K8S, 'examples/spool');
      /** The problems of a changed copy of examples/spool; `settings` is the sidecar's ConfigMap. */
      const brokenSpool = (change: (pod: PodTemplate, settings: Record<string, string>, objects: K8sObject[]) => void) => {
        const objects = structuredClone(build(spoolDir));
        const [pod] = podTemplates(objects, spoolDir);
        change(pod, (objects.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> }).data, objects);
        return sidecarProblems(pod, configMaps(objects)).join('\n');
      };
      const sidecar = (pod: PodTemplate) => pod.spec.initContainers!.find(isSidecar)!;
      const spoolMount = (pod: PodTemplate) => sidecar(pod).volumeMounts!.find((m) => m.name === 'spool')!;
      const claimRequest = (pod: PodTemplate) => pod.claimTemplates![0].spec!.resources!.requests!;

      it('is clean as it is, and with SPOOL_MAX_BYTES and SPOOL_PATH written as the sidecar also takes them', () => {
        expect(brokenSpool(() => undefined)).toBe('');
        expect(brokenSpool((_p, s) => (s.SPOOL_MAX_BYTES = ' 1610612736 '))).toBe(''); // trimmed, as the schema does
        expect(brokenSpool((_p, s) => (s.SPOOL_PATH = '/var/spool/pod-sidecar/events/'))).toBe('');
      });

      it('the management token: a whole Secret mount, not optional, readable by the sidecar', () => {
        const tokenVolume = (pod: PodTemplate) => pod.spec.volumes!.find((v) => v.name === 'management-token')!;
        const tokenMount = (pod: PodTemplate) => sidecar(pod).volumeMounts!.find((m) => m.name === 'management-token')!;
        expect(brokenSpool((_p, s) => (s.MANAGEMENT_TOKEN_FILE = '/tmp/token'))).toMatch(
          /MANAGEMENT_TOKEN_FILE \/tmp\/token is on the volume pod-sidecar-tmp, which is no Secret/,
        );
        expect(brokenSpool((_p, s) => (s.MANAGEMENT_TOKEN_FILE = '/etc/token'))).toMatch(
          /MANAGEMENT_TOKEN_FILE \/etc\/token is on no volume/,
        );
        expect(
          brokenSpool((p) => {
            tokenMount(p).mountPath = '/var/run/secrets/pod-sidecar/token';
            tokenMount(p).subPath = 'token';
          }),
        ).toMatch(/is mounted with subPath: the kubelet never updates such a mount/);
        expect(brokenSpool((p) => (tokenVolume(p).secret!.optional = true))).toMatch(/the Secret pod-sidecar-management is optional/);
        expect(brokenSpool((p) => (tokenVolume(p).secret!.items![0].path = 'bearer'))).toMatch(
          /no item of the Secret pod-sidecar-management is written as token/,
        );
        expect(brokenSpool((p) => delete p.spec.securityContext!.fsGroup)).toMatch(
          /mode 0440 without a pod fsGroup lets uid 65532 not read it/,
        );
        expect(brokenSpool((p) => (tokenVolume(p).secret!.defaultMode = 0o400))).toMatch(/mode 0400/);
      });

      it('SPOOL_MAX_BYTES left to its default', () => {
        const message = /RELAY_MODE=spool without SPOOL_MAX_BYTES: the default 1073741824 \(1 GiB\) is sized to no volume/;
        expect(brokenSpool((_p, s) => delete s.SPOOL_MAX_BYTES)).toMatch(message);
        expect(brokenSpool((_p, s) => (s.SPOOL_MAX_BYTES = ''))).toMatch(message); // empty is unset
      });

      it('SPOOL_MAX_BYTES as a quantity, which the sidecar refuses', () => {
        expect(brokenSpool((_p, s) => (s.SPOOL_MAX_BYTES = '1.5Gi'))).toMatch(
          /would not start with this environment: SPOOL_MAX_BYTES="1\.5Gi": expected a whole number/,
        );
      });

      it('SPOOL_MAX_BYTES not below the claim', () => {
        expect(brokenSpool((_p, s) => (s.SPOOL_MAX_BYTES = '2147483648'))).toMatch(
          /SPOOL_MAX_BYTES 2147483648 \(2 GiB\) is not below the size of the claim template spool \(requests 2Gi\), 2147483648 bytes \(2 GiB\), where SPOOL_PATH is: the disk fills before the spool does/,
        );
        // 1600M is 1 600 000 000 bytes, less than 1.5 GiB; 1.5Gi is as much.
        expect(brokenSpool((p) => (claimRequest(p).storage = '1600M'))).toMatch(
          /is not below the size of the claim template spool \(requests 1600M\), 1600000000 bytes/,
        );
        expect(brokenSpool((p) => (claimRequest(p).storage = '1.5Gi'))).toMatch(
          /is not below the size of the claim template spool \(requests 1\.5Gi\)/,
        );
      });

      it('too little room beside SPOOL_MAX_BYTES', () => {
        expect(brokenSpool((_p, s) => (s.SPOOL_MAX_BYTES = '1900000000'))).toMatch(
          /SPOOL_MAX_BYTES 1900000000 \(1\.77 GiB\) leaves 236\.02 MiB of the claim template spool \(requests 2Gi\) for what it does not count .*keep at least 409\.6 MiB/,
        );
        // 2G is 2 000 000 000 bytes: 371 MiB above 1.5 GiB, short of a fifth.
        expect(brokenSpool((p) => (claimRequest(p).storage = '2G'))).toMatch(
          /leaves 371\.35 MiB of the claim template spool \(requests 2G\)/,
        );
        expect(brokenSpool((p) => (claimRequest(p).storage = '2e9'))).toMatch(/leaves 371\.35 MiB/);
        expect(brokenSpool((p) => (claimRequest(p).storage = '2147483648'))).toBe('');
        expect(brokenSpool((p) => (claimRequest(p).storage = '3G'))).toBe('');
      });

      it('a claim size that is no quantity, or none', () => {
        expect(brokenSpool((p) => (claimRequest(p).storage = '2GB'))).toMatch(
          /the claim template spool requests storage "2GB", which is not a Kubernetes quantity/,
        );
        expect(brokenSpool((p) => delete claimRequest(p).storage)).toMatch(/the claim template spool requests no storage/);
      });

      it('SPOOL_PATH on the read-only root', () => {
        expect(brokenSpool((_p, s) => (s.SPOOL_PATH = '/var/lib/spool'))).toMatch(
          /SPOOL_PATH \/var\/lib\/spool is on no mounted volume: the root filesystem is read-only/,
        );
        // A sibling of the mount is not in it.
        expect(brokenSpool((_p, s) => (s.SPOOL_PATH = '/var/spool/pod-sidecar-2'))).toMatch(
          /SPOOL_PATH \/var\/spool\/pod-sidecar-2 is on no mounted volume/,
        );
        expect(brokenSpool((p) => (sidecar(p).volumeMounts = sidecar(p).volumeMounts!.filter((m) => m.name !== 'spool')))).toMatch(
          /is on no mounted volume/,
        );
        expect(brokenSpool((_p, s) => (s.SPOOL_PATH = 'spool'))).toMatch(/SPOOL_PATH spool is relative/);
      });

      it('SPOOL_PATH on a volume mounted read-only', () => {
        expect(brokenSpool((p) => (spoolMount(p).readOnly = true))).toMatch(
          /SPOOL_PATH \/var\/spool\/pod-sidecar is on the volume spool, mounted read-only at \/var\/spool\/pod-sidecar/,
        );
      });

      it('SPOOL_PATH left to its default, in the shared emptyDir', () => {
        expect(brokenSpool((_p, s) => delete s.SPOOL_PATH)).toMatch(
          /is not below the size of the emptyDir shared \(sizeLimit 16Mi\), 16777216 bytes \(16 MiB\), where SPOOL_PATH is: the kubelet evicts a pod whose emptyDir grows past its sizeLimit, and the spool is lost with the pod/,
        );
      });

      it('an emptyDir without sizeLimit, in memory, or a volume of another kind', () => {
        const onShared = (change: (v: Volume) => void) =>
          brokenSpool((p, s) => {
            delete s.SPOOL_PATH;
            change(p.spec.volumes!.find((v) => v.name === 'shared')!);
          });
        expect(onShared((v) => delete v.emptyDir!.sizeLimit)).toMatch(/SPOOL_PATH \/shared\/spool: the emptyDir shared has no sizeLimit/);
        expect(onShared((v) => (v.emptyDir!.medium = 'Memory'))).toMatch(/the emptyDir shared is in memory \(medium: Memory\)/);
        expect(
          onShared((v) => {
            delete v.emptyDir;
            v.hostPath = { path: '/data' };
          }),
        ).toMatch(/the volume shared is hostPath: the spool needs an emptyDir with a sizeLimit or a PersistentVolumeClaim/);
      });

      it("in every example: spool mode in the smee client pod, on the base component's 64Mi shared volume", () => {
        const smeeDir = join(K8S, 'examples/smee-client-pod');
        const spoolIn = (change: (pod: PodTemplate, settings: Record<string, string>, objects: K8sObject[]) => void) => {
          const objects = structuredClone(build(smeeDir));
          const [pod] = podTemplates(objects, smeeDir);
          const settings = (objects.find((o) => o.kind === 'ConfigMap') as K8sObject & { data: Record<string, string> }).data;
          settings.RELAY_MODE = 'spool';
          change(pod, settings, objects);
          return sidecarProblems(pod, configMaps(objects)).join('\n');
        };
        const text = spoolIn(() => undefined);
        expect(text).toMatch(/RELAY_MODE=spool without SPOOL_MAX_BYTES/);
        expect(text).toMatch(
          /SPOOL_MAX_BYTES 1073741824 \(1 GiB\) is not below the size of the emptyDir shared \(sizeLimit 64Mi\), 67108864 bytes \(64 MiB\).*the kubelet evicts/,
        );
        expect(spoolIn((_p, s) => (s.SPOOL_MAX_BYTES = '33554432'))).toBe(''); // 32 MiB of 64Mi
        expect(spoolIn((_p, s) => (s.SPOOL_MAX_BYTES = '50000000'))).toMatch(
          /leaves 16\.32 MiB of the emptyDir shared \(sizeLimit 64Mi\).*keep at least 32 MiB/,
        );

        // A Deployment whose spool is on a PersistentVolumeClaim of its own: the claim must be in the build.
        const onClaim = (claim: K8sObject | null, readOnly = false) =>
          spoolIn((p, s, objects) => {
            s.SPOOL_PATH = '/spool';
            s.SPOOL_MAX_BYTES = '800000000';
            const sc = allContainers(p.spec).find(isSidecar)!;
            sc.volumeMounts!.push({ name: 'spool', mountPath: '/spool' });
            p.spec.volumes!.push({ name: 'spool', persistentVolumeClaim: { claimName: 'webhook-spool', readOnly } });
            if (claim) objects.push(claim);
          });
        const claim = (storage: string): K8sObject => ({
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: { name: 'webhook-spool' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage } } },
        });
        expect(onClaim(claim('1Gi'))).toBe('');
        expect(onClaim(claim('800M'))).toMatch(
          /SPOOL_MAX_BYTES 800000000 \(762\.94 MiB\) is not below the size of the PersistentVolumeClaim webhook-spool \(requests 800M\)/,
        );
        expect(onClaim(null)).toMatch(/the PersistentVolumeClaim webhook-spool of volume spool is not part of the build/);
        expect(onClaim(claim('1Gi'), true)).toMatch(/the volume spool \(PersistentVolumeClaim webhook-spool\) is readOnly/);
      });
    });

    it('an object the Kubernetes schema rejects', () => {
      const { objects } = broken((p) => ((sidecarOf(p).ports![0] as { containerPort: unknown }).containerPort = '8080'));
      expect(schemaProblems(objects).join('\n')).toMatch(/containerPort must be integer/);
    });
  });
});
