import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { useState } from 'react';
import { describe, expect, it } from 'vitest';
import { CropBox, clampCrop, cropAfterKey, scaleCrop } from '@/features/identify/components/crop-box';
import { CropStep } from '@/features/identify/components/crop-step';
import { WHOLE_PHOTO, isWholePhoto, type CropRect } from '@/lib/downscale-image';
import type { PhotoView } from '@/lib/identification';

const photo = new Blob([new Uint8Array([0xff, 0xd8, 0xff])], { type: 'image/jpeg' });

function Harness({ start }: { start: CropRect }) {
  const [crop, setCrop] = useState(start);
  return <CropBox photo={photo} value={crop} onChange={setCrop} />;
}

const cropOf = () => screen.getByTestId('crop-box').getAttribute('data-crop')!.split(',').map(Number);

describe('the crop box', () => {
  it('is the whole photo by default, says so in words, and is reached with Tab', async () => {
    const user = userEvent.setup();
    render(<CropStep photo={photo} view={null} onUse={() => undefined} onCancel={() => undefined} />);
    await user.tab();
    const box = screen.getByRole('button', { name: 'Crop box' });
    expect(box).toHaveFocus();
    expect(box).toHaveAttribute('aria-roledescription', 'Crop box');
    expect(box).toHaveAccessibleDescription(/arrow keys move the box/i);
    expect(box).toHaveAccessibleDescription(/100% wide and 100% high, 0% from the left and 0% from the top/);
    expect(cropOf()).toEqual([0, 0, 1, 1]);
    expect(screen.getByRole('button', { name: 'Use the whole photo' })).toBeDisabled();
  });

  it('arrow keys move it, Shift + arrows resize it, + and - scale it, inside the photo', async () => {
    const user = userEvent.setup();
    render(<Harness start={{ x: 0.2, y: 0.2, width: 0.5, height: 0.5 }} />);
    screen.getByRole('button', { name: 'Crop box' }).focus();
    await user.keyboard('{ArrowRight}{ArrowRight}{ArrowDown}');
    expect(cropOf()).toEqual([0.24, 0.22, 0.5, 0.5]);
    await user.keyboard('{Shift>}{ArrowLeft}{ArrowUp}{ArrowUp}{/Shift}');
    expect(cropOf()).toEqual([0.24, 0.22, 0.48, 0.46]);
    await user.keyboard('+');
    const [x, y, width, height] = cropOf();
    expect(width).toBeCloseTo(0.528, 4);
    expect(height).toBeCloseTo(0.506, 4);
    // Scaled about its centre.
    expect(x! + width! / 2).toBeCloseTo(0.24 + 0.24, 4);
    expect(y! + height! / 2).toBeCloseTo(0.22 + 0.23, 4);
    expect(screen.getByTestId('crop-status')).toHaveTextContent('Crop: 53% wide and 51% high');
    // Never out of the photo.
    for (let i = 0; i < 40; i += 1) await user.keyboard('{ArrowRight}');
    const [left, , w] = cropOf();
    expect(left! + w!).toBeCloseTo(1, 6);
    await user.keyboard('{Home}');
    expect(cropOf()).toEqual([0, 0, 1, 1]);
  });

  it('the framed crop and the view asked for go to "Use this photo"; "Use the whole photo" resets', async () => {
    const user = userEvent.setup();
    const used: [CropRect, PhotoView | null][] = [];
    render(<CropStep photo={photo} view="underside" onUse={(crop, view) => used.push([crop, view])} onCancel={() => undefined} />);
    expect(screen.getByLabelText('What does this photo show? (optional)')).toHaveValue('underside');
    screen.getByRole('button', { name: 'Crop box' }).focus();
    await user.keyboard('-');
    await user.click(screen.getByRole('button', { name: 'Use this photo' }));
    expect(isWholePhoto(used[0]![0])).toBe(false);
    expect(used[0]![1]).toBe('underside');
    await user.click(screen.getByRole('button', { name: 'Use the whole photo' }));
    await user.selectOptions(screen.getByLabelText('What does this photo show? (optional)'), 'stem_base');
    await user.click(screen.getByRole('button', { name: 'Use this photo' }));
    expect(used[1]).toEqual([WHOLE_PHOTO, 'stem_base']);
  });
});

describe('crop geometry', () => {
  it('keeps a crop inside the photo and at least 10% on a side', () => {
    expect(clampCrop({ x: 0.95, y: -0.2, width: 0.02, height: 1.4 })).toEqual({ x: 0.9, y: 0, width: 0.1, height: 1 });
    expect(scaleCrop(WHOLE_PHOTO, 2)).toEqual(WHOLE_PHOTO);
    expect(scaleCrop(WHOLE_PHOTO, 0.5)).toEqual({ x: 0.25, y: 0.25, width: 0.5, height: 0.5 });
    expect(cropAfterKey(WHOLE_PHOTO, 'a', false)).toBeNull();
  });
});
