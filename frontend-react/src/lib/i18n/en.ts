import type { Edibility, PhotoView, Verdict } from '@/client/schema';

const monthNames = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

const viewNames: Record<PhotoView, string> = {
  cap: 'the cap',
  underside: 'the gills/underside',
  stem_base: 'the stem base',
  ring: 'the ring',
  flesh: 'the cut flesh',
  spore_print: 'a spore print',
  habitat: 'where it grows',
};

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
    onDevice: 'Identifying on this phone…',
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
    /** "Do not eat, it could be ...": a harmless-looking answer with a dangerous look-alike not ruled out. */
    caution: {
      title: 'Do not eat it',
      subtitle: 'It looks like a harmless species, but a deadly or poisonous look-alike is not ruled out.',
      heading: 'It could be a dangerous look-alike',
      intro: (species: string) => `Before anyone takes this for ${species}, an expert must rule these out:`,
      notLearned: 'The model was never taught this species, so it cannot rule it out.',
      likely: (percent: string) => `The model gives it ${percent}.`,
      howToTell: (lookalike: string) => `How to tell it from ${lookalike}:`,
      photoShowsIt: 'The photo that shows the difference:',
      views: {
        cap: 'the cap from above',
        underside: 'the underside: gills, pores or teeth',
        stem_base: 'the stem base, dug out (bulb or sac)',
        ring: 'the ring on the stem',
        flesh: 'the flesh, cut or bruised',
        spore_print: 'a spore print',
        habitat: 'where it grows (wood, soil, host tree)',
      } satisfies Record<PhotoView, string>,
    },
    /** Shown when the answer says the species may be one the model never learned and gives no sentence. */
    unknownSpecies: 'This photo may show a species the model was never taught, so even its closest matches may all be wrong.',
    unknownSpeciesLabel: 'Possibly a species the model does not know',
  },
  result: {
    heading: 'Result',
    topSpecies: 'Most likely species',
    probability: (percent: number) => `${percent}% likely`,
    probabilityBelowOne: 'Under 1% likely',
    probabilityAboveMax: 'Over 99% likely',
    lookalikes: 'Look-alikes',
    lookalikesIntro: 'These species look similar. Check the feature that tells them apart.',
    howToTell: (species: string, lookalike: string) => `How to tell ${species} from ${lookalike}:`,
    traitOf: (name: string) => `${name}:`,
    noLookalikes: 'No look-alikes are listed for this species.',
    edibilityLabel: 'Edibility:',
    newPhoto: 'New photo',
    photoAlt: 'The photo that was identified',
    notAMushroomTips: [
      'Fill the photo with one mushroom.',
      'Show the cap and the stem; turn it to show the underside if you can.',
      'Use good light and hold the phone still.',
    ],
    answeredBy: {
      device: (name: string, version: string) => `Answered on this phone by model ${name} ${version}.`,
      server: (name: string, version: string) => `Answered by the server, model ${name} ${version}.`,
    },
    feedbackNeedsServer: 'Feedback is for answers from the server; this one came from the model on this phone.',
  },
  views: {
    names: viewNames,
    /** How to take the photo, for the picker's hint. */
    hints: {
      cap: 'The cap from above.',
      underside: 'Turn the mushroom over: the gills, pores or teeth under the cap.',
      stem_base: 'Dig the mushroom out whole and show the base of the stem (a bulb or a cup-like volva).',
      ring: 'The ring on the stem, or where one would be.',
      flesh: 'Cut it in half, or scratch it, and show the flesh.',
      spore_print: 'A spore print: the cap gills-down on paper for a few hours.',
      habitat: 'Where it grows: the wood, soil or trees around it.',
    } satisfies Record<PhotoView, string>,
    label: 'What does this photo show? (optional)',
    notSaid: 'Not said',
  },
  observation: {
    photosHeading: (count: number) => (count === 1 ? 'Your photo' : `Your ${count} photos, one answer`),
    morePhotosHeading: 'More photos, a surer answer',
    photoAlt: (index: number, view: string | null) => `Photo ${index + 1}${view ? ` (${view})` : ''}`,
    photoTop: (name: string) => `This photo alone: ${name}`,
    nextPhotoHeading: 'Which photo next',
    addViewPhoto: (view: string) => `Add a photo of ${view}`,
    addPhoto: (count: number, max: number) => `Add another photo (${count} of ${max})`,
    full: (max: number) => `This observation has ${max} photos, the most it can have.`,
    addingHeading: (view: string | null) => (view ? `Add a photo of ${view}` : 'Add another photo of the same mushroom'),
    cancelAdding: 'Back to the answer',
    /** As the server's `next_photo.reason` (observation.next_photo), with the app's view names. */
    nextPhotoReason: (species: string, lookalike: string, edibility: string, feature: string, view: string) =>
      `This could be ${species}, but the ${edibility} ${lookalike.replace(/^the /, '')} looks like it (${feature}): add a photo of ${view} to tell them apart.`,
    priorUsed: (region: string | null, month: number | null) =>
      `Where and when helped: ${[region ? region.replaceAll('_', ' ') : null, month ? monthNames[month - 1] : null].filter(Boolean).join(', ')}.`,
  },
  crop: {
    heading: 'Frame the mushroom',
    hint: 'Move and resize the box so it holds the mushroom; the whole photo is used unless you change it.',
    boxLabel: 'Crop box',
    keyboardHelp: 'Arrow keys move the box; Shift with the arrow keys makes it wider, narrower, taller or shorter; + and − resize it.',
    touchHelp: 'Drag the box to move it; pinch to resize it.',
    status: (width: number, height: number, left: number, top: number) =>
      `Crop: ${width}% wide and ${height}% high, ${left}% from the left and ${top}% from the top.`,
    resizeHandle: 'Resize the crop box',
    wholePhoto: 'Use the whole photo',
    use: 'Use this photo',
    cancel: 'Cancel',
    photoAlt: 'The photo to frame',
  },
  location: {
    heading: 'Use roughly where you are?',
    explanation:
      'Which mushrooms grow where, and in which month, helps tell look-alikes apart. If you allow it, the app rounds your position on this phone to whole degrees (about 100 km) and sends only that and the month with your photos. Your exact position never leaves this phone. Deadly species are never ruled out because of where you are.',
    allow: 'Allow rough location',
    decline: 'No, thanks',
    setting: 'Use my rough location (whole degrees) and the month',
    settingsHeading: 'Settings',
    unavailable: 'Your location could not be read; photos are identified without it.',
    using: (lat: number, lon: number) => `Using your rough location: ${lat}°, ${lon}°.`,
  },
  edibility: {
    deadly: 'Deadly',
    poisonous: 'Poisonous',
    unknown: 'Edibility unknown',
    inedible: 'Not edible',
    edible_when_cooked: 'Edible only when cooked',
    edible: 'Edible',
    choice: 'Choice edible',
  } satisfies Record<Edibility, string>,
  onDevice: {
    loading: 'Getting the model ready for offline use…',
    ready: (megabytes: string) => `Ready to identify offline (${megabytes} MB downloaded).`,
    loadedNotStored: 'This phone can identify photos itself, but the model is not stored for offline use yet.',
    unavailable: 'Identifying without a connection is not available on this device; photos taken offline wait until you are back online.',
  },
  heatmap: {
    show: 'Show where the model looked',
    hide: 'Hide heat map',
    loading: 'Making the heat map…',
    alt: (name: string) => `Heat map over your photo: warm areas most influenced the ${name} prediction.`,
    failed: 'The heat map could not be made.',
    offline: 'The heat map needs a connection.',
    onDevice: 'The heat map comes from the server; it is not available for answers made on this phone.',
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
    morePhotoAlt: (number: number) => `Your photo ${number} of the same mushroom`,
    photos: (count: number) => `${count} photos, one answer`,
    nextPhoto: (view: string) => `Asked for a photo of ${view in viewNames ? viewNames[view as PhotoView] : view.replaceAll('_', ' ')}`,
  },
  offline: {
    banner: 'You are offline. Past identifications still work. New photos are kept and identified when you are back online.',
    bannerOnDevice: 'You are offline. This phone identifies new photos itself.',
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
  disclaimer:
    'No app can tell whether a mushroom is safe to eat. Never eat a wild mushroom because an app named it: have it checked in person by an expert.',
} as const;

export type Strings = typeof en;
