// Workgroup grids. Flat grids fold into 2-D past the per-dimension limit; the
// kernels rebuild the flat index as (wid.y * nw.x + wid.x) * WG + lid.x.

export function flatGrid(count: number, workgroupSize: number, maxPerDim = 65535): [number, number] {
  const groups = Math.ceil(count / workgroupSize);
  if (groups <= maxPerDim) return [groups, 1];
  const y = Math.ceil(groups / maxPerDim);
  return [Math.ceil(groups / y), y];
}

export function ceilDiv(a: number, b: number): number {
  return Math.ceil(a / b);
}
