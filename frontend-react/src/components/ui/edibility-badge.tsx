import type { Edibility } from '@/client/schema';
import { Icon } from '@/components/ui/icon';
import { t } from '@/lib/i18n';

const DANGEROUS: ReadonlySet<Edibility> = new Set(['deadly', 'poisonous']);

export function isDangerousEdibility(edibility: Edibility): boolean {
  return DANGEROUS.has(edibility);
}

/** Edibility in words, with a warning icon for deadly and poisonous species. */
export function EdibilityBadge({ edibility }: { edibility: Edibility }) {
  const dangerous = isDangerousEdibility(edibility);
  return (
    <span className={`badge badge--${edibility}`} data-edibility={edibility}>
      <span className="visually-hidden">{t.result.edibilityLabel} </span>
      {dangerous ? <Icon name="warning" size={16} /> : null}
      {t.edibility[edibility]}
    </span>
  );
}
