export { FeedbackPanel, type SpeciesChoice } from './components/feedback-panel';
