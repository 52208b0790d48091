// Parity module 'movq': config = upstream generator_params (temporal options
// included); method 'decode' (input `quant`) or 'encode' (input `x`). The
// whole model is built and loaded strictly, so a case's weights file must hold
// exactly upstream's keys.
import { FormatError } from '../../errors.ts';
import type { HostTensor, LoadedCase } from '../../parity/case.ts';
import { registerParityModule } from '../../parity/registry.ts';
import { Tensor } from '../../tensor/tensor.ts';
import { parseMoVQConfig } from './config.ts';
import { MoVQ } from './movq.ts';

const INPUTS = { decode: 'quant', encode: 'x' } as const;

function input(c: LoadedCase, name: string): HostTensor {
  const t = c.inputs.get(name);
  if (!t) throw new FormatError(`${c.dir}/inputs.safetensors`, `missing input '${name}'`);
  if (!(t.data instanceof Float32Array)) throw new FormatError(`${c.dir}/inputs.safetensors`, `input '${name}' must be a float tensor, got ${t.dtype}`);
  return t;
}

registerParityModule('movq', async (gpu, c) => {
  const where = `${c.dir}/case.json`;
  const method = c.spec.method;
  if (method !== 'decode' && method !== 'encode') throw new FormatError(where, `module movq has methods "decode" and "encode", not "${method}"`);
  const config = parseMoVQConfig(c.spec.config, `${where} config`);
  const model = new MoVQ(config);
  try {
    await model.load(gpu, c.weights);
    const x = input(c, INPUTS[method]);
    const t = Tensor.from(gpu, x.data as Float32Array, x.shape);
    try {
      const out = method === 'decode' ? model.decode(t) : model.encode(t);
      try {
        return { out: { shape: [...out.shape], data: (await out.read()) as Float32Array } };
      } finally {
        out.dispose();
      }
    } finally {
      t.dispose();
    }
  } finally {
    model.release();
  }
});
