/** Unit specs live next to the code; e2e and integration tests with real peers live in test/. */
const tsJest = ['ts-jest', { tsconfig: 'tsconfig.spec.json' }];
module.exports = {
  testTimeout: 60000,
  reporters: ['default', '<rootDir>/test/support/summary-reporter.js'],
  projects: [
    {
      displayName: 'unit',
      testEnvironment: 'node',
      rootDir: 'src',
      testRegex: '\\.spec\\.ts$',
      transform: { '^.+\\.ts$': tsJest },
    },
    {
      displayName: 'e2e',
      testEnvironment: 'node',
      rootDir: 'test',
      testRegex: '\\.(e2e|int)-spec\\.ts$',
      transform: { '^.+\\.ts$': tsJest },
    },
  ],
};
