import { act, render, renderHook, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { App } from '@/app/app';
import { useOfflineQueue } from '@/features/offline/hooks/use-offline-queue';
import { enqueuePhoto, flushQueue, listQueue } from '@/features/offline/api/offline-queue';
import { identification, photoFile } from './fixtures';
import { server } from './msw-server';

function setOnline(online: boolean) {
  vi.spyOn(navigator, 'onLine', 'get').mockReturnValue(online);
  // The event updates React state (useSyncExternalStore): inside act, as a test must.
  act(() => {
    window.dispatchEvent(new Event(online ? 'online' : 'offline'));
  });
}

afterEach(() => vi.restoreAllMocks());

describe('offline', () => {
  it('says plainly that the app is offline, queues the photo, and identifies it when back online', async () => {
    let predictCalls = 0;
    server.use(
      http.post('*/predict', () => {
        predictCalls += 1;
        return HttpResponse.json(identification('dangerous'));
      }),
    );
    vi.spyOn(navigator, 'onLine', 'get').mockReturnValue(false);
    const user = userEvent.setup();
    render(<App />);
    expect(screen.getByTestId('offline-banner')).toHaveTextContent('You are offline.');

    await user.upload(screen.getByLabelText('Choose from gallery'), photoFile());
    await user.click(await screen.findByRole('button', { name: 'Use this photo' }));
    expect(await screen.findByText(/your photo is saved and will be identified/i)).toBeInTheDocument();
    expect(await screen.findByText('1 photo is waiting to be identified.')).toBeInTheDocument();
    expect(predictCalls).toBe(0);

    setOnline(true);
    expect(await screen.findByText('A saved photo was identified. See History.')).toBeInTheDocument();
    expect(screen.queryByTestId('offline-banner')).not.toBeInTheDocument();
    expect(predictCalls).toBe(1);
    await user.click(screen.getByRole('button', { name: 'History' }));
    const list = await screen.findByTestId('history-list');
    expect(within(list).getAllByRole('listitem')).toHaveLength(1);
    expect(list).toHaveTextContent('DANGEROUS');
  });
});

describe('offline queue', () => {
  it('sends oldest first and stops at the first photo that still cannot be sent', async () => {
    await enqueuePhoto(new Blob(['a'], { type: 'image/jpeg' }), 'a.jpg');
    await enqueuePhoto(new Blob(['b'], { type: 'image/jpeg' }), 'b.jpg');
    await enqueuePhoto(new Blob(['c'], { type: 'image/jpeg' }), 'c.jpg');
    const seen: string[] = [];
    const sent = await flushQueue(async (item) => {
      seen.push(item.fileName);
      return item.fileName !== 'b.jpg';
    });
    expect(sent).toBe(1);
    expect(seen).toEqual(['a.jpg', 'b.jpg']);
    const left = await listQueue();
    expect(left.map((item) => item.fileName)).toEqual(['b.jpg', 'c.jpg']);
    expect(left[0]?.photo.size).toBe(1);
    expect(left[0]?.photo.type).toBe('image/jpeg');
  });
});

describe('useOfflineQueue', () => {
  it('retries while online until the server answers, without waiting for an online event', async () => {
    let attempts = 0;
    const send = async () => {
      attempts += 1;
      return attempts >= 3;
    };
    const { result } = renderHook(() => useOfflineQueue({ isOnline: true, send, retryMs: 30 }));
    await act(() => result.current.enqueue(new Blob(['x'], { type: 'image/jpeg' }), 'x.jpg'));
    await waitFor(() => expect(result.current.count).toBe(0));
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(result.current.lastFlushed).toBe(1);
  });
});
