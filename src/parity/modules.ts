// Registers every module kind this build can run in parity cases.
import '../diffusion/parity.ts';
