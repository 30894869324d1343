// Draws the app icons (a red-capped mushroom on dark green) as PNGs with no dependencies:
// run `npm run icons` to regenerate public/icons/*.png.
import { mkdirSync, writeFileSync } from 'node:fs';
import { deflateSync } from 'node:zlib';

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buffer) {
  let crc = 0xffffffff;
  for (const byte of buffer) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function encodePng(size, pixel) {
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y += 1) {
    raw[y * (size * 4 + 1)] = 0;
    for (let x = 0; x < size; x += 1) {
      const [r, g, b, a] = pixel(x, y);
      const offset = y * (size * 4 + 1) + 1 + x * 4;
      raw[offset] = r;
      raw[offset + 1] = g;
      raw[offset + 2] = b;
      raw[offset + 3] = a;
    }
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header[8] = 8; // bit depth
  header[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const BACKGROUND = [31, 58, 46, 255];
const CAP = [198, 40, 40, 255];
const SPOT = [255, 255, 255, 255];
const STEM = [243, 234, 215, 255];

/** Colour at (u, v) in the unit square; `inset` shrinks the drawing into the maskable safe zone. */
function mushroom(u, v, inset) {
  const x = (u - 0.5) / (1 - 2 * inset) + 0.5;
  const y = (v - 0.5) / (1 - 2 * inset) + 0.5;
  const capDx = (x - 0.5) / 0.4;
  const capDy = (y - 0.55) / 0.4;
  const inCap = y <= 0.55 && capDx * capDx + capDy * capDy <= 1;
  const spots = [
    [0.34, 0.38, 0.05],
    [0.56, 0.3, 0.05],
    [0.69, 0.45, 0.04],
    [0.47, 0.47, 0.035],
  ];
  if (inCap) {
    return spots.some(([sx, sy, r]) => (x - sx) ** 2 + (y - sy) ** 2 <= r * r) ? SPOT : CAP;
  }
  const stemHalf = 0.09 + (y - 0.55) * 0.12;
  if (y > 0.55 && y <= 0.86 && Math.abs(x - 0.5) <= stemHalf) return STEM;
  return BACKGROUND;
}

function rounded(u, v, radius) {
  const dx = Math.max(radius - u, 0, u - (1 - radius));
  const dy = Math.max(radius - v, 0, v - (1 - radius));
  return dx * dx + dy * dy <= radius * radius;
}

const outDir = new URL('../public/icons/', import.meta.url);
mkdirSync(outDir, { recursive: true });
const icons = [
  { file: 'icon-192.png', size: 192, inset: 0.04, radius: 0.18 },
  { file: 'icon-512.png', size: 512, inset: 0.04, radius: 0.18 },
  // Maskable: full bleed, the drawing inside the central 80% safe zone.
  { file: 'icon-maskable-512.png', size: 512, inset: 0.14, radius: 0 },
];
for (const { file, size, inset, radius } of icons) {
  const png = encodePng(size, (px, py) => {
    const u = (px + 0.5) / size;
    const v = (py + 0.5) / size;
    if (radius > 0 && !rounded(u, v, radius)) return [0, 0, 0, 0];
    return mushroom(u, v, inset);
  });
  writeFileSync(new URL(file, outDir), png);
}
