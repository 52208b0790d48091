// Kernel variants the conv2d and conv3d tests run every case (or a few) on.
import type { Gpu } from '../../src/gpu/gpu.ts';
import type { ConvVariant } from '../../src/ops/conv2d.ts';
import { fixedSubgroupSize, matmulAdapterInfo } from '../../src/ops/matmul.ts';

// The register tile, the workgroup-memory variant and, where the adapter
// has fixed-size subgroups, the subgroup kernel on every case; trimmed tiles
// (register: odd channel quads, 3 pixel quads, one channel per update, 8
// lanes; subgroup: 3 row groups, one channel quad per lane, 2 subgroups per
// workgroup) on a few, since every variant is a pipeline that lavapipe's
// LLVM takes seconds to compile.
export function convVariants(gpu: Gpu): [string, Partial<ConvVariant>][] {
  const sg = fixedSubgroupSize(matmulAdapterInfo(gpu));
  const list: [string, Partial<ConvVariant>][] = [
    ['register tile', { SUBGROUP: false }],
    ['staged weights', { SUBGROUP: false, STAGE: true, NQ: 2, PV: 1, WG: 16, CC: 4 }],
  ];
  return sg === null ? list : [...list, ['subgroup', { SUBGROUP: true }]];
}
export function trimmedConvVariants(gpu: Gpu, f16: boolean): [string, Partial<ConvVariant>][] {
  const sg = fixedSubgroupSize(matmulAdapterInfo(gpu));
  const list: [string, Partial<ConvVariant>][] = [['trimmed tile', { SUBGROUP: false, NQ: 1, PV: 3, U: 1, WG: 8 }]];
  return sg === null || f16 ? list : [...list, ['trimmed subgroup', { SUBGROUP: true, RG: 3, CG: 1, WG: 2 * sg }]];
}
