import { http, HttpResponse } from 'msw';
import type { FeedbackCreate, FeedbackPublic, SpeciesPublic } from '@/client/schema';
import { identification } from './fixtures';

export const catalog: SpeciesPublic[] = [
  {
    id: 'amanita_muscaria',
    scientific_name: 'Amanita muscaria',
    common_names: { en: ['Fly agaric'] },
    edibility: 'poisonous',
    edibility_note: null,
    toxins: ['ibotenic acid', 'muscimol'],
    symptoms: 'Confusion, drowsiness, vomiting.',
    lookalikes: [],
    sources: ['https://example.org/amanita-muscaria'],
    in_model: true,
  },
  {
    id: 'cantharellus_cibarius',
    scientific_name: 'Cantharellus cibarius',
    common_names: { en: ['Chanterelle'] },
    edibility: 'choice',
    edibility_note: null,
    toxins: [],
    symptoms: '',
    lookalikes: [],
    sources: [],
    in_model: true,
  },
];

/** The API as the happy path answers it: a dangerous fly agaric. */
export const defaultHandlers = [
  http.post('*/predict', () => HttpResponse.json(identification('dangerous'))),
  http.get('*/species', () => HttpResponse.json(catalog)),
  // jsdom runs no WASM: the on-device model is never ready in these tests (Playwright runs it).
  http.get('*/model/rules', () => HttpResponse.json({ detail: 'not in unit tests' }, { status: 503 })),
  http.post('*/feedback', async ({ request }) => {
    const body = (await request.json()) as FeedbackCreate;
    const feedback: FeedbackPublic = {
      id: 'fb1',
      request_id: body.request_id,
      correct: body.correct,
      species: body.species ?? null,
      photo_stored: false,
    };
    return HttpResponse.json(feedback, { status: 201 });
  }),
  http.post('*/feedback/:feedbackId/photo', ({ params }) =>
    HttpResponse.json({ id: String(params.feedbackId), request_id: 'x', correct: false, species: null, photo_stored: true }),
  ),
];
