import type { SVGProps } from 'react';

export type IconName = 'skull' | 'check' | 'question' | 'no-image' | 'camera' | 'gallery' | 'offline' | 'warning' | 'history';

// Simple 24x24 outline paths; decorative only: the words next to an icon always say the same thing.
const PATHS: Record<IconName, string> = {
  skull:
    'M12 2C7 2 4 5.5 4 10c0 2.6 1.2 4.4 3 5.5V19a1 1 0 0 0 1 1h1v2h2v-2h2v2h2v-2h1a1 1 0 0 0 1-1v-3.5c1.8-1.1 3-2.9 3-5.5 0-4.5-3-8-8-8Zm-3.5 7a2 2 0 1 1 0 4 2 2 0 0 1 0-4Zm7 0a2 2 0 1 1 0 4 2 2 0 0 1 0-4ZM12 13.5l1.2 2.5h-2.4l1.2-2.5Z',
  check: 'M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4L9 16.2Z',
  question:
    'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20Zm1 17h-2v-2h2v2Zm2.1-7.8-.9.9c-.7.8-1.2 1.4-1.2 2.9h-2v-.5c0-1.1.4-2.1 1.2-2.8l1.2-1.3a2 2 0 1 0-3.4-1.4H8a4 4 0 1 1 7.1 2.2Z',
  'no-image':
    'M21 5v11.2l-2-2V5H7.8l-2-2H19a2 2 0 0 1 2 2ZM2.8 2.7 1.4 4.1 3 5.8V19a2 2 0 0 0 2 2h13.2l1.7 1.7 1.4-1.4L2.8 2.7ZM5 19V7.8l4.6 4.6L7 16h8.2l1 1H5Z',
  camera:
    'M9 3 7.2 5H4a2 2 0 0 0-2 2v12a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2V7a2 2 0 0 0-2-2h-3.2L15 3H9Zm3 15a5 5 0 1 1 0-10 5 5 0 0 1 0 10Zm0-2a3 3 0 1 0 0-6 3 3 0 0 0 0 6Z',
  gallery:
    'M21 19V5a2 2 0 0 0-2-2H5a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h14a2 2 0 0 0 2-2ZM8.5 13.5l2.5 3 3.5-4.5 4.5 6H5l3.5-4.5Z',
  offline:
    'M23.6 8.1A17 17 0 0 0 12 3.5c-1.6 0-3.2.2-4.6.6l2 2A14 14 0 0 1 21.7 10l1.9-1.9ZM3.3 2 1.9 3.4l2.3 2.3A17 17 0 0 0 .4 8.1L12 21.5l3.9-4.5 4.7 4.7 1.4-1.4L3.3 2Z',
  warning: 'M1 21h22L12 2 1 21Zm12-3h-2v-2h2v2Zm0-4h-2v-4h2v4Z',
  history:
    'M13 3a9 9 0 0 0-9 9H1l3.9 3.9L9 12H6a7 7 0 1 1 2.1 5l-1.4 1.4A9 9 0 1 0 13 3Zm-1 5v5l4.3 2.5.7-1.2-3.5-2.1V8H12Z',
};

type IconProps = SVGProps<SVGSVGElement> & { name: IconName; size?: number };

export function Icon({ name, size = 24, ...rest }: IconProps) {
  return (
    <svg
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="currentColor"
      aria-hidden="true"
      focusable="false"
      {...rest}
    >
      <path d={PATHS[name]} />
    </svg>
  );
}
