/**
 * The safety rules on the phone: a replay of `mushroom_common/verdict.py` (`judge`,
 * `open_set_score`, `genus_ranking`, `lookalikes_of`, `learned_lookalike`, `caution_candidates`,
 * `views_agree`) and of
 * the runtime's test-time view averaging (`runtime.average_rows`), reading every threshold, the
 * edibility classes, the temperature and the catalog facts from the rules file (`rules.ts`).
 * Nothing the rules decide with is written here: only the sentences, which the golden cases
 * (`tests/unit/verdict-golden.test.ts`, generated from the Python rules) check word for word.
 *
 * Summation order (the same in Python, so the sums and the sentences that quote them come out the
 * same bits): every sum over labels adds one label after the other in label order, starting from
 * the first label (Python: `np.cumsum` / `np.bincount`, never `np.sum`'s pairwise summation): the
 * deadly mass, the danger mass and each genus' total. Averages over views add one view after the
 * other in the rules' view order, then divide by the number of views.
 */
import type {
  CautionLookalikePublic,
  CautionPublic,
  Edibility,
  GenusPredictionPublic,
  LookalikePublic,
  SpeciesPredictionPublic,
  Verdict,
} from '@/client/api-client';
import type { OpenSetMethod, RulesDocument, RulesSpecies } from './rules';

export type { OpenSetMethod, RulesDocument } from './rules';

/** Which rule decided (`verdict.Reason`). */
export type Reason =
  | 'not_a_mushroom'
  | 'dangerous_species'
  | 'poisonous_sum'
  | 'deadly_sum'
  | 'dangerous_genus'
  | 'caution'
  | 'dangerous_lookalike'
  | 'unknown_species'
  | 'views_disagree'
  | 'genus_disagrees'
  | 'unclear_photo'
  | 'edible'
  | 'clear_genus'
  | 'not_sure';

const REASON_VERDICT: Record<Reason, Verdict> = {
  not_a_mushroom: 'not_a_mushroom',
  dangerous_species: 'dangerous',
  poisonous_sum: 'dangerous',
  deadly_sum: 'dangerous',
  dangerous_genus: 'dangerous',
  caution: 'uncertain',
  dangerous_lookalike: 'uncertain',
  unknown_species: 'uncertain',
  views_disagree: 'uncertain',
  genus_disagrees: 'uncertain',
  unclear_photo: 'uncertain',
  edible: 'edible',
  clear_genus: 'uncertain',
  not_sure: 'uncertain',
};

export const UNKNOWN_SPECIES_MESSAGE =
  'This photo may show a species the model was never taught, so even its closest matches may all be wrong.';

export type Judgement = {
  verdict: Verdict;
  message: string;
  predictions: SpeciesPredictionPublic[];
  genera: GenusPredictionPublic[];
  lookalikes: LookalikePublic[];
  possibly_unknown_species: boolean;
  reason: Reason;
  caution: CautionPublic | null;
  unknown_species_message: string | null;
};

export type JudgeInput = {
  /** Calibrated probabilities in label order (one photo, or its views averaged). */
  probabilities: ArrayLike<number>;
  /** The detector's score; null when the model has none. */
  mushroomScore: number | null;
  /** The open-set score (`openSetScore`); null when the rules have no open-set rule. */
  unknownScore: number | null;
  topK: number;
  topGenera?: number;
  /** Each view's calibrated probabilities [V][C]; `edible` needs them to agree. */
  viewProbabilities?: ArrayLike<number>[] | null;
};

const clamp01 = (value: number): number => Math.min(Math.max(value, 0), 1);

/** Whether the rules count this edibility as deadly or poisonous. */
export const isDangerous = (rules: RulesDocument, edibility: Edibility): boolean =>
  rules.edibility_classes.dangerous.includes(edibility);
const isDeadly = (rules: RulesDocument, edibility: Edibility): boolean => rules.edibility_classes.deadly.includes(edibility);
const isEdible = (rules: RulesDocument, edibility: Edibility): boolean => rules.edibility_classes.edible.includes(edibility);
const dangerRank = (rules: RulesDocument, edibility: Edibility): number => rules.edibility_order.indexOf(edibility);

/** Python's `f"{value:.0f}"`: round half to even on the exact binary value. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** 'over 99%', 'under 1%' or '57%' (as `verdict.percent`). */
export function percent(probability: number): string {
  if (probability >= 0.995) return 'over 99%';
  if (probability < 0.01) return 'under 1%';
  return `${roundHalfEven(probability * 100)}%`;
}

/** 'the death cap (Amanita phalloides)', or the scientific name when it has no English one. */
export function displayName(species: RulesSpecies): string {
  const name = species.common_names[0] ?? species.scientific_name;
  if (name.toLowerCase() === species.scientific_name.toLowerCase()) return species.scientific_name;
  return `the ${name} (${species.scientific_name})`;
}

/** How much a photo looks like a species the model never learned (higher: more unknown). */
export function openSetScore(logits: ArrayLike<number>, method: OpenSetMethod): number {
  const values = Array.from(logits, Number);
  const top = Math.max(...values);
  if (method === 'max_logit') return -top;
  const shifted = values.map((value) => Math.exp(value - top));
  const total = shifted.reduce((sum, value) => sum + value, 0);
  if (method === 'energy') return -(top + Math.log(total));
  return -(Math.max(...shifted) / total);
}

/** softmax(logits / temperature), numerically stable; the temperature is the rules' (the variant's own). */
export function softmax(logits: ArrayLike<number>, temperature: number): number[] {
  const scaled = Array.from(logits, (value) => Number(value) / temperature);
  const top = Math.max(...scaled);
  const exp = scaled.map((value) => Math.exp(value - top));
  const total = exp.reduce((sum, value) => sum + value, 0);
  return exp.map((value) => value / total);
}

/** The mean of the rows, added one row after the other (as `runtime.average_rows`). */
export function averageRows(rows: ArrayLike<number>[]): number[] {
  const first = rows[0];
  if (!first) throw new Error('averageRows needs at least one row');
  const total = Array.from(first, Number);
  for (const row of rows.slice(1)) {
    for (let i = 0; i < total.length; i += 1) total[i] = total[i]! + Number(row[i]);
  }
  return total.map((value) => value / rows.length);
}

function speciesOf(rules: RulesDocument, id: string): RulesSpecies {
  const entry = rules.species[id];
  if (!entry) throw new Error(`the rules file does not describe species ${id}`);
  return entry;
}

/** The sum of the labels that pass `keep`, one after the other in label order. */
function orderedSum(rules: RulesDocument, probabilities: ArrayLike<number>, keep: (entry: RulesSpecies) => boolean): number {
  let total = 0;
  rules.labels.forEach((label, index) => {
    if (keep(speciesOf(rules, label))) total += Number(probabilities[index]);
  });
  return total;
}

/** The species' look-alikes, most dangerous first (a stable sort, as the catalog's). */
export function lookalikesOf(rules: RulesDocument, speciesId: string): LookalikePublic[] {
  return speciesOf(rules, speciesId)
    .lookalikes.map((lookalike) => {
      const other = speciesOf(rules, lookalike.species);
      return {
        species: lookalike.species,
        scientific_name: other.scientific_name,
        common_names: other.common_names,
        edibility: other.edibility,
        distinguishing_feature: lookalike.distinguishing_feature,
        view: lookalike.view,
      };
    })
    .sort((a, b) => dangerRank(rules, a.edibility) - dangerRank(rules, b.edibility));
}

/** Each genus' total, adding the labels in label order. */
function genusTotals(rules: RulesDocument, probabilities: ArrayLike<number>): Map<string, number> {
  const totals = new Map<string, number>();
  rules.labels.forEach((label, index) => {
    const genus = speciesOf(rules, label).genus;
    totals.set(genus, (totals.get(genus) ?? 0) + Number(probabilities[index]));
  });
  return totals;
}

/** Every genus of the labels with its summed probability, most likely first (ties by name). */
export function genusRanking(rules: RulesDocument, probabilities: ArrayLike<number>): GenusPredictionPublic[] {
  return [...genusTotals(rules, probabilities).entries()]
    .sort(([genusA, a], [genusB, b]) => (a !== b ? b - a : genusA < genusB ? -1 : genusA > genusB ? 1 : 0))
    .map(([genus, total]) => {
      const facts = rules.genera[genus];
      return {
        genus,
        family: facts?.family ?? null,
        probability: clamp01(total),
        holds_deadly: facts?.holds_deadly ?? false,
        holds_poisonous: facts?.holds_poisonous ?? false,
      };
    });
}

/** Whether, in every view, the top species and its genus are the most likely (ties agree). */
export function viewsAgree(rules: RulesDocument, viewProbabilities: ArrayLike<number>[] | null | undefined, topIndex: number): boolean {
  if (!viewProbabilities) return true;
  const topGenus = speciesOf(rules, rules.labels[topIndex]!).genus;
  return viewProbabilities.every((row) => {
    const values = Array.from(row, Number);
    if (values.length !== rules.labels.length) throw new Error(`a view gave ${values.length} probabilities for ${rules.labels.length} labels`);
    const totals = [...genusTotals(rules, values).values()];
    return values[topIndex]! >= Math.max(...values) && genusTotals(rules, values).get(topGenus)! >= Math.max(...totals);
  });
}

/**
 * The deadly or poisonous species a caution names (as `caution_candidates`), each once, cut to the
 * rules' limit: the dangerous labels at the caution threshold or more (most likely first); the top
 * species' dangerous look-alikes (most dangerous first), learned ones and, when unseen look-alikes
 * block `edible`, unlearned ones; the other dangerous labels with some probability (most likely first).
 */
export function cautionCandidates(rules: RulesDocument, probabilities: number[], order: number[], topId: string): CautionLookalikePublic[] {
  const spec = rules.rules;
  const index = new Map(rules.labels.map((label, i) => [label, i] as const));
  const features = new Map(speciesOf(rules, topId).lookalikes.map((lookalike) => [lookalike.species, lookalike] as const));
  const picked: { id: string; probability: number | null }[] = [];
  const pick = (id: string, probability: number | null) => {
    if (id !== topId && picked.every((entry) => entry.id !== id)) picked.push({ id, probability });
  };
  const dangerousLabel = (i: number) => isDangerous(rules, speciesOf(rules, rules.labels[i]!).edibility);
  for (const i of order) {
    if (probabilities[i]! >= spec.caution_threshold && dangerousLabel(i)) pick(rules.labels[i]!, probabilities[i]!);
  }
  for (const lookalike of lookalikesOf(rules, topId)) {
    const position = index.get(lookalike.species);
    if (isDangerous(rules, lookalike.edibility) && (position !== undefined || spec.unseen_lookalike_blocks_edible)) {
      pick(lookalike.species, position === undefined ? null : probabilities[position]!);
    }
  }
  for (const i of order) {
    if (probabilities[i]! > 0 && dangerousLabel(i)) pick(rules.labels[i]!, probabilities[i]!);
  }
  return picked.slice(0, spec.caution_limit).map(({ id, probability }) => {
    const other = speciesOf(rules, id);
    const feature = features.get(id);
    return {
      species: id,
      scientific_name: other.scientific_name,
      common_names: other.common_names,
      edibility: other.edibility,
      probability: probability === null ? null : clamp01(probability),
      distinguishing_feature: feature?.distinguishing_feature ?? null,
      view: feature?.view ?? null,
    };
  });
}

/**
 * The top species' likeliest deadly or poisonous catalog look-alike that is a model label (ties:
 * the catalog's order, most dangerous first), as `learned_lookalike`; null when it has none.
 */
export function learnedLookalike(rules: RulesDocument, probabilities: number[], topId: string): LookalikePublic | null {
  const index = new Map(rules.labels.map((label, i) => [label, i] as const));
  let best: { lookalike: LookalikePublic; probability: number } | null = null;
  for (const lookalike of lookalikesOf(rules, topId)) {
    const position = index.get(lookalike.species);
    if (isDangerous(rules, lookalike.edibility) && position !== undefined) {
      const probability = probabilities[position]!;
      if (best === null || probability > best.probability) best = { lookalike, probability };
    }
  }
  return best === null ? null : best.lookalike;
}

function article(word: string): string {
  return 'aeiou'.includes(word.slice(0, 1).toLowerCase()) ? 'an' : 'a';
}

function join(parts: string[]): string {
  if (parts.length <= 1) return parts.join('');
  return `${parts.slice(0, -1).join(', ')} or ${parts[parts.length - 1]}`;
}

function genusAdvice(genus: GenusPredictionPublic): string {
  if (genus.holds_deadly) return 'this genus holds deadly mushrooms, so do not eat it.';
  if (genus.holds_poisonous) return 'this genus holds poisonous mushrooms, so do not eat it.';
  return "which species it is matters, so do not eat it without an expert's check.";
}

/** Applies the safety rules to one answer's calibrated probabilities (as `verdict.judge`). */
export function judge(rules: RulesDocument, input: JudgeInput): Judgement {
  const { mushroomScore, unknownScore, topK, topGenera = 3, viewProbabilities = null } = input;
  const spec = rules.rules;
  const labels = rules.labels;
  const probabilities = Array.from(input.probabilities, Number);
  if (probabilities.length !== labels.length) {
    throw new Error(`the model gave ${probabilities.length} probabilities for ${labels.length} labels`);
  }
  // Most likely first; a stable sort keeps equal probabilities in label order (as numpy's stable argsort).
  const order = labels.map((_, index) => index).sort((a, b) => probabilities[b]! - probabilities[a]!);
  const predictions: SpeciesPredictionPublic[] = order.slice(0, topK).map((index) => {
    const entry = speciesOf(rules, labels[index]!);
    return {
      species: labels[index]!,
      scientific_name: entry.scientific_name,
      common_names: entry.common_names,
      probability: clamp01(probabilities[index]!),
      edibility: entry.edibility,
    };
  });
  const rankedGenera = genusRanking(rules, probabilities);
  const topIndex = order[0]!;
  const topId = labels[topIndex]!;
  const top = speciesOf(rules, topId);
  const topProb = probabilities[topIndex]!;
  const lookalikes = lookalikesOf(rules, topId);
  const possiblyUnknown = unknownScore !== null && spec.open_set !== null && unknownScore >= spec.open_set.threshold;

  const answer = (reason: Reason, message: string, caution: CautionPublic | null = null): Judgement => ({
    verdict: REASON_VERDICT[reason],
    message,
    predictions,
    genera: rankedGenera.slice(0, topGenera),
    lookalikes,
    possibly_unknown_species: possiblyUnknown,
    reason,
    caution,
    unknown_species_message: possiblyUnknown ? UNKNOWN_SPECIES_MESSAGE : null,
  });

  if (mushroomScore !== null && spec.detector_threshold !== null && mushroomScore < spec.detector_threshold) {
    return answer(
      'not_a_mushroom',
      'This photo does not seem to show a mushroom; take a close, sharp photo of one mushroom, cap and stem, in good light.',
    );
  }

  const dangerousMass = orderedSum(rules, probabilities, (entry) => isDangerous(rules, entry.edibility));
  const deadlyMass = orderedSum(rules, probabilities, (entry) => isDeadly(rules, entry.edibility));
  const dangerous = order.filter((index) => isDangerous(rules, speciesOf(rules, labels[index]!).edibility));
  const deadly = order.filter((index) => isDeadly(rules, speciesOf(rules, labels[index]!).edibility));
  const bestGenus = rankedGenera[0]!;
  if (isDangerous(rules, top.edibility)) {
    return answer('dangerous_species', `The model is ${percent(topProb)} sure this is ${displayName(top)}, which is ${top.edibility}: do not eat it.`);
  }
  if (dangerous.length > 0 && dangerousMass >= spec.poisonous_threshold) {
    const worst = speciesOf(rules, labels[dangerous[0]!]!);
    return answer(
      'poisonous_sum',
      `This looks most like ${displayName(top)}, but it could be ${displayName(worst)}, which is ${worst.edibility}: the model ` +
        `gives deadly and poisonous species a ${percent(dangerousMass)} chance together, so do not eat it.`,
    );
  }
  if (deadly.length > 0 && deadlyMass >= spec.deadly_threshold) {
    const worst = speciesOf(rules, labels[deadly[0]!]!);
    return answer(
      'deadly_sum',
      `This looks most like ${displayName(top)}, but it could be ${displayName(worst)}, which is deadly: the model gives ` +
        `deadly species a ${percent(deadlyMass)} chance together, so do not eat it.`,
    );
  }
  if (
    bestGenus.probability >= spec.genus_threshold &&
    topProb < spec.genus_threshold &&
    (rules.genera[bestGenus.genus]?.danger_share ?? 0) > spec.genus_danger_share
  ) {
    return answer(
      'dangerous_genus',
      `The species is not clear, but the model is ${percent(bestGenus.probability)} sure this is ${article(bestGenus.genus)} ` +
        `${bestGenus.genus}, and most ${bestGenus.genus} species are deadly or poisonous: do not eat it.`,
    );
  }

  const known = new Set(labels);
  const unseen = lookalikesOf(rules, topId).some((lookalike) => isDangerous(rules, lookalike.edibility) && !known.has(lookalike.species));
  if (dangerousMass >= spec.caution_threshold || (unseen && spec.unseen_lookalike_blocks_edible)) {
    const candidates = cautionCandidates(rules, probabilities, order, topId);
    const names = join(candidates.slice(0, 2).map((candidate) => `the ${candidate.edibility} ${candidate.common_names[0]}`));
    let message =
      `This looks most like ${displayName(top)} (${percent(topProb)}), but do not eat it: it could be ${names}, which the ` +
      'model cannot rule out.';
    const first = candidates[0]!;
    if (first.distinguishing_feature !== null) {
      message += ` What tells it from the ${first.common_names[0]}: ${first.distinguishing_feature}.`;
    }
    return answer('caution', message, { species: topId, lookalikes: candidates });
  }
  const twin = learnedLookalike(rules, probabilities, topId);
  if (twin !== null && spec.lookalike_threshold !== null) {
    const twinProb = probabilities[labels.indexOf(twin.species)]!;
    if (twinProb >= spec.lookalike_threshold) {
      const twinSpecies = speciesOf(rules, twin.species);
      const first: CautionLookalikePublic = {
        species: twin.species,
        scientific_name: twinSpecies.scientific_name,
        common_names: twinSpecies.common_names,
        edibility: twinSpecies.edibility,
        probability: clamp01(twinProb),
        distinguishing_feature: twin.distinguishing_feature,
        view: twin.view ?? null,
      };
      const others = cautionCandidates(rules, probabilities, order, topId).filter((c) => c.species !== twin.species);
      const message =
        `This looks most like ${displayName(top)} (${percent(topProb)}), but do not eat it: it has a ${twinSpecies.edibility} ` +
        `look-alike, ${displayName(twinSpecies)}, that the model does not rule out (${percent(twinProb)}). What tells it ` +
        `from the ${twinSpecies.common_names[0]}: ${twin.distinguishing_feature}.`;
      return answer('dangerous_lookalike', message, { species: topId, lookalikes: [first, ...others].slice(0, spec.caution_limit) });
    }
  }

  if (possiblyUnknown) {
    return answer(
      'unknown_species',
      `This may be a species the model does not know: it is only ${percent(topProb)} sure of its closest match, ` +
        `${displayName(top)}, so do not eat it without an expert's check.`,
    );
  }

  if (isEdible(rules, top.edibility) && topProb >= spec.edible_threshold) {
    if (!viewsAgree(rules, viewProbabilities, topIndex)) {
      return answer(
        'views_disagree',
        `The model is ${percent(topProb)} sure this is ${displayName(top)}, but not every view gives the same answer, so do ` +
          "not eat it without an expert's check.",
      );
    }
    if (bestGenus.genus !== top.genus) {
      return answer(
        'genus_disagrees',
        `The model is ${percent(topProb)} sure this is ${displayName(top)}, but it finds ${article(bestGenus.genus)} ` +
          `${bestGenus.genus} a likelier genus, so do not eat it without an expert's check.`,
      );
    }
    if (mushroomScore !== null && spec.edible_mushroom_score !== null && mushroomScore < spec.edible_mushroom_score) {
      return answer(
        'unclear_photo',
        `The model is ${percent(topProb)} sure this is ${displayName(top)}, but the photo does not clearly show a mushroom, ` +
          "so do not eat it without an expert's check; take a close, sharp photo of the cap, stem and gills.",
      );
    }
    return answer(
      'edible',
      `The model is ${percent(topProb)} sure this is ${displayName(top)}, an edible species, but have an expert ` +
        'confirm it before you eat any.',
    );
  }

  if (bestGenus.probability >= spec.genus_threshold && topProb < spec.genus_threshold) {
    return answer(
      'clear_genus',
      `The species is not clear, but the model is ${percent(bestGenus.probability)} sure this is ` +
        `${article(bestGenus.genus)} ${bestGenus.genus}: ${genusAdvice(bestGenus)}`,
    );
  }

  return answer(
    'not_sure',
    `The model is not sure: it is ${percent(topProb)} sure of its closest match, ${displayName(top)}, ` +
      "so do not eat it without an expert's check.",
  );
}
