export { FeedbackPanel } from './components/feedback-panel';
export type { SpeciesChoice } from './hooks/use-species-choices';
