// Registers every module kind this build can run in parity cases.
import '../diffusion/parity.ts';
import '../models/movq/parity.ts';
import '../models/t5/parity.ts';
import '../models/unet/parity.ts';
