/**
 * deploy/k8s: every manifest a kustomization lists, and what `kustomize build` makes of each
 * kustomization, validates with kubeconform -strict against Kubernetes' own schemas (both tools and
 * the schemas provisioned offline by scripts/provision-kubeconform.sh), every manifest
 * in a kustomization's folder is listed, and the settings that make the deployment work as the
 * README says hold (probes, scrape annotations, secrets, graceful shutdown, the migration Job).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { DRAINED_START_TO_CLOSE_MS } from '../../src/workflows/activity-timeouts';

const root = path.resolve(import.meta.dirname, '../..');
const k8s = path.join(root, 'deploy/k8s');
const tools = path.join(root, '.tools');

interface Kustomization {
  dir: string;
  resources: string[];
  images: Array<{ name: string; newName?: string; newTag?: string }>;
}

const kustomizations: Kustomization[] = readdirSync(k8s, { recursive: true, encoding: 'utf8' })
  .filter((f) => path.basename(f) === 'kustomization.yaml')
  .map((f) => {
    const doc = parse(readFileSync(path.join(k8s, f), 'utf8')) as Omit<Kustomization, 'dir'>;
    return { dir: path.join(k8s, path.dirname(f)), resources: doc.resources ?? [], images: doc.images ?? [] };
  });
const manifestFiles = kustomizations.flatMap((k) => k.resources.map((r) => path.join(k.dir, r)));

// The manifests as plain objects; each test reads the few fields it checks.
type Manifest = { kind: string; metadata: { name: string }; spec: any; data?: Record<string, string> };
const manifests: Manifest[] = manifestFiles.flatMap((f) => parseAllDocuments(readFileSync(f, 'utf8')).map((d) => d.toJS() as Manifest));
const find = (kind: string, name: string) =>
  manifests.find((m) => m.kind === kind && m.metadata.name === name) ?? assert.fail(`deploy/k8s has no ${kind} ${name}`);
const container = (m: Manifest) => m.spec.template.spec.containers[0];
const envValue = (m: Manifest, name: string) => container(m).env?.find((e: any) => e.name === name);

function kubeconform(files: string[]) {
  const bin = path.join(tools, 'bin/kubeconform');
  assert.ok(existsSync(bin), `${bin} is missing: run scripts/provision-kubeconform.sh (npm test runs it)`);
  const version = readFileSync(path.join(tools, 'k8s-schemas.version'), 'utf8').trim();
  const location = path.join(
    tools,
    'k8s-schemas',
    '{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json',
  );
  // No -ignore-missing-schemas: a kind without a schema is an error, not a skip.
  return spawnSync(bin, ['-strict', '-summary', '-kubernetes-version', version, '-schema-location', location, ...files], {
    encoding: 'utf8',
  });
}

describe('deploy/k8s', () => {
  it('lists every manifest of its folders in their kustomization.yaml', () => {
    for (const k of kustomizations) {
      const files = readdirSync(k.dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
      assert.deepEqual([...k.resources].sort(), files.sort(), `${path.relative(root, k.dir)}/kustomization.yaml resources`);
    }
    const images = kustomizations.map((k) => JSON.stringify(k.images));
    assert.equal(new Set(images).size, 1, 'the migration Job runs the image the API and the worker run');
  });

  it('validates with kubeconform -strict against the Kubernetes schemas', () => {
    const result = kubeconform(manifestFiles);
    console.log(result.stdout.trim());
    assert.equal(result.status, 0, `kubeconform:\n${result.stdout}${result.stderr}`);
    assert.match(result.stdout, new RegExp(`Valid: ${manifests.length}, Invalid: 0, Errors: 0, Skipped: 0`));
  });

  it('validates what kustomize builds of each kustomization, the image it sets included', () => {
    const bin = path.join(tools, 'bin/kustomize');
    assert.ok(existsSync(bin), `${bin} is missing: run scripts/provision-kubeconform.sh (npm test runs it)`);
    const dir = mkdtempSync(path.join(tmpdir(), 'meterflow-kustomize-'));
    try {
      for (const k of kustomizations) {
        const name = path.relative(root, k.dir);
        const built = spawnSync(bin, ['build', k.dir], { encoding: 'utf8' });
        assert.equal(built.status, 0, `kustomize build ${name}:\n${built.stderr}`);
        const file = path.join(dir, `${name.replaceAll('/', '-')}.yaml`);
        writeFileSync(file, built.stdout);
        const result = kubeconform([file]);
        assert.equal(result.status, 0, `kubeconform of kustomize build ${name}:\n${result.stdout}${result.stderr}`);
        const count = k.resources.flatMap((r) => parseAllDocuments(readFileSync(path.join(k.dir, r), 'utf8'))).length;
        assert.match(result.stdout, new RegExp(`Valid: ${count}, Invalid: 0, Errors: 0, Skipped: 0`), name);
        const images = parseAllDocuments(built.stdout)
          .map((d) => d.toJS() as Manifest)
          .filter((m) => m.spec?.template?.spec?.containers)
          .map((m) => container(m).image as string);
        const { newName, newTag } = k.images[0]!;
        assert.ok(images.length > 0 && images.every((i) => i === `${newName}:${newTag}`), `${name}: images ${images.join(', ')}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('and kubeconform would catch a field Kubernetes does not know', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'meterflow-k8s-'));
    try {
      const broken = path.join(dir, 'broken.yaml');
      const deployment = readFileSync(path.join(k8s, 'api-deployment.yaml'), 'utf8');
      writeFileSync(broken, deployment.replace('terminationGracePeriodSeconds:', 'terminationGracePeriod:'));
      const result = kubeconform([broken]);
      assert.equal(result.status, 1, result.stdout);
      assert.match(result.stdout, /additional properties 'terminationGracePeriod' not allowed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('probes the API on /readyz and /healthz, scrapes /metrics, and scales it on CPU', () => {
    const api = find('Deployment', 'meterflow-api');
    const c = container(api);
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    const annotations = api.spec.template.metadata.annotations;
    assert.equal(annotations['prometheus.io/scrape'], 'true');
    assert.equal(annotations['prometheus.io/path'], '/metrics');
    assert.equal(Number(annotations['prometheus.io/port']), c.ports[0].containerPort);
    const hpa = find('HorizontalPodAutoscaler', 'meterflow-api');
    assert.deepEqual(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: 'meterflow-api' });
    assert.equal(hpa.spec.metrics[0].resource.name, 'cpu');
    assert.ok(c.resources.requests.cpu, 'CPU utilisation is measured against the request');
    assert.deepEqual(find('Service', 'meterflow-api').spec.selector, api.spec.selector.matchLabels);
  });

  it('gives the worker longer to stop than it gives its in-flight activities, and them their startToClose', () => {
    const worker = find('Deployment', 'meterflow-worker');
    const grace = Number(envValue(worker, 'WORKER_SHUTDOWN_GRACE_SECONDS')?.value);
    assert.ok(
      grace * 1000 >= DRAINED_START_TO_CLOSE_MS,
      `WORKER_SHUTDOWN_GRACE_SECONDS (${grace}) must cover the longest startToClose that drains (${DRAINED_START_TO_CLOSE_MS / 1000} s)`,
    );
    assert.ok(worker.spec.template.spec.terminationGracePeriodSeconds > grace);
  });

  it("gives Temporal's Helm chart a PostgreSQL of the user's, its password from a Secret", () => {
    const values = parse(readFileSync(path.join(root, 'deploy/temporal/values.yaml'), 'utf8')) as any;
    const persistence = values.server.config.persistence;
    assert.deepEqual([persistence.defaultStore, persistence.visibilityStore], ['default', 'visibility']);
    assert.ok(Number.isInteger(persistence.numHistoryShards), 'numHistoryShards is chosen at install');
    const databases = { default: 'temporal', visibility: 'temporal_visibility' };
    for (const [store, database] of Object.entries(databases)) {
      const sql = persistence.datastores[store].sql;
      assert.equal(sql.pluginName, 'postgres12', store);
      assert.equal(sql.databaseName, database, store);
      assert.equal(sql.existingSecret, 'temporal-postgres', `${store}: the password comes from the Secret the README creates`);
      assert.equal(sql.password, undefined, `${store}: no password in the repository`);
    }
    // The release and namespace the README installs are where the app looks for Temporal.
    const [host] = find('ConfigMap', 'meterflow-config').data!.TEMPORAL_ADDRESS!.split(':');
    assert.equal(host, 'temporal-frontend.temporal.svc.cluster.local');
  });

  it('takes the secrets from the Secret, runs the entry points that exist, and migrates in a Job', () => {
    const api = find('Deployment', 'meterflow-api');
    const worker = find('Deployment', 'meterflow-worker');
    const job = find('Job', 'meterflow-migrate');
    for (const m of [api, worker, job]) {
      // Only the API verifies API keys: the pepper goes nowhere else.
      for (const secret of m === api ? ['DATABASE_URL', 'API_KEY_PEPPERS'] : ['DATABASE_URL']) {
        assert.equal(envValue(m, secret)?.valueFrom?.secretKeyRef?.name, 'meterflow-secrets', `${m.metadata.name}: ${secret}`);
      }
      if (m !== api) assert.equal(envValue(m, 'API_KEY_PEPPERS'), undefined, `${m.metadata.name} gets no pepper`);
      const entry = (container(m).command as string[]).at(-1)!;
      assert.ok(existsSync(path.join(root, entry)), `${m.metadata.name} runs ${entry}`);
    }
    assert.equal((container(job).command as string[]).at(-1), 'src/main/migrate.ts');
    const config = find('ConfigMap', 'meterflow-config');
    for (const secret of ['DATABASE_URL', 'API_KEY_PEPPERS'])
      assert.ok(!(secret in (config.data ?? {})), `${secret} belongs in the Secret`);
  });
});
