#!/usr/bin/env node
// `npx meterflow …`: the admin CLI run from its TypeScript sources through tsx, as `npm run cli` does.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/index.ts');
