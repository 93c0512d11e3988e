// Lint: typescript-eslint's recommended rules with type information, so the rules that
// catch real bugs in a server (a promise nobody awaits, a promise passed where a callback's
// result is ignored) see the types. Formatting is Prettier's job, not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'scripts/**', '**/*.js', '**/*.mjs', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Loaded on first use, on purpose: each is measured start-up time or RSS that a sidecar
      // not using the feature never pays (docs/performance.md). Everything else is imported.
      '@typescript-eslint/no-require-imports': ['error', { allow: ['^undici$', '^yaml$', '^axios$', '^pprof-format$', '^\\./sidecar$', '^node:'] }],
    },
  },
  {
    // Tests read answers as JSON (supertest's res.body, JSON.parse of a log line or a file)
    // and check them with expect(); those values are `any` by nature, and typing each one
    // would restate the product's shapes a second time. Only the any-tracking rules are off
    // here; the promise rules and the rest stay on.
    files: ['test/**/*.ts', 'src/**/*.spec.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
);
