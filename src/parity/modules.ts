// Registers every module kind this build can run in parity cases.
export {};
