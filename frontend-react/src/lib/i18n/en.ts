import type { Edibility, Verdict } from '@/client/schema';

/** Every English string the app shows. A translation is another object of the same type. */
export const en = {
  app: {
    title: 'Mushroom ID',
    skipToContent: 'Skip to main content',
    navIdentify: 'Identify',
    navHistory: 'History',
    mainNavigation: 'Main',
  },
  picker: {
    heading: 'Identify a mushroom',
    takePhoto: 'Take a photo',
    chooseFromGallery: 'Choose from gallery',
    hint: 'Photograph the whole mushroom, cap and stem, in good light. Include the underside if you can.',
  },
  progress: {
    preparing: 'Preparing your photo…',
    uploading: 'Identifying your mushroom…',
    cancel: 'Cancel',
  },
  verdict: {
    titles: {
      dangerous: 'DANGEROUS',
      edible: 'Likely an edible species',
      uncertain: 'Uncertain',
      not_a_mushroom: 'No mushroom found',
    } satisfies Record<Verdict, string>,
    subtitles: {
      dangerous: 'This may be a poisonous or deadly mushroom. Do not eat it.',
      edible: 'Never eat a wild mushroom on an app’s word. Have an expert check it.',
      uncertain: 'The app cannot tell which species this is. Treat it as poisonous.',
      not_a_mushroom: 'This photo does not look like a mushroom. Try another photo.',
    } satisfies Record<Verdict, string>,
  },
  result: {
    heading: 'Result',
    topSpecies: 'Most likely species',
    probability: (percent: number) => `${percent}% likely`,
    probabilityBelowOne: 'Under 1% likely',
    probabilityAboveMax: 'Over 99% likely',
    lookalikes: 'Look-alikes',
    lookalikesIntro: 'These species look similar. Check the feature that tells them apart.',
    howToTell: 'How to tell them apart:',
    noLookalikes: 'No look-alikes are listed for this species.',
    edibilityLabel: 'Edibility:',
    newPhoto: 'Identify another mushroom',
    model: (name: string, version: string) => `Model ${name} ${version}`,
  },
  edibility: {
    deadly: 'Deadly',
    poisonous: 'Poisonous',
    inedible: 'Not edible',
    edible_when_cooked: 'Edible only when cooked',
    edible: 'Edible',
    choice: 'Choice edible',
  } satisfies Record<Edibility, string>,
  heatmap: {
    show: 'Show where the model looked',
    hide: 'Hide heat map',
    loading: 'Making the heat map…',
    alt: (name: string) => `Heat map over your photo: warm areas most influenced the ${name} prediction.`,
    failed: 'The heat map could not be made.',
    offline: 'The heat map needs a connection.',
  },
  feedback: {
    heading: 'Was this right?',
    right: 'This is right',
    wrong: 'This is wrong',
    whichSpecies: 'What is it, if you know?',
    unknownSpecies: 'I don’t know',
    comment: 'Comment (optional)',
    sharePhoto: 'Also share my photo to help improve the model',
    sharePhotoHint: 'Your photo is only sent if you tick this box.',
    send: 'Send feedback',
    sending: 'Sending…',
    thanks: 'Thank you. Your feedback helps improve the app.',
    thanksWithPhoto: 'Thank you. Your feedback and photo help improve the app.',
    failed: 'Your feedback could not be sent. Please try again.',
  },
  history: {
    heading: 'Past identifications',
    empty: 'No identifications yet. They are kept on this device only.',
    thumbnailAlt: (name: string) => `Your photo (${name})`,
    clear: 'Delete history',
    confirmClear: 'Delete all past identifications from this device?',
    storedOnDevice: 'Kept on this device only; available offline.',
    back: 'Back to history',
  },
  offline: {
    banner: 'You are offline. Past identifications still work. New photos are kept and identified when you are back online.',
    queued: (count: number) =>
      count === 1 ? '1 photo is waiting to be identified.' : `${count} photos are waiting to be identified.`,
    queuedNow: 'You are offline. Your photo is saved and will be identified when the connection returns.',
    sentFromQueue: 'A saved photo was identified. See History.',
  },
  errors: {
    tooLarge: { title: 'Photo too large', fallback: 'This photo is too large. Try a smaller one.' },
    unsupported: {
      title: 'Not a photo we can read',
      fallback: 'This file is not a supported photo. Use a JPEG, PNG, WebP or HEIC photo.',
    },
    unprocessable: { title: 'Photo not usable', fallback: 'This photo could not be read. Try another one.' },
    rateLimited: { title: 'Too many photos', fallback: 'Too many photos at once. Wait a minute and try again.' },
    unavailable: { title: 'Service not ready', fallback: 'The identification service is not ready. Try again soon.' },
    notFound: { title: 'Not found', fallback: 'That was not found.' },
    network: {
      title: 'No connection',
      fallback: 'The identification service could not be reached. Your photo is saved and will be sent when the connection returns.',
    },
    unknown: { title: 'Something went wrong', fallback: 'Something went wrong. Please try again.' },
    tryAgain: 'Try again',
    dismiss: 'Choose another photo',
  },
  disclaimerHeading: 'Important',
} as const;

export type Strings = typeof en;
