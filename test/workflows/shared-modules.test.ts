import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode } from '@temporalio/worker';
import { sharedWorkflowModules, workflowBundleOptions } from '../../src/temporal/worker';

/*
 * The workflow sandbox shares the preloaded domain modules (and what they import) between all
 * workflows of a worker thread, to keep a cached workflow small. Sharing is only sound for
 * modules without module-level state, and only saves memory when it covers what the workflows import.
 */
const root = fileURLToPath(new URL('../../', import.meta.url));
const workflowsDir = join(root, 'src/workflows');

test('the shared modules are exactly the domain modules the workflows import as values', () => {
  const imported = new Set<string>();
  for (const file of readdirSync(workflowsDir).filter((f) => f.endsWith('.ts'))) {
    const source = readFileSync(join(workflowsDir, file), 'utf8');
    for (const [, typeOnly, name] of source.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'\.\.\/domain\/([\w/-]+)';/gms)) {
      if (!typeOnly) imported.add(name!);
    }
  }
  assert.deepEqual(sharedWorkflowModules.map((path) => basename(path, '.ts')).sort(), [...imported].sort());
});

test('no module of the project in the workflow bundle, other than the workflows, keeps module-level variables', async () => {
  const bundle = await bundleWorkflowCode({ ...workflowBundleOptions, logger: silent });
  const modules = new Set([...bundle.code.matchAll(/"\.\/(src\/[^"]+\.ts)"/g)].map((m) => m[1]!));
  const shared = [...modules].filter((m) => !m.startsWith('src/workflows/'));
  assert.ok(shared.includes('src/domain/money.ts'), `found ${shared.join(', ')}`);
  for (const module of shared) {
    const stateful = readFileSync(join(root, module), 'utf8').match(/^(export )?(let|var) .*$/gm);
    assert.equal(stateful, null, `${module} keeps module-level state, which sharing would leak between workflows`);
  }
});

const quiet = () => undefined;
const silent = { log: quiet, trace: quiet, debug: quiet, info: quiet, warn: quiet, error: quiet };
