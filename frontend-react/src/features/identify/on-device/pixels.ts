/**
 * The model's input from a photo, computed the way the server computes it: PIL's bilinear
 * resize (`mushroom_common.imaging.resize_for_model`, Pillow's `Resample.c` with its 8-bit
 * fixed-point coefficients), ported here so every browser gives the same pixels. A canvas
 * resize would differ from browser to browser, and from the server.
 */

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

type Coefficients = { ksize: number; bounds: Int32Array; weights: Float64Array };

/** Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear (triangle) filter. */
function coefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = 1.0 * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Float64Array(outSize * ksize);
  const row = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx += 1) {
    const center = (xx + 0.5) * scale;
    const ss = 1.0 / filterScale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let total = 0;
    for (let x = 0; x < xmax; x += 1) {
      const distance = Math.abs((x + xmin - center + 0.5) * ss);
      const weight = distance < 1.0 ? 1.0 - distance : 0.0;
      row[x] = weight;
      total += weight;
    }
    for (let x = 0; x < ksize; x += 1) {
      const normalised = x < xmax ? (total !== 0 ? row[x]! / total : row[x]!) : 0;
      // C's (int) cast truncates toward zero.
      weights[xx * ksize + x] = normalised < 0 ? Math.trunc(-0.5 + normalised * ONE) : Math.trunc(0.5 + normalised * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

const clip8 = (value: number): number => Math.min(255, Math.max(0, Math.floor(value / ONE)));

/**
 * Resizes RGBA pixels (as from `getImageData`) to RGB `outWidth x outHeight`, as PIL's
 * `Image.resize(..., BILINEAR)` does: a horizontal pass over the rows the vertical pass needs,
 * then the vertical pass.
 */
export function resizeBilinear(
  rgba: Uint8ClampedArray | Uint8Array,
  width: number,
  height: number,
  outWidth: number,
  outHeight: number,
): Uint8Array<ArrayBuffer> {
  const horizontal = coefficients(width, outWidth);
  const vertical = coefficients(height, outHeight);
  const first = vertical.bounds[0]!;
  const last = vertical.bounds[outHeight * 2 - 2]! + vertical.bounds[outHeight * 2 - 1]!;
  const needHorizontal = outWidth !== width;
  const needVertical = outHeight !== height;

  // Horizontal pass into RGB rows [first, last) of the source.
  const rows = last - first;
  let temp: Uint8Array<ArrayBuffer>;
  let tempWidth: number;
  let rowOffset: number;
  if (needHorizontal) {
    temp = new Uint8Array(outWidth * rows * 3);
    tempWidth = outWidth;
    rowOffset = first;
    for (let yy = 0; yy < rows; yy += 1) {
      const source = (yy + first) * width * 4;
      for (let xx = 0; xx < outWidth; xx += 1) {
        const xmin = horizontal.bounds[xx * 2]!;
        const xmax = horizontal.bounds[xx * 2 + 1]!;
        const k = xx * horizontal.ksize;
        let r = ONE / 2;
        let g = ONE / 2;
        let b = ONE / 2;
        for (let x = 0; x < xmax; x += 1) {
          const weight = horizontal.weights[k + x]!;
          const at = source + (x + xmin) * 4;
          r += rgba[at]! * weight;
          g += rgba[at + 1]! * weight;
          b += rgba[at + 2]! * weight;
        }
        const out = (yy * outWidth + xx) * 3;
        temp[out] = clip8(r);
        temp[out + 1] = clip8(g);
        temp[out + 2] = clip8(b);
      }
    }
  } else {
    temp = new Uint8Array(width * height * 3);
    tempWidth = width;
    rowOffset = 0;
    for (let i = 0; i < width * height; i += 1) {
      temp[i * 3] = rgba[i * 4]!;
      temp[i * 3 + 1] = rgba[i * 4 + 1]!;
      temp[i * 3 + 2] = rgba[i * 4 + 2]!;
    }
  }
  if (!needVertical) return temp.slice(0, tempWidth * outHeight * 3);

  const out = new Uint8Array(outWidth * outHeight * 3);
  for (let yy = 0; yy < outHeight; yy += 1) {
    const ymin = vertical.bounds[yy * 2]! - (needHorizontal ? rowOffset : 0);
    const ymax = vertical.bounds[yy * 2 + 1]!;
    const k = yy * vertical.ksize;
    for (let xx = 0; xx < outWidth; xx += 1) {
      let r = ONE / 2;
      let g = ONE / 2;
      let b = ONE / 2;
      for (let y = 0; y < ymax; y += 1) {
        const weight = vertical.weights[k + y]!;
        const at = ((y + ymin) * tempWidth + xx) * 3;
        r += temp[at]! * weight;
        g += temp[at + 1]! * weight;
        b += temp[at + 2]! * weight;
      }
      const at = (yy * outWidth + xx) * 3;
      out[at] = clip8(r);
      out[at + 1] = clip8(g);
      out[at + 2] = clip8(b);
    }
  }
  return out;
}

/**
 * The 1/2, 1/4 or 1/8 scale the API decodes a JPEG at (Pillow's `draft` for the model's longest
 * side): the largest that still covers it.
 */
export function draftScale(width: number, height: number, side: number): number {
  const fits = Math.min(Math.floor(width / side), Math.floor(height / side));
  return [8, 4, 2, 1].find((scale) => fits >= scale) ?? 1;
}

/**
 * RGBA averaged over `scale x scale` blocks (partial blocks at the edges over the pixels they
 * have): the nearest a decoded photo gets to the API's reduced-scale JPEG decode, which works on
 * the DCT coefficients and cannot be repeated exactly from pixels.
 */
export function reduceBox(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number, scale: number) {
  const outWidth = Math.ceil(width / scale);
  const outHeight = Math.ceil(height / scale);
  const out = new Uint8ClampedArray(outWidth * outHeight * 4);
  for (let yy = 0; yy < outHeight; yy += 1) {
    const y1 = Math.min(height, (yy + 1) * scale);
    for (let xx = 0; xx < outWidth; xx += 1) {
      const x1 = Math.min(width, (xx + 1) * scale);
      let r = 0;
      let g = 0;
      let b = 0;
      let n = 0;
      for (let y = yy * scale; y < y1; y += 1) {
        for (let x = xx * scale; x < x1; x += 1) {
          const at = (y * width + x) * 4;
          r += rgba[at]!;
          g += rgba[at + 1]!;
          b += rgba[at + 2]!;
          n += 1;
        }
      }
      const at = (yy * outWidth + xx) * 4;
      out[at] = Math.floor((r + n / 2) / n);
      out[at + 1] = Math.floor((g + n / 2) / n);
      out[at + 2] = Math.floor((b + n / 2) / n);
      out[at + 3] = 255;
    }
  }
  return { rgba: out, width: outWidth, height: outHeight };
}

/** Transparent pixels on white, as the API flattens photos with an alpha channel. */
function onWhite(rgba: Uint8ClampedArray): Uint8ClampedArray {
  for (let at = 0; at < rgba.length; at += 4) {
    const alpha = rgba[at + 3]!;
    if (alpha === 255) continue;
    for (let c = 0; c < 3; c += 1) rgba[at + c] = Math.round((rgba[at + c]! * alpha + 255 * (255 - alpha)) / 255);
    rgba[at + 3] = 255;
  }
  return rgba;
}

/** Decodes a photo (EXIF orientation applied) and returns the model's uint8 RGB input. */
export async function photoToModelInput(photo: Blob, width: number, height: number): Promise<Uint8Array<ArrayBuffer>> {
  const bitmap = await createImageBitmap(photo, { imageOrientation: 'from-image' });
  try {
    const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
    const context = canvas.getContext('2d', { willReadFrequently: true });
    if (!context) throw new Error('2D canvas unavailable');
    context.drawImage(bitmap, 0, 0);
    const data = onWhite(context.getImageData(0, 0, bitmap.width, bitmap.height).data);
    const scale = photo.type === 'image/jpeg' ? draftScale(bitmap.width, bitmap.height, Math.max(width, height)) : 1;
    const source = scale > 1 ? reduceBox(data, bitmap.width, bitmap.height, scale) : { rgba: data, width: bitmap.width, height: bitmap.height };
    return resizeBilinear(source.rgba, source.width, source.height, width, height);
  } finally {
    bitmap.close();
  }
}
