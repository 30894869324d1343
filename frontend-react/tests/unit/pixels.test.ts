// The phone's port of Pillow's bilinear resize against Pillow itself
// (packages/mushroom-common/tests/test_resize_golden.py): the same pixels, exactly.
import { describe, expect, test } from 'vitest';
import { resizeBilinear } from '@/features/identify/on-device/pixels';
import golden from './golden/resize-cases.json';

type ResizeCase = { width: number; height: number; out_width: number; out_height: number; rgba: string; rgb: string };

const { cases } = golden as { cases: ResizeCase[] };
const bytes = (base64: string) => Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));

describe('resize to the model input, as the server does it', () => {
  test.each(cases.map((c) => [`${c.width}x${c.height} -> ${c.out_width}x${c.out_height}`, c] as const))('%s', (_name, golden) => {
    const got = resizeBilinear(bytes(golden.rgba), golden.width, golden.height, golden.out_width, golden.out_height);
    expect(got.length).toBe(golden.out_width * golden.out_height * 3);
    const expected = bytes(golden.rgb);
    const differing = got.reduce((count, value, index) => count + (value === expected[index] ? 0 : 1), 0);
    expect(differing).toBe(0);
  });
});
