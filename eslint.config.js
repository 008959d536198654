// ESLint flat config: typescript-eslint recommended + the one architectural rule we care about:
// the library (src/) never imports the BullMQ wiring.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'var/**', 'coverage/**', 'dist/**', '**/*.py'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // src/cli/ is the composition root (it starts workers, the scheduler and the dashboard), so it is
    // the one part of src/ allowed to import the wiring.
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/queues/**', '**/processors/**', '**/scheduler/**', '**/dashboards/**', 'bullmq'],
              message: 'src/ is the library: it never imports the BullMQ wiring.',
            },
          ],
        },
      ],
    },
  },
);
