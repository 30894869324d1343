import type { Verdict } from '@/client/schema';
import type { Identification } from '@/lib/identification';

const DISCLAIMER = 'No app can tell whether a mushroom is safe to eat. Never eat a wild mushroom on the word of an app.';

const MESSAGES: Record<Verdict, string> = {
  dangerous: 'This looks like fly agaric, a poisonous mushroom.',
  edible: 'This looks like a porcini, an edible species, but check with an expert.',
  uncertain: 'The model is not sure which species this is.',
  not_a_mushroom: 'This photo does not seem to show a mushroom.',
};

/** A /predict answer for a verdict, shaped exactly like the API's IdentificationPublic, from the server. */
export function identification(verdict: Verdict, overrides: Partial<Identification> = {}): Identification {
  return {
    request_id: `req${verdict.replace(/_/g, '')}0123456789abcdef`,
    verdict,
    message: MESSAGES[verdict],
    disclaimer: DISCLAIMER,
    predictions: [
      {
        species: 'amanita_muscaria',
        scientific_name: 'Amanita muscaria',
        common_names: ['Fly agaric'],
        probability: 0.91,
        edibility: 'poisonous',
      },
      {
        species: 'boletus_edulis',
        scientific_name: 'Boletus edulis',
        common_names: ['Porcini', 'Penny bun'],
        probability: 0.06,
        edibility: 'choice',
      },
      {
        species: 'amanita_vaginata',
        scientific_name: 'Amanita vaginata',
        common_names: ['Grisette'],
        probability: 0.03,
        edibility: 'edible_when_cooked',
      },
    ],
    lookalikes: [
      {
        species: 'amanita_caesarea',
        scientific_name: 'Amanita caesarea',
        common_names: ["Caesar's mushroom"],
        edibility: 'choice',
        distinguishing_feature: 'white gills and warts on the cap vs yellow gills and no warts',
      },
      {
        species: 'amanita_pantherina',
        scientific_name: 'Amanita pantherina',
        common_names: ['Panther cap'],
        edibility: 'deadly',
        distinguishing_feature: 'scarlet cap vs brown cap with a rimmed volva at the base',
      },
    ],
    genera: [{ genus: 'Amanita', family: 'Amanitaceae', probability: 0.94, holds_deadly: true, holds_poisonous: true }],
    possibly_unknown_species: false,
    mushroom_score: verdict === 'not_a_mushroom' ? 0.05 : 0.97,
    model: { name: 'demo', version: '1' },
    source: 'server',
    ...overrides,
  };
}

/** A tiny file that stands for a photo (jsdom cannot decode images, so it is sent as is). */
export function photoFile(name = 'fly-agaric.jpg', type = 'image/jpeg'): File {
  return new File([new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4])], name, { type });
}
