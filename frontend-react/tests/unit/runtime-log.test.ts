import { describe, expect, it, vi } from 'vitest';
import { routeRuntimeLog } from '@/features/identify/on-device/runtime';

describe("the on-device runtime's log lines", () => {
  it('INFO lines go to console.debug, warnings to console.warn, the rest stays an error', () => {
    const debug = vi.spyOn(console, 'debug').mockImplementation(() => undefined);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    routeRuntimeLog('INFO: Created TensorFlow Lite XNNPACK delegate for CPU.');
    routeRuntimeLog('I0000 00:00:1733500000.000000   42 model.cc:12] Loaded model');
    routeRuntimeLog('WARNING: Attempting to use a delegate that only supports static-sized tensors');
    routeRuntimeLog('ERROR: Node number 3 (CONV_2D) failed to prepare.');
    expect(debug.mock.calls.map(([line]) => line)).toEqual([
      'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.',
      'I0000 00:00:1733500000.000000   42 model.cc:12] Loaded model',
    ]);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(error.mock.calls).toEqual([['ERROR: Node number 3 (CONV_2D) failed to prepare.']]);
  });
});
