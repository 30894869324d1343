/**
 * The rules file (`rules.json`, GET /model/rules) as the phone reads it: validated with zod, never
 * cast. Written from `mushroom_common/rules_export.py` (schema version 4); everything the phone
 * decides with comes from here: the variant's temperature and test-time views, every threshold,
 * the edibility classes, each label's catalog facts and look-alikes, each genus' facts. Sections
 * other modules read (the observations' `observation`) pass through untouched.
 */
import { z } from 'zod';

export const RULES_SCHEMA_VERSION = 4;

const edibility = z.enum(['deadly', 'poisonous', 'unknown', 'inedible', 'edible_when_cooked', 'edible', 'choice']);
const photoView = z.enum(['cap', 'underside', 'stem_base', 'ring', 'flesh', 'spore_print', 'habitat']);
const inferenceView = z.enum(['original', 'mirror']);
const openSetMethod = z.enum(['max_logit', 'energy', 'max_probability']);
const probability = z.number().min(0).max(1);

export const rulesDocumentSchema = z.looseObject({
  schema_version: z.literal(RULES_SCHEMA_VERSION),
  model: z.object({
    name: z.string(),
    version: z.string(),
    variant: z.string(),
    format: z.literal('tflite'),
    path: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    size_bytes: z.number().int().nonnegative(),
    input_height: z.number().int().positive(),
    input_width: z.number().int().positive(),
    temperature: z.number().positive(),
    mushroom_score_output: z.boolean(),
    test_time_views: z.array(inferenceView).min(1),
  }),
  labels: z.array(z.string()).min(1),
  rules: z.object({
    danger_threshold: probability,
    deadly_threshold: probability,
    poisonous_threshold: probability,
    caution_threshold: probability,
    caution_limit: z.number().int().positive(),
    lookalike_threshold: probability.nullable(),
    edible_mushroom_score: probability.nullable(),
    edible_threshold: z.number().positive(),
    genus_threshold: probability,
    genus_danger_share: probability,
    detector_threshold: probability.nullable(),
    unseen_lookalike_blocks_edible: z.boolean(),
    open_set: z.object({ method: openSetMethod, threshold: z.number() }).nullable(),
  }),
  edibility_order: z.array(edibility).min(1),
  edibility_classes: z.object({
    deadly: z.array(edibility),
    dangerous: z.array(edibility),
    edible: z.array(edibility),
  }),
  species: z.record(
    z.string(),
    z.object({
      scientific_name: z.string(),
      common_names: z.array(z.string()).min(1),
      genus: z.string(),
      family: z.string().nullable(),
      edibility,
      lookalikes: z.array(z.object({ species: z.string(), distinguishing_feature: z.string(), view: photoView.nullable() })),
    }),
  ),
  genera: z.record(
    z.string(),
    z.object({
      family: z.string().nullable(),
      holds_deadly: z.boolean(),
      holds_poisonous: z.boolean(),
      danger_share: probability,
    }),
  ),
});

export type RulesDocument = z.infer<typeof rulesDocumentSchema>;
export type RulesSpecies = RulesDocument['species'][string];
export type OpenSetMethod = z.infer<typeof openSetMethod>;
export type InferenceView = z.infer<typeof inferenceView>;

/** The rules file, checked: every label and look-alike is described, every label's genus too. */
export function parseRules(value: unknown): RulesDocument {
  const result = rulesDocumentSchema.safeParse(value);
  if (!result.success) throw new Error(`the rules file is not valid: ${z.prettifyError(result.error)}`);
  const rules = result.data;
  for (const label of rules.labels) {
    const entry = rules.species[label];
    if (!entry) throw new Error(`the rules file does not describe label ${label}`);
    if (!rules.genera[entry.genus]) throw new Error(`the rules file does not describe genus ${entry.genus}`);
    for (const lookalike of entry.lookalikes) {
      if (!rules.species[lookalike.species]) throw new Error(`the rules file does not describe look-alike ${lookalike.species}`);
    }
  }
  return rules;
}
