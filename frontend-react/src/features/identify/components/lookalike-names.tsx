import type { Edibility } from '@/client/schema';
import { EdibilityBadge } from '@/components/ui/edibility-badge';

type NamedLookalike = { scientific_name: string; common_names: string[]; edibility: Edibility };

/** A look-alike's scientific name with its edibility badge, then its first common name if it has one. */
export function LookalikeNames({ lookalike }: { lookalike: NamedLookalike }) {
  return (
    <>
      <div className="lookalike__header">
        <span className="prediction__scientific" lang="la">
          {lookalike.scientific_name}
        </span>
        <EdibilityBadge edibility={lookalike.edibility} />
      </div>
      {lookalike.common_names[0] ? <span className="prediction__common">{lookalike.common_names[0]}</span> : null}
    </>
  );
}
