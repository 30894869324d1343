import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PhotoView } from '@/lib/identification';
import { App } from '@/app/app';
import { identification, photoFile } from './fixtures';
import { server } from './msw-server';

type SeenRequest = { files: number; views: string[]; lat: string | null; lon: string | null; month: string | null };

const chanterelle = {
  species: 'cantharellus_cibarius',
  scientific_name: 'Cantharellus cibarius',
  common_names: ['Chanterelle'],
  probability: 0.7,
  edibility: 'choice' as const,
};

/** The API as obs-core answers an observation: the gills are asked for until a photo shows them. */
function observationApi(seen: SeenRequest[]) {
  return http.post('*/predict', async ({ request }) => {
    const form = await request.formData();
    const views = form.getAll('view').map(String);
    const files = form.getAll('file').length;
    seen.push({ files, views, lat: form.get('lat') as string | null, lon: form.get('lon') as string | null, month: form.get('month') as string | null });
    const hasGills = views.includes('underside');
    return HttpResponse.json(
      identification('uncertain', {
        predictions: [chanterelle],
        photos: Array.from({ length: files }, (_, index) => ({
          index,
          view: (views[index] || null) as PhotoView | null,
          top: { ...chanterelle, probability: 0.6 + index / 10 },
        })),
        next_photo: hasGills
          ? null
          : {
              view: 'underside' as const,
              reason: 'Add a photo of the gills/underside: it tells the chanterelle from the false chanterelle.',
              lookalike: 'hygrophoropsis_aurantiaca',
            },
        prior: { applied: false, region: null, month: null },
      }),
    );
  });
}

/** The app, rendered against `observationApi`: what it was sent and the user that drives it. */
function renderWithObservationApi() {
  const seen: SeenRequest[] = [];
  server.use(observationApi(seen));
  const user = userEvent.setup();
  render(<App />);
  return { seen, user };
}

async function addPhoto(user: ReturnType<typeof userEvent.setup>, name: string) {
  await user.upload(await screen.findByLabelText('Choose from gallery'), photoFile(name));
  await user.click(await screen.findByRole('button', { name: 'Use this photo' }));
}

// Five photos through the whole flow: more than Vitest's 5 s default on a busy machine.
const SLOW_FLOW_MS = 30_000;

afterEach(() => vi.restoreAllMocks());

describe('an observation of several photos', () => {
  it('asks for the gills, adds that photo tagged underside, answers once for both; the history keeps and continues it', async () => {
    const { seen, user } = renderWithObservationApi();
    await addPhoto(user, 'cap.jpg');
    const prompt = await screen.findByTestId('next-photo');
    expect(prompt).toHaveTextContent('it tells the chanterelle from the false chanterelle');
    expect(seen).toEqual([{ files: 1, views: [], lat: null, lon: null, month: null }]);

    await user.click(within(prompt).getByRole('button', { name: 'Add a photo of the gills/underside' }));
    expect(screen.getByRole('heading', { name: 'Add a photo of the gills/underside' })).toBeInTheDocument();
    expect(screen.getByText(/gills, pores or teeth under the cap/)).toBeInTheDocument();
    await user.upload(screen.getByLabelText('Choose from gallery'), photoFile('gills.jpg'));
    expect(await screen.findByLabelText('What does this photo show? (optional)')).toHaveValue('underside');
    await user.click(screen.getByRole('button', { name: 'Use this photo' }));

    const panel = await screen.findByTestId('observation-panel');
    expect(within(panel).getByRole('heading')).toHaveTextContent('Your 2 photos, one answer');
    const photos = within(screen.getByTestId('observation-photos')).getAllByRole('listitem');
    expect(photos.map((item) => item.getAttribute('data-view'))).toEqual(['', 'underside']);
    expect(photos[1]).toHaveTextContent('This photo alone: Chanterelle');
    expect(within(photos[1]!).getByRole('img')).toHaveAccessibleName('Photo 2 (the gills/underside)');
    expect(screen.queryByTestId('next-photo')).not.toBeInTheDocument();
    expect(seen[1]).toEqual({ files: 2, views: ['', 'underside'], lat: null, lon: null, month: null });

    // The history keeps the observation: both photos, one answer.
    await user.click(screen.getByRole('button', { name: 'History' }));
    const list = await screen.findByTestId('history-list');
    await waitFor(() => expect(within(list).getAllByRole('listitem')).toHaveLength(2));
    const [newest, first] = within(list).getAllByRole('listitem');
    expect(within(newest!).getByTestId('history-thumbs').children).toHaveLength(2);
    expect(newest).toHaveTextContent('2 photos, one answer');
    expect(first).toHaveTextContent('Asked for a photo of the gills/underside');
    await user.click(within(newest!).getByRole('button'));
    expect(await screen.findByRole('heading', { name: 'Your 2 photos, one answer' })).toBeInTheDocument();

    // The first answer, kept with its question, can go on: the photo it asked for, on the Identify screen.
    await user.click(screen.getByRole('button', { name: 'Back to history' }));
    await user.click(within(within(await screen.findByTestId('history-list')).getAllByRole('listitem')[1]!).getByRole('button'));
    await user.click(within(await screen.findByTestId('next-photo')).getByRole('button', { name: 'Add a photo of the gills/underside' }));
    expect(screen.getByRole('button', { name: 'Identify' })).toHaveAttribute('aria-current', 'page');
    await user.upload(screen.getByLabelText('Choose from gallery'), photoFile('gills-later.jpg'));
    await user.click(await screen.findByRole('button', { name: 'Use this photo' }));
    await waitFor(() => expect(seen).toHaveLength(3));
    expect(seen[2]).toEqual({ files: 2, views: ['', 'underside'], lat: null, lon: null, month: null });
  }, SLOW_FLOW_MS);

  it('takes at most five photos; cancelling the crop of a new photo sends nothing', async () => {
    const { seen, user } = renderWithObservationApi();
    await addPhoto(user, 'p1.jpg');
    for (let count = 2; count <= 5; count += 1) {
      await user.click(await screen.findByRole('button', { name: `Add another photo (${count} of 5)` }));
      await addPhoto(user, `p${count}.jpg`);
      await waitFor(() => expect(seen).toHaveLength(count));
    }
    expect(seen.map((request) => request.files)).toEqual([1, 2, 3, 4, 5]);
    expect(await screen.findByText('This observation has 5 photos, the most it can have.')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: /add another photo/i })).not.toBeInTheDocument();
    expect(screen.queryByRole('button', { name: /add a photo of/i })).not.toBeInTheDocument();

    await user.click(screen.getAllByRole('button', { name: 'New photo' })[0]!);
    await user.upload(screen.getByLabelText('Choose from gallery'), photoFile('again.jpg'));
    await user.click(await screen.findByRole('button', { name: 'Cancel' }));
    expect(screen.getByLabelText('Take a photo')).toBeInTheDocument();
    expect(seen).toHaveLength(5);
  }, SLOW_FLOW_MS);
  it('offline without a model on the phone, the whole observation waits in the queue and goes when back online', async () => {
    const { seen, user } = renderWithObservationApi();
    await addPhoto(user, 'cap.jpg');
    await user.click(within(await screen.findByTestId('next-photo')).getByRole('button', { name: 'Add a photo of the gills/underside' }));
    // The connection drops before the second photo.
    vi.spyOn(navigator, 'onLine', 'get').mockReturnValue(false);
    act(() => {
      window.dispatchEvent(new Event('offline'));
    });
    await addPhoto(user, 'gills.jpg');
    expect(await screen.findByTestId('queued-card')).toBeInTheDocument();
    expect(seen).toHaveLength(1);

    vi.spyOn(navigator, 'onLine', 'get').mockReturnValue(true);
    act(() => {
      window.dispatchEvent(new Event('online'));
    });
    // Both photos, the second tagged with the view asked for, in one request; the answer replaces the card.
    await waitFor(() => expect(seen).toHaveLength(2));
    expect(seen[1]).toEqual({ files: 2, views: ['', 'underside'], lat: null, lon: null, month: null });
    expect(await screen.findByRole('heading', { name: 'Your 2 photos, one answer' })).toBeInTheDocument();
    expect(screen.queryByTestId('queued-card')).not.toBeInTheDocument();
  }, SLOW_FLOW_MS);
});
