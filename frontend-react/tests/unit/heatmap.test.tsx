import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { describe, expect, it, vi } from 'vitest';
import { IdentificationResult } from '@/features/identify/components/identification-result';
import { identification } from './fixtures';
import { server } from './msw-server';

const PNG_SIGNATURE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

describe('heat map toggle', () => {
  it('asks /explain for the top species on demand, shows the overlay, and hides it again', async () => {
    // jsdom has no object URLs; the browser gives a blob: URL for the PNG.
    const createObjectURL = vi.fn(() => 'blob:heatmap');
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL, revokeObjectURL: vi.fn() }));
    const requested: string[] = [];
    server.use(
      http.post('*/explain', ({ request }) => {
        requested.push(new URL(request.url).searchParams.get('species') ?? '');
        return new HttpResponse(PNG_SIGNATURE, { headers: { 'Content-Type': 'image/png' } });
      }),
    );
    const user = userEvent.setup();
    const photo = new Blob([new Uint8Array([1, 2, 3])], { type: 'image/jpeg' });
    render(<IdentificationResult result={identification('dangerous')} photo={photo} isOnline />);

    const toggle = screen.getByRole('button', { name: 'Show where the model looked' });
    expect(toggle).toHaveAttribute('aria-expanded', 'false');
    await user.click(toggle);
    const image = await screen.findByRole('img', { name: /heat map over your photo/i });
    expect(image).toHaveAttribute('src', 'blob:heatmap');
    expect(image).toHaveAccessibleName(/Fly agaric prediction/);
    expect(requested).toEqual(['amanita_muscaria']);
    expect(screen.getByRole('button', { name: 'Hide heat map' })).toHaveAttribute('aria-expanded', 'true');

    await user.click(screen.getByRole('button', { name: 'Hide heat map' }));
    expect(screen.queryByRole('img', { name: /heat map/i })).not.toBeInTheDocument();
    // Shown again from memory, without a second request.
    await user.click(screen.getByRole('button', { name: 'Show where the model looked' }));
    expect(await screen.findByRole('img', { name: /heat map/i })).toBeInTheDocument();
    expect(requested).toHaveLength(1);
    vi.unstubAllGlobals();
  });

  it('is disabled offline and says why', () => {
    const photo = new Blob([new Uint8Array([1])], { type: 'image/jpeg' });
    render(<IdentificationResult result={identification('edible')} photo={photo} isOnline={false} />);
    expect(screen.getByRole('button', { name: 'Show where the model looked' })).toBeDisabled();
    expect(screen.getByText('The heat map needs a connection.')).toBeInTheDocument();
  });
});
