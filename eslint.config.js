// @ts-check
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import { importX } from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** Feature chapters: transport-free services and their stores (README, "Where things live"). */
const features = [
  'customers',
  'meters',
  'metering',
  'keys',
  'entitlements',
  'plans',
  'subscriptions',
  'invoices',
  'credits',
  'payments',
  'webhooks',
  'reconciliations',
  'retention',
  'provider',
  'portal',
  'coupons',
  'taxes',
  'spend',
];
const infrastructure = ['db', 'temporal', 'process', 'clock.ts', 'config.ts', 'logger.ts'];
const src = (names) => names.map((n) => `./src/${n}`);

/**
 * The layering, top to bottom: main and cli compose; api and activities adapt; feature services
 * do the work; infrastructure (db, temporal, child processes, clock, config, logger) carries it; domain is pure.
 * Workflows are deterministic and see only the domain. Each zone forbids importing upwards.
 */
const layers = [
  { target: './src/domain', from: './src', except: ['./domain'], message: 'src/domain is pure: it imports nothing of the app.' },
  {
    target: './src/workflows',
    from: './src',
    except: ['./workflows', './domain'],
    message: 'Workflows are deterministic: they import only the domain (activities are typed in src/workflows).',
  },
  {
    target: src(infrastructure),
    from: src(['api', 'main', 'cli', 'activities', ...features]),
    message: 'Infrastructure sits below the features and the adapters.',
  },
  {
    target: src(infrastructure),
    from: './src/workflows',
    except: ['./activities.ts'],
    message: 'Infrastructure sees of the workflows only the activities a worker must register.',
  },
  {
    target: src(features),
    from: src(['api', 'main', 'cli', 'activities']),
    message: 'Feature services know nothing of HTTP, the CLI, the worker or the wiring.',
  },
  {
    target: './src/activities',
    from: src(['api', 'main', 'cli']),
    message: 'Activities adapt services for the worker; they never import the HTTP layer or the wiring.',
  },
  {
    target: './src/api',
    from: src(['main', 'cli', 'activities']),
    message: 'The HTTP adapter never imports the wiring, the CLI or the activities.',
  },
  { target: './src/cli', from: src(['main']), message: 'The CLI is an adapter beside the API; only src/main composes.' },
];

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', '.data/', 'dist/', 'bin/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['eslint.config.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })] },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after'] }],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': ['error', { zones: layers }],
    },
  },
  {
    files: ['src/workflows/**', 'src/domain/**'],
    rules: {
      'import-x/no-nodejs-modules': 'error',
      'no-restricted-globals': ['error', 'process', 'Buffer', 'setImmediate', 'require'],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', 'pg', 'express', 'pino*'],
              message: 'Not in pure or deterministic code.',
            },
          ],
        },
      ],
    },
  },
  // Tests read untyped JSON bodies; `any` there is the honest type.
  { files: ['test/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  { files: ['**/*.js'], ...tseslint.configs.disableTypeChecked },
  // The customer portal's page script runs in the browser (uPlot comes from its own script tag).
  { files: ['src/portal/assets/**/*.js'], languageOptions: { sourceType: 'script', globals: { ...globals.browser, uPlot: 'readonly' } } },
  prettier,
);
