// A device loss or an out-of-memory during a run ends it with a GpuError that
// says so, never a bare DOMException or a hang. Each test opens its own device.
import { describe, expect, it } from 'vitest';
import { GpuError } from '../../src/errors.ts';
import { Gpu } from '../../src/gpu/gpu.ts';
import { affine } from '../../src/ops/elementwise.ts';
import { Tensor } from '../../src/tensor/tensor.ts';

describe('GPU failures during a run', () => {
  it('a device lost under a readback ends it with a GpuError naming the loss', async () => {
    const gpu = await Gpu.open();
    const y = affine(Tensor.from(gpu, new Float32Array(1024).fill(1), [1024]), 2, 0);
    const reading = y.read();
    gpu.device.destroy();
    await expect(reading).rejects.toThrow(GpuError);
    await expect(reading).rejects.toThrow(/the GPU device was lost \(destroyed: /);
    // Anything after the loss says the same, before touching the device.
    expect(() => Tensor.from(gpu, new Float32Array(4), [4])).toThrow(/the GPU device was lost/);
    await expect(gpu.sync()).rejects.toThrow(/the GPU device was lost/);
  });

  it('an out-of-memory error reported by the device ends it at the next sync, with what to change', async () => {
    const gpu = await Gpu.open();
    try {
      const g = globalThis as unknown as { GPUOutOfMemoryError: new (m: string) => GPUError; GPUUncapturedErrorEvent: new (t: string, i: { error: GPUError }) => Event };
      // What Dawn raises when an allocation fails: an uncaptured GPUOutOfMemoryError.
      gpu.device.dispatchEvent(new g.GPUUncapturedErrorEvent('uncapturederror', { error: new g.GPUOutOfMemoryError('Allocation of 8 GiB failed') }));
      await expect(gpu.sync()).rejects.toThrow(/the GPU reported 1 error\(s\) \(the run needs less memory: a smaller --size, a lower --fps or --dtype f16\):\nout of GPU memory: Allocation of 8 GiB failed/);
      // A buffer past the adapter's limits is reported as the validation error it is.
      gpu.device.createBuffer({ size: 2 ** 40, usage: 0x80 });
      await expect(gpu.sync()).rejects.toThrow(GpuError);
    } finally {
      gpu.destroy();
    }
  });
});
