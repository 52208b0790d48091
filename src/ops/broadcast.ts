// The one broadcast pattern the kernels support: operand[(i / inner) % size],
// i.e. the operand's non-1 dims form one contiguous run of the output's dims.
import { ShapeError } from '../errors.ts';
import { numel, shapeString } from '../tensor/tensor.ts';

export interface BroadcastIndex {
  inner: number;
  size: number;
}

export function broadcastIndex(op: string, out: readonly number[], operand: readonly number[]): BroadcastIndex {
  if (operand.length > out.length) throw new ShapeError(op, `cannot broadcast ${shapeString(operand)} to ${shapeString(out)}`);
  const padded = [...Array(out.length - operand.length).fill(1), ...operand];
  const n = numel(padded);
  if (n === 1) return { inner: 1, size: 1 };
  let first = -1;
  let last = -1;
  for (let d = 0; d < out.length; d++) {
    if (padded[d] === out[d] && out[d] !== 1) {
      if (first < 0) first = d;
      last = d;
    } else if (padded[d] !== 1) {
      throw new ShapeError(op, `cannot broadcast ${shapeString(operand)} to ${shapeString(out)}`);
    }
  }
  for (let d = first; d <= last; d++) {
    if (padded[d] !== out[d]) throw new ShapeError(op, `broadcast of ${shapeString(operand)} to ${shapeString(out)} is not one contiguous run of dims`);
  }
  return { inner: numel(out.slice(last + 1)), size: n };
}
