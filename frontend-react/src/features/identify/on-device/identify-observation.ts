/**
 * An observation (1 to 5 photos, a place) answered on this phone as `POST /predict` answers it
 * (api-service `services/identify.py`): each photo through the model, the photos that look like a
 * mushroom fused, the location and month prior, the safety rules once, and which photo next.
 */
import type { SpeciesPredictionPublic } from '@/client/api-client';
import { isPhotoView, type Identification, type NextPhoto, type PhotoView, type Place, type PriorUsed } from '@/lib/identification';
import { t } from '@/lib/i18n';
import { newId } from '@/lib/local-db';
import { runPhotoViews, type ModelKit, type PhotoViewsOutput } from './model-kit';
import {
  applyPrior,
  fuse,
  locationPrior,
  nextPhoto,
  observationMushroomScore,
  observationRules,
  usedPhotos,
  type LocationPrior,
} from './observation';
import { displayName, judge, openSetScore } from './verdict';

export type DevicePhoto = { blob: Blob; view: PhotoView | null };

export type ObservationAnswer = {
  result: Identification;
  /** The observation's probabilities in label order (fused, prior applied). */
  probabilities: number[];
  milliseconds: number;
  photoMilliseconds: number[];
};

const NO_PRIOR = (labels: number): LocationPrior => ({ weights: new Array<number>(labels).fill(1), applied: false, region: null, month: null });

/** Identifies an observation with the model on this phone and the rules of `rules.json`. */
export async function runObservationOnDevice(kit: ModelKit, photos: DevicePhoto[], place: Place | null, topK: number): Promise<ObservationAnswer> {
  const started = performance.now();
  const { rules } = kit;
  if (photos.length === 0) throw new Error('an observation needs at least one photo');
  const observation = observationRules(rules);
  if (photos.length > 1 && !observation) throw new Error('this model kit predates observations: it answers one photo at a time');
  const labels = rules.labels;
  const openSet = rules.rules.open_set;

  const outputs: PhotoViewsOutput[] = [];
  const photoMilliseconds: number[] = [];
  for (const photo of photos) {
    const photoStarted = performance.now();
    outputs.push(await runPhotoViews(kit, photo.blob));
    photoMilliseconds.push(performance.now() - photoStarted);
  }

  const scores = outputs.map((output) => output.mushroomScore);
  const used = usedPhotos(scores, rules.rules.detector_threshold);
  const fused = fuse(
    used.map((index) => outputs[index]!.probabilities),
    observation?.fusion_method ?? 'log_mean',
  );
  const hasPlace = place !== null && (place.month !== null || (place.lat !== null && place.lon !== null));
  const prior = observation && hasPlace ? locationPrior(observation, labels, place) : NO_PRIOR(labels.length);
  const probabilities = applyPrior(fused, prior);
  const unknownScore = openSet
    ? used.reduce((sum, index) => sum + openSetScore(outputs[index]!.logits, openSet.method), 0) / used.length
    : null;
  const mushroomScore = observationMushroomScore(scores);
  const judgement = judge(rules, {
    probabilities,
    mushroomScore,
    unknownScore,
    topK,
    // As the server: every test-time view of every fused photo must agree before `edible`.
    viewProbabilities: used.flatMap((index) => outputs[index]!.viewProbabilities),
  });

  const views = photos.map((photo) => photo.view);
  const ask = observation && judgement.verdict !== 'not_a_mushroom' ? nextPhoto(observation, labels, probabilities, views) : null;
  const prediction = (row: number[]): SpeciesPredictionPublic => {
    let best = 0;
    row.forEach((value, index) => {
      if (value > row[best]!) best = index;
    });
    const entry = rules.species[labels[best]!]!;
    return {
      species: labels[best]!,
      scientific_name: entry.scientific_name,
      common_names: entry.common_names,
      probability: Math.min(Math.max(row[best]!, 0), 1),
      edibility: entry.edibility,
    };
  };
  const priorUsed: PriorUsed = { applied: prior.applied, region: prior.region, month: prior.month };
  const result: Identification = {
    request_id: `device-${newId()}`,
    ...judgement,
    disclaimer: t.disclaimer,
    mushroom_score: mushroomScore,
    model: { name: rules.model.name, version: rules.model.version },
    photos: outputs.map((output, index) => ({ index, view: views[index] ?? null, top: prediction(output.probabilities) })),
    next_photo: ask && isPhotoView(ask.view) ? nextPhotoSentence(kit, ask.species, ask.lookalike, ask.view) : null,
    prior: priorUsed,
    source: 'device',
  };
  return { result, probabilities, milliseconds: performance.now() - started, photoMilliseconds };
}

/** The server's `next_photo.reason`, in the app's words, from the rules' catalog facts. */
function nextPhotoSentence(kit: ModelKit, speciesId: string, lookalikeId: string, view: PhotoView): NextPhoto {
  const { rules } = kit;
  const species = rules.species[speciesId]!;
  const other = rules.species[lookalikeId]!;
  const feature = species.lookalikes.find((lookalike) => lookalike.species === lookalikeId)?.distinguishing_feature ?? '';
  const viewName = t.views.names[view];
  return {
    view,
    lookalike: lookalikeId,
    reason: t.observation.nextPhotoReason(displayName(species), displayName(other), other.edibility, feature, viewName),
  };
}
