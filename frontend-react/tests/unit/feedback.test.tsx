import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { http, HttpResponse } from 'msw';
import { describe, expect, it } from 'vitest';
import type { FeedbackCreate } from '@/client/schema';
import { FeedbackPanel } from '@/features/feedback/components/feedback-panel';
import { server } from './msw-server';

const photo = new Blob([new Uint8Array([0xff, 0xd8, 0xff, 0xd9])], { type: 'image/jpeg' });
const choices = [{ id: 'amanita_muscaria', label: 'Amanita muscaria (Fly agaric)' }];

function recordRequests() {
  const feedback: FeedbackCreate[] = [];
  const photos: string[] = [];
  server.use(
    http.post('*/feedback', async ({ request }) => {
      const body = (await request.json()) as FeedbackCreate;
      feedback.push(body);
      return HttpResponse.json(
        { id: 'fb42', request_id: body.request_id, correct: body.correct, species: body.species ?? null, photo_stored: false },
        { status: 201 },
      );
    }),
    http.post('*/feedback/:feedbackId/photo', ({ params }) => {
      photos.push(String(params.feedbackId));
      return HttpResponse.json({ id: 'fb42', request_id: 'req1', correct: false, species: null, photo_stored: true });
    }),
  );
  return { feedback, photos };
}

describe('FeedbackPanel', () => {
  it('"This is right" posts correct=true and never sends the photo unasked', async () => {
    const sent = recordRequests();
    const user = userEvent.setup();
    render(<FeedbackPanel requestId="req1" photo={photo} speciesChoices={choices} />);
    await user.click(screen.getByRole('button', { name: 'This is right' }));
    const share = screen.getByRole('checkbox', { name: /share my photo/i });
    expect(share).not.toBeChecked();
    await user.click(screen.getByRole('button', { name: 'Send feedback' }));
    expect(await screen.findByText('Thank you. Your feedback helps improve the app.')).toBeInTheDocument();
    expect(sent.feedback).toEqual([
      { request_id: 'req1', correct: true, species: null, comment: null, share_photo: false },
    ]);
    expect(sent.photos).toEqual([]);
  });

  it('"This is wrong" lets the person name the species (from the catalog too) and share the photo', async () => {
    const sent = recordRequests();
    const user = userEvent.setup();
    render(<FeedbackPanel requestId="req1" photo={photo} speciesChoices={choices} />);
    await user.click(screen.getByRole('button', { name: 'This is wrong' }));
    const select = screen.getByRole('combobox', { name: 'What is it, if you know?' });
    // The catalog (GET /species) adds the chanterelle to the predicted species.
    await screen.findByRole('option', { name: 'Cantharellus cibarius (Chanterelle)' });
    await user.selectOptions(select, 'cantharellus_cibarius');
    await user.type(screen.getByRole('textbox', { name: 'Comment (optional)' }), '  Gills were ridges.  ');
    await user.click(screen.getByRole('checkbox', { name: /share my photo/i }));
    await user.click(screen.getByRole('button', { name: 'Send feedback' }));
    expect(await screen.findByText('Thank you. Your feedback and photo help improve the app.')).toBeInTheDocument();
    expect(sent.feedback).toEqual([
      {
        request_id: 'req1',
        correct: false,
        species: 'cantharellus_cibarius',
        comment: 'Gills were ridges.',
        share_photo: true,
      },
    ]);
    expect(sent.photos).toEqual(['fb42']);
  });

  it('says so when feedback cannot be sent, and keeps the form', async () => {
    server.use(
      http.post('*/feedback', () =>
        HttpResponse.json({ detail: 'That identification is unknown.' }, { status: 404 }),
      ),
    );
    const user = userEvent.setup();
    render(<FeedbackPanel requestId="gone" photo={null} speciesChoices={choices} />);
    await user.click(screen.getByRole('button', { name: 'This is right' }));
    expect(screen.queryByRole('checkbox')).not.toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Send feedback' }));
    expect(await screen.findByRole('alert')).toHaveTextContent(
      'Your feedback could not be sent. Please try again. That identification is unknown.',
    );
    expect(screen.getByRole('button', { name: 'Send feedback' })).toBeEnabled();
  });
});
