// Where each dim-0 row of a tensor lives: tensors larger than one storage
// binding are split along dim 0 into parts (Tensor.parts), which ops bind
// one at a time.
import type { Tensor } from '../tensor/tensor.ts';

/** One part of a tensor and the index of its first row. */
export interface RowPart {
  t: Tensor;
  first: number;
}

/** The parts of t with their first rows, in order (views, in the caller's scope). */
export function rowParts(t: Tensor): RowPart[] {
  let first = 0;
  return t.parts().map((p) => {
    const part = { t: p, first };
    first += p.shape[0];
    return part;
  });
}

/** The part holding row `row`. */
export function partOf(parts: readonly RowPart[], row: number): RowPart {
  return parts.find((p) => row >= p.first && row < p.first + p.t.shape[0])!;
}
