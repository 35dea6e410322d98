// Tests run the TypeScript sources through ts-jest (transpile only: `tsc --noEmit` type-checks
// separately in `make test`). Integration tests spawn the compiled CLI from dist/, so `make build`
// must run first; the Makefile's test target does both.
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: { '^.+\\.ts$': ['ts-jest', { diagnostics: false }] },
  testTimeout: 120000,
  maxWorkers: 2,
};
