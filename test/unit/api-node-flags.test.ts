import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { API_NODE_FLAGS } from '../../src/main/api-node-flags';
import { loadDockerfile } from '../support/compose';

const root = path.resolve(import.meta.dirname, '../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

/** The node flags of a command line: what comes before the first argument that is not a flag. */
function nodeFlags(command: readonly string[]): string[] {
  assert.equal(command[0], 'node', `not a node command: ${command.join(' ')}`);
  const flags: string[] = [];
  for (let i = 1; i < command.length && command[i]!.startsWith('--'); i++) flags.push(command[i]!);
  return flags;
}

// Every way of starting the API runs it with the flags src/main/api-node-flags.ts declares (and the benches measure).
describe('the API process is started with API_NODE_FLAGS everywhere', () => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, { command?: string[] }> };
  const k8s = parse(read('deploy/k8s/api-deployment.yaml')) as {
    spec: { template: { spec: { containers: Array<{ name: string; command: string[] }> } } };
  };
  const starts: Array<[string, string[]]> = [
    ['npm start', scripts.start!.split(' ')],
    ['npm run start:api', scripts['start:api']!.split(' ')],
    ['the Dockerfile CMD', loadDockerfile(path.join(root, 'Dockerfile')).cmd!],
    ['docker-compose.yml api', compose.services.api!.command!],
    ['deploy/k8s api', k8s.spec.template.spec.containers.find((c) => c.name === 'api')!.command],
  ];
  for (const [where, command] of starts) {
    it(where, () => {
      for (const flag of API_NODE_FLAGS) assert.ok(nodeFlags(command).includes(flag), `${where} lacks ${flag}: ${command.join(' ')}`);
    });
  }
});
