// Parity module 't5_encoder': T5EncoderModel.forward(input_ids,
// attention_mask).last_hidden_state, configured by the case's config.json
// dict. Inputs: input_ids (integer, [B, L]), attention_mask (integer or bool,
// [B, L]; absent = all attended). Output 'out' [B, L, d_model].
import type { Gpu } from '../../gpu/gpu.ts';
import { FormatError } from '../../errors.ts';
import type { WeightDType } from '../../nn/weights.ts';
import type { HostTensor, LoadedCase } from '../../parity/case.ts';
import { type ParityOutput, registerParityModule } from '../../parity/registry.ts';
import { parseT5Config } from './config.ts';
import { loadT5Encoder } from './encoder.ts';

const INPUTS = ['input_ids', 'attention_mask'];
const INT_DTYPES = ['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'];

export async function runT5Case(gpu: Gpu, c: LoadedCase, options: { dtype?: WeightDType } = {}): Promise<Record<string, ParityOutput>> {
  const where = `${c.dir}/case.json`;
  if (c.spec.method !== 'forward') throw new FormatError(where, `module t5_encoder has method "forward", not "${c.spec.method}"`);
  if (Object.keys(c.spec.args).length) throw new FormatError(where, `module t5_encoder takes no args, got ${Object.keys(c.spec.args).join(', ')}`);
  const config = parseT5Config(c.spec.config, where);
  const inputsFile = `${c.dir}/inputs.safetensors`;
  const unknown = [...c.inputs.keys()].filter((k) => !INPUTS.includes(k));
  if (unknown.length) throw new FormatError(inputsFile, `unknown inputs ${unknown.join(', ')} (T5 takes ${INPUTS.join(', ')})`);
  const int2d = (name: string): HostTensor | undefined => {
    const t = c.inputs.get(name);
    if (t && (!INT_DTYPES.includes(t.dtype) || t.shape.length !== 2)) throw new FormatError(inputsFile, `'${name}' must be an integer [B, L] tensor, got ${t.dtype} [${t.shape.join(', ')}]`);
    return t;
  };
  const ids = int2d('input_ids');
  if (!ids) throw new FormatError(inputsFile, "needs 'input_ids'");
  const mask = int2d('attention_mask');
  if (mask && mask.shape.join() !== ids.shape.join()) throw new FormatError(inputsFile, `attention_mask [${mask.shape.join(', ')}] differs from input_ids [${ids.shape.join(', ')}]`);
  const [batch, length] = ids.shape;

  const encoder = await loadT5Encoder(gpu, config, c.weights, { dtype: options.dtype ?? 'f32' });
  try {
    const out = encoder.forward(Int32Array.from(ids.data), mask ? Int32Array.from(mask.data, (m) => (m ? 1 : 0)) : null, batch);
    try {
      return { out: { shape: [batch, length, config.d_model], data: (await out.read()) as Float32Array } };
    } finally {
      out.dispose();
    }
  } finally {
    encoder.dispose();
  }
}

registerParityModule('t5_encoder', (gpu, c) => runT5Case(gpu, c));
