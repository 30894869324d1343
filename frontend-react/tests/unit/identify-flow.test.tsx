import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse, delay } from 'msw';
import { describe, expect, it } from 'vitest';
import { App } from '@/app/app';
import { identification, photoFile } from './fixtures';
import { server } from './msw-server';

async function choosePhoto(file = photoFile()) {
  // applyAccept off: a person can still pick a non-image file on some phones, and the API must say why it fails.
  const user = userEvent.setup({ applyAccept: false });
  render(<App />);
  await user.upload(screen.getByLabelText('Choose from gallery'), file);
  // The whole photo, framed as it is.
  await user.click(await screen.findByRole('button', { name: 'Use this photo' }));
  return user;
}

describe('identifying a photo', () => {
  it('uploads the photo as multipart `file` with top_k and shows the dangerous verdict first', async () => {
    let seen: { topK: string | null; file: Blob | null } = { topK: null, file: null };
    server.use(
      http.post('*/predict', async ({ request }) => {
        const form = await request.formData();
        const file = form.get('file');
        // jsdom's File and the fetch implementation's File are different classes: check the shape.
        seen = { topK: new URL(request.url).searchParams.get('top_k'), file: typeof file === 'string' ? null : file };
        await delay(20);
        return HttpResponse.json(identification('dangerous'));
      }),
    );
    await choosePhoto();
    const banner = await screen.findByRole('alert');
    expect(banner).toHaveAttribute('data-verdict', 'dangerous');
    expect(within(banner).getByRole('heading')).toHaveTextContent('DANGEROUS');
    expect(within(screen.getByTestId('prediction-list')).getAllByRole('listitem')[0]).toHaveTextContent('Amanita muscaria');
    expect(seen.topK).toBe('3');
    expect(seen.file?.type).toBe('image/jpeg');
    expect(seen.file?.size).toBe(8);
  });

  it('shows a progress state while the answer is on its way', async () => {
    server.use(
      http.post('*/predict', async () => {
        await delay(100);
        return HttpResponse.json(identification('edible'));
      }),
    );
    await choosePhoto();
    expect(await screen.findByText('Identifying your mushroom…')).toBeInTheDocument();
    expect(await screen.findByRole('heading', { name: /likely an edible species/i })).toBeInTheDocument();
    expect(screen.queryByText('Identifying your mushroom…')).not.toBeInTheDocument();
  });

  it('keeps the identification in the on-device history', async () => {
    const user = await choosePhoto();
    await screen.findByRole('alert');
    await user.click(screen.getByRole('button', { name: 'History' }));
    const list = await screen.findByTestId('history-list');
    await waitFor(() => expect(within(list).getAllByRole('listitem')).toHaveLength(1));
    expect(list).toHaveTextContent('DANGEROUS');
    expect(list).toHaveTextContent('Amanita muscaria');
    await user.click(within(list).getByRole('button'));
    expect(await screen.findAllByRole('heading', { name: 'DANGEROUS' })).not.toHaveLength(0);
  });

  it('goes back to the photo buttons from the answer', async () => {
    const user = await choosePhoto();
    await screen.findByRole('alert');
    // At the top of the answer, not only after it.
    const [top] = screen.getAllByRole('button', { name: 'New photo' });
    expect(top?.compareDocumentPosition(screen.getByTestId('verdict-banner'))).toBe(Node.DOCUMENT_POSITION_FOLLOWING);
    await user.click(top!);
    expect(screen.getByLabelText('Take a photo')).toHaveAttribute('capture', 'environment');
  });

  it('the Identify tab starts a new photo while an answer is shown', async () => {
    const user = await choosePhoto();
    await screen.findByRole('alert');
    await user.click(screen.getByRole('button', { name: 'Identify' }));
    expect(screen.getByLabelText('Take a photo')).toBeInTheDocument();
    expect(screen.queryByTestId('verdict-banner')).not.toBeInTheDocument();
  });

  it('shows the disclaimer on the home screen', async () => {
    render(<App />);
    expect(await screen.findByRole('complementary', { name: 'Important' })).toHaveTextContent(/no app can tell/i);
  });
});

describe('identification errors', () => {
  it.each([
    { status: 413, title: 'Photo too large', detail: 'The photo is larger than 10 MB.' },
    { status: 415, title: 'Not a photo we can read', detail: 'This file is not a JPEG, PNG, WebP or HEIC image.' },
    { status: 422, title: 'Photo not usable', detail: 'The image could not be decoded.' },
  ])('$status: says what went wrong in the API’s words and offers another photo', async ({ status, title, detail }) => {
    server.use(http.post('*/predict', () => HttpResponse.json({ detail }, { status })));
    await choosePhoto(photoFile('notes.txt', 'text/plain'));
    const error = await screen.findByTestId('identify-error');
    expect(error).toHaveAttribute('role', 'alert');
    expect(within(error).getByRole('heading')).toHaveTextContent(title);
    expect(error).toHaveTextContent(detail);
    expect(within(error).queryByRole('button', { name: 'Try again' })).not.toBeInTheDocument();
    expect(within(error).getByRole('button', { name: 'Choose another photo' })).toBeInTheDocument();
  });

  it('422 from request validation (a list, not a sentence) still reads as a sentence', async () => {
    server.use(
      http.post('*/predict', () =>
        HttpResponse.json({ detail: [{ loc: ['query', 'top_k'], msg: 'too big' }] }, { status: 422 }),
      ),
    );
    await choosePhoto();
    expect(await screen.findByTestId('identify-error')).toHaveTextContent('This photo could not be read. Try another one.');
  });

  it('503: the model is not ready, and trying again works', async () => {
    let calls = 0;
    server.use(
      http.post('*/predict', () => {
        calls += 1;
        return calls === 1
          ? HttpResponse.json({ detail: 'The model is not loaded yet.' }, { status: 503 })
          : HttpResponse.json(identification('uncertain'));
      }),
    );
    const user = await choosePhoto();
    const error = await screen.findByTestId('identify-error');
    expect(error).toHaveTextContent('The model is not loaded yet.');
    await user.click(within(error).getByRole('button', { name: 'Try again' }));
    expect(await screen.findByRole('heading', { name: 'Uncertain' })).toBeInTheDocument();
    expect(calls).toBe(2);
  });

  it('network down: says so, keeps the photo and sends it when the connection returns', async () => {
    let down = true;
    server.use(
      http.post('*/predict', () => (down ? HttpResponse.error() : HttpResponse.json(identification('edible')))),
    );
    const user = await choosePhoto();
    const card = await screen.findByTestId('queued-card');
    expect(card).toHaveTextContent(/your photo is saved/i);
    expect(await screen.findByText('1 photo is waiting to be identified.')).toBeInTheDocument();
    expect(within(card).queryByRole('button', { name: 'Try again' })).not.toBeInTheDocument();

    down = false;
    window.dispatchEvent(new Event('online'));
    expect(await screen.findByText('A saved photo was identified. See History.')).toBeInTheDocument();
    // The answer replaces the waiting card where the person is looking.
    expect(await screen.findByTestId('verdict-banner')).toHaveAttribute('data-verdict', 'edible');
    expect(screen.queryByTestId('queued-card')).not.toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'History' }));
    const list = await screen.findByTestId('history-list');
    expect(list).toHaveTextContent('Likely an edible species');
  });
});
