import { useEffect, useRef } from 'react';
import type { Verdict } from '@/client/api-client';
import { Icon, type IconName } from '@/components/ui/icon';
import { t } from '@/lib/i18n';

const ICONS: Record<Verdict, IconName> = {
  dangerous: 'skull',
  edible: 'check',
  uncertain: 'question',
  not_a_mushroom: 'no-image',
};

type VerdictBannerProps = {
  verdict: Verdict;
  message: string;
  /** Move keyboard and screen-reader focus here when the banner appears. */
  focusOnMount?: boolean;
};

/**
 * The verdict, first and unmistakable: colour, icon and words together, so it reads in sunlight and
 * without colour vision. A dangerous verdict is an alert so screen readers announce it at once.
 */
export function VerdictBanner({ verdict, message, focusOnMount = false }: VerdictBannerProps) {
  const headingRef = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    if (focusOnMount) headingRef.current?.focus();
  }, [focusOnMount, verdict]);

  return (
    <section
      className={`verdict verdict--${verdict}`}
      data-testid="verdict-banner"
      data-verdict={verdict}
      role={verdict === 'dangerous' ? 'alert' : 'status'}
      aria-labelledby="verdict-title"
    >
      <Icon name={ICONS[verdict]} size={48} className="verdict__icon" />
      <div className="verdict__text">
        <h2 id="verdict-title" className="verdict__title" tabIndex={-1} ref={headingRef}>
          {t.verdict.titles[verdict]}
        </h2>
        <p className="verdict__subtitle">{t.verdict.subtitles[verdict]}</p>
        {message ? <p className="verdict__message">{message}</p> : null}
      </div>
    </section>
  );
}
