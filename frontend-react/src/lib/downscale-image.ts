export type PreparedPhoto = {
  /** What is uploaded: a JPEG when the browser could decode the photo, otherwise the file as chosen. */
  blob: Blob;
  fileName: string;
  /** Size of the uploaded image when it was decoded here. */
  width: number | null;
  height: number | null;
  downscaled: boolean;
};

/** The size that fits `width x height` inside a square of `maxSide`, never enlarging. */
export function fitWithin(width: number, height: number, maxSide: number): { width: number; height: number } {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

function jpegName(name: string): string {
  const base = name.replace(/\.[^.]+$/, '') || 'photo';
  return `${base}.jpg`;
}

async function canvasToJpeg(bitmap: ImageBitmap, width: number, height: number, quality: number): Promise<Blob> {
  if (typeof OffscreenCanvas !== 'undefined') {
    const canvas = new OffscreenCanvas(width, height);
    const context = canvas.getContext('2d');
    if (!context) throw new Error('2D canvas unavailable');
    context.drawImage(bitmap, 0, 0, width, height);
    return canvas.convertToBlob({ type: 'image/jpeg', quality });
  }
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d');
  if (!context) throw new Error('2D canvas unavailable');
  context.drawImage(bitmap, 0, 0, width, height);
  return new Promise((resolve, reject) => {
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('JPEG encoding failed'))), 'image/jpeg', quality);
  });
}

/**
 * Downscales a photo in the browser before upload (EXIF orientation applied), which makes the request
 * faster and saves mobile data. When the browser cannot decode the file (a text file, a HEIC photo on
 * most browsers) the original is sent, so the API answers with its own clear error or decodes it itself.
 */
export async function preparePhoto(file: File, maxSide: number, quality: number): Promise<PreparedPhoto> {
  const original: PreparedPhoto = {
    blob: file,
    fileName: file.name || 'photo',
    width: null,
    height: null,
    downscaled: false,
  };
  if (typeof createImageBitmap !== 'function') return original;
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    return original;
  }
  try {
    const size = fitWithin(bitmap.width, bitmap.height, maxSide);
    const blob = await canvasToJpeg(bitmap, size.width, size.height, quality);
    return { blob, fileName: jpegName(file.name), width: size.width, height: size.height, downscaled: true };
  } catch {
    return original;
  } finally {
    bitmap.close();
  }
}

/** A small JPEG thumbnail for the history list; null when the browser cannot decode the photo. */
export async function makeThumbnail(photo: Blob, side = 160): Promise<Blob | null> {
  if (typeof createImageBitmap !== 'function') return null;
  try {
    const bitmap = await createImageBitmap(photo, { imageOrientation: 'from-image' });
    try {
      const size = fitWithin(bitmap.width, bitmap.height, side);
      return await canvasToJpeg(bitmap, size.width, size.height, 0.75);
    } finally {
      bitmap.close();
    }
  } catch {
    return null;
  }
}

/** A crop as fractions of the photo's width and height (0-1); the whole photo by default. */
export type CropRect = { x: number; y: number; width: number; height: number };

export const WHOLE_PHOTO: CropRect = { x: 0, y: 0, width: 1, height: 1 };

/** Whether a crop keeps (almost) the whole photo: then the photo is sent as it is, not re-encoded. */
export function isWholePhoto(crop: CropRect): boolean {
  return crop.x <= 0.001 && crop.y <= 0.001 && crop.width >= 0.999 && crop.height >= 0.999;
}

/**
 * The part of a prepared photo inside the crop, as a JPEG; the photo itself when the crop is the
 * whole photo or the browser cannot decode it (the server then sees the whole photo).
 */
export async function cropPhoto(photo: PreparedPhoto, crop: CropRect, quality: number): Promise<PreparedPhoto> {
  if (isWholePhoto(crop) || typeof createImageBitmap !== 'function') return photo;
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(photo.blob, { imageOrientation: 'from-image' });
  } catch {
    return photo;
  }
  try {
    const left = Math.round(crop.x * bitmap.width);
    const top = Math.round(crop.y * bitmap.height);
    const width = Math.max(1, Math.min(bitmap.width - left, Math.round(crop.width * bitmap.width)));
    const height = Math.max(1, Math.min(bitmap.height - top, Math.round(crop.height * bitmap.height)));
    const region = await createImageBitmap(bitmap, left, top, width, height);
    try {
      const blob = await canvasToJpeg(region, width, height, quality);
      return { blob, fileName: photo.fileName, width, height, downscaled: photo.downscaled };
    } finally {
      region.close();
    }
  } catch {
    return photo;
  } finally {
    bitmap.close();
  }
}
