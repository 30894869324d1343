import { en } from './en';

export type { Strings } from './en';

/** The strings in use. Translations would pick another object here, from the browser language. */
export const t = en;
