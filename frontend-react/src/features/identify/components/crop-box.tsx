import { useEffect, useId, useMemo, useRef, type KeyboardEvent, type PointerEvent } from 'react';
import type { CropRect } from '@/lib/downscale-image';
import { t } from '@/lib/i18n';

/** The smallest crop side, as a fraction of the photo's side. */
export const MIN_CROP = 0.1;
/** One arrow key press moves or resizes the box by 2% of the photo. */
export const CROP_STEP = 0.02;

const clamp = (value: number, low: number, high: number) => Math.min(Math.max(value, low), high);
const round = (value: number) => Math.round(value * 10_000) / 10_000;

/** Keeps a crop inside the photo and at least MIN_CROP on each side. */
export function clampCrop(crop: CropRect): CropRect {
  const width = clamp(crop.width, MIN_CROP, 1);
  const height = clamp(crop.height, MIN_CROP, 1);
  return {
    x: round(clamp(crop.x, 0, 1 - width)),
    y: round(clamp(crop.y, 0, 1 - height)),
    width: round(width),
    height: round(height),
  };
}

/** Scales a crop about its centre (pinch, + and -). */
export function scaleCrop(crop: CropRect, factor: number): CropRect {
  const width = clamp(crop.width * factor, MIN_CROP, 1);
  const height = clamp(crop.height * factor, MIN_CROP, 1);
  return clampCrop({ x: crop.x + (crop.width - width) / 2, y: crop.y + (crop.height - height) / 2, width, height });
}

/** The crop after a key press, or null when the key does nothing here. */
export function cropAfterKey(crop: CropRect, key: string, shift: boolean): CropRect | null {
  const step = CROP_STEP;
  const moves: Record<string, [number, number]> = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
  const move = moves[key];
  if (move && shift) {
    // Shift: resize from the bottom-right corner (right/down grow, left/up shrink).
    return clampCrop({ ...crop, width: crop.width + move[0], height: crop.height + move[1] });
  }
  if (move) return clampCrop({ ...crop, x: crop.x + move[0], y: crop.y + move[1] });
  if (key === '+' || key === '=') return scaleCrop(crop, 1 + step * 5);
  if (key === '-' || key === '_') return scaleCrop(crop, 1 / (1 + step * 5));
  if (key === 'Home') return { x: 0, y: 0, width: 1, height: 1 };
  return null;
}

type CropBoxProps = {
  photo: Blob;
  value: CropRect;
  onChange: (crop: CropRect) => void;
};

type Gesture =
  | { kind: 'move'; start: CropRect; x: number; y: number }
  | { kind: 'resize'; start: CropRect; x: number; y: number }
  | { kind: 'pinch'; start: CropRect; distance: number };

/**
 * A crop box over the photo: drag to move, pinch (two fingers) or the corner handle to resize;
 * from the keyboard, arrow keys move it, Shift + arrow keys resize it, + and - scale it, Home
 * selects the whole photo. The box says where it is in words (for screen readers too).
 */
export function CropBox({ photo, value, onChange }: CropBoxProps) {
  const frameRef = useRef<HTMLDivElement>(null);
  const pointers = useRef(new Map<number, { x: number; y: number }>());
  const gesture = useRef<Gesture | null>(null);
  const helpId = useId();
  const statusId = useId();
  const url = useMemo(() => URL.createObjectURL(photo), [photo]);
  useEffect(() => () => URL.revokeObjectURL(url), [url]);

  const size = () => {
    const rect = frameRef.current?.getBoundingClientRect();
    return { width: rect && rect.width > 0 ? rect.width : 1, height: rect && rect.height > 0 ? rect.height : 1 };
  };
  const distance = () => {
    const [a, b] = [...pointers.current.values()];
    return a && b ? Math.hypot(a.x - b.x, a.y - b.y) : 0;
  };

  const onPointerDown = (event: PointerEvent<HTMLElement>, kind: 'move' | 'resize') => {
    event.stopPropagation();
    event.currentTarget.setPointerCapture?.(event.pointerId);
    pointers.current.set(event.pointerId, { x: event.clientX, y: event.clientY });
    gesture.current =
      pointers.current.size >= 2
        ? { kind: 'pinch', start: value, distance: distance() }
        : { kind, start: value, x: event.clientX, y: event.clientY };
  };
  const onPointerMove = (event: PointerEvent<HTMLElement>) => {
    if (!pointers.current.has(event.pointerId) || !gesture.current) return;
    pointers.current.set(event.pointerId, { x: event.clientX, y: event.clientY });
    const current = gesture.current;
    if (current.kind === 'pinch') {
      if (current.distance > 0) onChange(scaleCrop(current.start, distance() / current.distance));
      return;
    }
    const { width, height } = size();
    const dx = (event.clientX - current.x) / width;
    const dy = (event.clientY - current.y) / height;
    onChange(
      current.kind === 'move'
        ? clampCrop({ ...current.start, x: current.start.x + dx, y: current.start.y + dy })
        : clampCrop({ ...current.start, width: current.start.width + dx, height: current.start.height + dy }),
    );
  };
  const onPointerUp = (event: PointerEvent<HTMLElement>) => {
    pointers.current.delete(event.pointerId);
    gesture.current = null;
  };
  const onKeyDown = (event: KeyboardEvent<HTMLButtonElement>) => {
    const next = cropAfterKey(value, event.key, event.shiftKey);
    if (!next) return;
    event.preventDefault();
    onChange(next);
  };

  const pct = (fraction: number) => Math.round(fraction * 100);
  const status = t.crop.status(pct(value.width), pct(value.height), pct(value.x), pct(value.y));
  return (
    <div className="crop">
      <div className="crop__frame" ref={frameRef}>
        <img className="crop__image" src={url} alt={t.crop.photoAlt} draggable={false} />
        {/* A button: focusable and announced as a control; Enter and Space do nothing, keys and pointers move it. */}
        <button
          type="button"
          className="crop__box"
          aria-roledescription={t.crop.boxLabel}
          aria-label={t.crop.boxLabel}
          aria-describedby={`${helpId} ${statusId}`}
          data-testid="crop-box"
          data-crop={`${value.x},${value.y},${value.width},${value.height}`}
          style={{
            left: `${value.x * 100}%`,
            top: `${value.y * 100}%`,
            width: `${value.width * 100}%`,
            height: `${value.height * 100}%`,
          }}
          onKeyDown={onKeyDown}
          onPointerDown={(event) => onPointerDown(event, 'move')}
          onPointerMove={onPointerMove}
          onPointerUp={onPointerUp}
          onPointerCancel={onPointerUp}
        >
          <span
            className="crop__handle"
            aria-hidden="true"
            title={t.crop.resizeHandle}
            onPointerDown={(event) => onPointerDown(event, 'resize')}
            onPointerMove={onPointerMove}
            onPointerUp={onPointerUp}
            onPointerCancel={onPointerUp}
          />
        </button>
      </div>
      <p id={helpId} className="muted small">
        {t.crop.keyboardHelp} {t.crop.touchHelp}
      </p>
      <p id={statusId} className="small" aria-live="polite" data-testid="crop-status">
        {status}
      </p>
    </div>
  );
}
