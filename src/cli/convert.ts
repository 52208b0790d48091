// `kandinsky convert`: any checkpoint → safetensors, streamed tensor by tensor.
import { UsageError } from '../errors.ts';
import type { StoredDType } from '../io/checkpoint.ts';
import { decodeF32, isFloat } from '../io/decode.ts';
import { openCheckpointFile } from '../io/open.ts';
import { type TensorToWrite, writeSafetensorsFile } from '../io/safetensors.ts';
import { f32ArrayToF16 } from '../tensor/half.ts';

export async function convertCommand(input: string, output: string, dtype?: 'f16' | 'f32'): Promise<number> {
  if (!output.endsWith('.safetensors')) throw new UsageError(`convert: output '${output}' must end in .safetensors`);
  const ckpt = await openCheckpointFile(input);
  const target: StoredDType | undefined = dtype === 'f16' ? 'F16' : dtype === 'f32' ? 'F32' : undefined;
  const t0 = performance.now();
  try {
    const tensors: TensorToWrite[] = ckpt.keys().map((key) => {
      const e = ckpt.get(key)!;
      const to = target && isFloat(e.dtype) ? target : e.dtype;
      return {
        name: key,
        dtype: to,
        shape: e.shape,
        data: async () => {
          const bytes = await e.read();
          if (to === e.dtype) return bytes;
          const f32 = decodeF32(bytes, e.dtype, `${input}: '${key}'`);
          const out = to === 'F16' ? f32ArrayToF16(f32) : f32;
          return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
        },
      };
    });
    await writeSafetensorsFile(output, tensors, { format: 'pt', converted_by: 'kandinsky-webgpu' });
    const secs = ((performance.now() - t0) / 1000).toFixed(1);
    process.stdout.write(`wrote ${tensors.length} tensors to ${output} in ${secs} s\n`);
  } finally {
    await ckpt.close();
  }
  return 0;
}
